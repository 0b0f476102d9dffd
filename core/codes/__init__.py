"""Store contact codes (门店活码): one WeCom contact way per store, kept in line with its binding."""
