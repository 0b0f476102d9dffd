"""Domain services of the Store WeCom Console. Never imports Streamlit."""
