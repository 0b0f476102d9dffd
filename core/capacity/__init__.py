"""Capacity monitoring: customer-count sync, snapshots and forecast, alert rules."""
