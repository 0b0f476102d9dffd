"""Streamlit's upload route on a running console: a visitor who never logged in,
or a role without an uploading page, cannot make the server hold a file; a branch
manager cannot send more than a sheet's 10 MB; an uploader's file is taken."""

import asyncio
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from console.web.cookies import SESSION_COOKIE, sign_session
from db.models import Role

pytestmark = pytest.mark.browser

XSRF_COOKIE = "_streamlit_xsrf"


async def _upload(url: str, session_token: str | None, size: int) -> int:
    """PUT a file of `size` bytes the way the page's uploader does: with the XSRF
    cookie and a Streamlit session id, which any browser opening the page gets."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        await client.get("/_stcore/health")  # sets the XSRF cookie, as the page does
        xsrf = client.cookies[XSRF_COOKIE]
        if session_token:
            client.cookies.set(SESSION_COOKIE, sign_session(session_token))
        cookie_header = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
        ws_url = url.replace("http://", "ws://") + "/_stcore/stream"
        async with websockets.connect(ws_url, subprotocols=["streamlit", xsrf],  # type: ignore[list-item]
                                      origin=url, additional_headers={"Cookie": cookie_header}) as ws:
            back = BackMsg()
            back.rerun_script.query_string = ""
            await ws.send(back.SerializeToString())
            message = ForwardMsg()
            while not message.HasField("new_session"):
                message = ForwardMsg()
                message.ParseFromString(await asyncio.wait_for(ws.recv(), 30))
            session_id = message.new_session.initialize.session_id
            response = await client.put(f"/_stcore/upload_file/{session_id}/file1", headers={"X-Xsrftoken": xsrf},
                                        files={"file": ("events.csv", b"x" * size, "text/csv")})
            return response.status_code


def _put(url: str, session_token: str | None, size: int) -> int:
    # A thread of its own: Playwright's sync API may hold this thread's event loop in the same run.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _upload(url, session_token, size)).result()


def test_uploads_need_a_login_with_an_uploading_page_and_stay_within_its_limit(
        org, make_user, login_token, console_server):
    url = console_server.url
    assert _put(url, None, 1000) == 403
    assert _put(url, login_token(make_user(Role.viewer)), 1000) == 403

    manager = login_token(make_user(Role.branch_manager, org["south"]))
    assert _put(url, manager, 1000) == 204
    assert _put(url, manager, 11 * 1024 * 1024) == 413

    operator = login_token(make_user(Role.hq_operator))
    assert _put(url, operator, 11 * 1024 * 1024) == 204
