"""App messages from the self-built app to members (`message/send`, WECOM.md: Members and app messages)."""

from dataclasses import dataclass

from core.wecom.client import WeComClient

# WeCom's textcard limits, in UTF-8 bytes.
TITLE_MAX_BYTES = 128
DESCRIPTION_MAX_BYTES = 512


@dataclass(frozen=True)
class SendResult:
    # Members WeCom did not deliver to: unknown, departed, or outside the app's scope.
    invalid_users: tuple[str, ...]
    msgid: str


def cut(text: str, limit: int) -> str:
    """The text within `limit` UTF-8 bytes, cut on a character boundary."""
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[:limit - 3].decode(errors="ignore") + "…"


def send_textcard(client: WeComClient, *, agent_id: str, touser: list[str], title: str, description: str, url: str,
                  btntxt: str, duplicate_check_interval: int | None = None) -> SendResult:
    """One textcard to these members; raises WeComError. With `duplicate_check_interval`
    (seconds) WeCom does not deliver the same card to a member twice within it."""
    body: dict = {"touser": "|".join(touser), "agentid": int(agent_id) if agent_id.isdigit() else agent_id,
                  "msgtype": "textcard",
                  "textcard": {"title": cut(title, TITLE_MAX_BYTES),
                               "description": cut(description, DESCRIPTION_MAX_BYTES), "url": url, "btntxt": btntxt}}
    if duplicate_check_interval:
        body.update(enable_duplicate_check=1, duplicate_check_interval=duplicate_check_interval)
    answer = client.call("message/send", method="POST", body=body)
    invalid = tuple(userid for userid in str(answer.get("invaliduser") or "").split("|") if userid)
    return SendResult(invalid, str(answer.get("msgid") or ""))
