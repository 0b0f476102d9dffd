"""Where alert messages may go: a robot only to its platform's official host, a
generic webhook anywhere public; never to a loopback, private or link-local
address (the console is not a way into the internal network), unless the host
is one of `ALERT_ALLOWED_HOSTS` (the demo simulator's, the tests').

Checked on the resolved addresses when a channel is saved and again right before
each send, since a name may point elsewhere by then.
"""

import ipaddress
import socket

import httpx

from base.config import get_settings
from base.errors import InvalidInput

OFFICIAL_HOSTS: dict[str, tuple[str, ...]] = {
    "wecom": ("qyapi.weixin.qq.com",),
    "dingtalk": ("oapi.dingtalk.com",),
    "feishu": ("open.feishu.cn", "open.larksuite.com"),
}


def _allowed_hosts() -> set[str]:
    return {host.strip().lower().rstrip(".") for host in get_settings().ALERT_ALLOWED_HOSTS.split(",") if host.strip()}


def _addresses(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise InvalidInput("alerts.channel.host_unresolved", host=host) from None
    found = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        # An IPv4 address written as IPv6 (::ffff:127.0.0.1) is judged as the IPv4 one.
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        found.append(address)
    return found


def check_destination(kind: str, url: str) -> None:
    """Raise InvalidInput unless a channel of `kind` may send to `url`."""
    parsed = httpx.URL(url)
    host = parsed.host.lower().rstrip(".")
    if host in _allowed_hosts():
        return
    official = OFFICIAL_HOSTS.get(kind)
    if official is not None:
        if host not in official:
            raise InvalidInput("alerts.channel.not_official_host", hosts="、".join(official))
        return  # the platform's own public servers
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    for address in _addresses(host, port):
        if not address.is_global or address.is_multicast:
            raise InvalidInput("alerts.channel.internal_address", host=host, address=str(address))
