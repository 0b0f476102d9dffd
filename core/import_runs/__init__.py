"""Imports committed in bounded chunks (import runs): staging, the check, applying, resuming."""
