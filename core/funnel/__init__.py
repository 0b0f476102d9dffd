"""The funnel (导流效果): tracking events, WeCom add events, the roll-up and its figures."""
