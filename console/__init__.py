"""The Store WeCom Console: Streamlit pages, HTTP routes, CLI and message catalog."""
