"""Plain Starlette routes served beside the Streamlit pages (same port).

They are ordinary Starlette handlers, so they can also be mounted in a
standalone Starlette app if the API ever moves.
"""
