"""The one web process: `streamlit run console/server.py`.

A `streamlit.App` serving the Streamlit pages of console/app.py plus the plain
Starlette routes (login/logout, /healthz, /api/v1/..., the WeCom callback), with the
pages' HTML served by `PageGate` (sign-in required, Chinese).
"""

import logging
import sys

import streamlit as st
from starlette.middleware import Middleware

from console.web.page_gate import PageGate
from console.web.routes import ROUTES
from console.web.upload_guard import UploadGuard
from db.engine import DatabaseUnavailable, check_database, get_engine

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

try:
    check_database(get_engine())
except DatabaseUnavailable as exc:
    # One clear line at start; no stack trace in the browser.
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(2)

app = st.App("app.py", routes=ROUTES, middleware=[Middleware(PageGate, routes=ROUTES), Middleware(UploadGuard)])
