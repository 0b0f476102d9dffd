"""Departed members' customers awaiting transfer (WECOM.md: Members and app messages)."""

from dataclasses import dataclass

from core.wecom.client import WeComClient

# The largest page `externalcontact/get_unassigned_list` gives.
PAGE_SIZE = 1000


@dataclass(frozen=True)
class UnassignedEntry:
    handover_userid: str
    external_userid: str
    dimission_time: int | None  # seconds since the epoch, as WeCom sends it


def unassigned_customers(client: WeComClient) -> list[UnassignedEntry]:
    """Every page of the list; raises WeComError."""
    entries: list[UnassignedEntry] = []
    cursor = ""
    while True:
        answer = client.call("externalcontact/get_unassigned_list", method="POST",
                             body={"cursor": cursor, "page_size": PAGE_SIZE})
        entries.extend(UnassignedEntry(str(item.get("handover_userid") or ""), str(item.get("external_userid") or ""),
                                       int(item["dimission_time"]) if item.get("dimission_time") else None)
                       for item in answer.get("info") or [])
        next_cursor = str(answer.get("next_cursor") or "")
        # A cursor that does not move would page forever.
        if answer.get("is_last", True) or not next_cursor or next_cursor == cursor:
            return entries
        cursor = next_cursor
