"""One thin script per page: read widgets, call core, render (run by st.navigation, never imported)."""
