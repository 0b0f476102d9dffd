"""The demo: WeCom simulator and robot inbox, demo data. The domain never imports it."""
