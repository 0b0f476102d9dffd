"""Shared UI pieces for the Streamlit pages (the only place besides pages/ that
imports Streamlit)."""
