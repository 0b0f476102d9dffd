"""Who a WeCom login code belongs to, and whether that member is active (WECOM.md: Self-built app)."""

from dataclasses import dataclass

from core.wecom.client import WeComClient

# user/get `status`.
ACTIVE = 1
DISABLED = 2
NOT_ACTIVATED = 4
LEFT = 5

# auth/getuserinfo: the code is unknown, already used or older than 5 minutes.
INVALID_CODE = 40029
# user/get: no such member.
USERID_NOT_FOUND = 60111


@dataclass(frozen=True)
class CodeOwner:
    """The person who scanned: a member's `userid`, or only an `openid` for someone outside the corp."""

    userid: str | None
    openid: str | None = None


def code_owner(client: WeComClient, code: str) -> CodeOwner:
    """Exchange a login code (single-use) for the person behind it; raises WeComError."""
    answer = client.call("auth/getuserinfo", params={"code": code})
    # The older user/getuserinfo answer spelled them UserId and OpenId.
    userid = answer.get("userid") or answer.get("UserId")
    if userid:
        return CodeOwner(userid=str(userid))
    return CodeOwner(userid=None, openid=str(answer.get("openid") or answer.get("OpenId") or ""))


def member_status(client: WeComClient, userid: str) -> int:
    """The member's `status` (1 active, 2 disabled, 4 not activated, 5 left); raises WeComError,
    errcode 60111 for a userid WeCom does not know."""
    return int(client.call("user/get", params={"userid": userid}).get("status", 0))
