"""Branches, stores and WeCom accounts: the directory the other concepts refer to."""
