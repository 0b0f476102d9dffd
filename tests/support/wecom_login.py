"""WeCom login in tests: the settings that point the console at a simulator, and a
member "scanning" on the simulator's login page as a person would."""

import html
import re
from urllib.parse import parse_qs, urlsplit

import httpx

from demo.simulator import WeComSimulator

_SCAN_LINK = re.compile(r'href="(/_simulator/scan\?[^"]+)"')


def wecom_login_env(sim: WeComSimulator, console_url: str) -> dict[str, str]:
    """The environment of a console whose self-built app is the simulator's."""
    return {"WECOM_API_BASE": sim.base_url, "WECOM_LOGIN_BASE": sim.base_url, "WECOM_OAUTH_BASE": sim.base_url,
            "WECOM_CORP_ID": sim.corp_id, "WECOM_SECRET": sim.secret, "WECOM_AGENT_ID": sim.agent_id,
            "CONSOLE_BASE_URL": console_url}


def scan(login_url: str, userid: str) -> str:
    """Open WeCom's login page (QR or OAuth2) at `login_url`, confirm as `userid`, and
    return the console callback URL (with code and state) WeCom redirects to."""
    page = httpx.get(login_url.split("#", 1)[0], timeout=5)
    assert page.status_code == 200, page.text
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(login_url))
    for link in _SCAN_LINK.findall(page.text):
        link = html.unescape(link)
        if parse_qs(urlsplit(link).query).get("userid") == [userid]:
            confirmed = httpx.get(origin + link, timeout=5, follow_redirects=False)
            assert confirmed.status_code == 302, confirmed.text
            return confirmed.headers["location"]
    raise AssertionError(f"{userid} is not offered on the login page")


def callback_query(callback_url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(callback_url).query).items()}
