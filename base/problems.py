"""A problem kept for people to read later (an account's sync error, an alert
delivery's or a channel's last error, a job run's error): a message-catalog key
and its parameters, stored as JSON text and put into words only where it is
shown (`i18n.error_text`). Raw third-party text (an HTTP error, WeCom's errmsg)
is one of the parameters, never the stored text itself."""

import json
from dataclasses import dataclass, field
from typing import Any

# What a stored text that is not a problem becomes: the words as they were.
LEGACY_KEY = "common.legacy_text"


@dataclass
class Problem:
    key: str
    params: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> str:
        # Sorted, so that the same problem is always the same text (compared in SQL).
        return json.dumps({"key": self.key, "params": self.params}, ensure_ascii=False, sort_keys=True, default=str)

    @classmethod
    def decode(cls, stored: str) -> "Problem":
        try:
            data = json.loads(stored)
        except ValueError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("key"), str) \
                or not isinstance(data.get("params", {}), dict):
            return cls(LEGACY_KEY, {"text": stored})
        return cls(data["key"], dict(data.get("params") or {}))


def problem(key: str, /, **params: Any) -> str:
    """The stored text of a problem."""
    return Problem(key, params).encode()

