"""The one message catalog for user-facing text (Simplified Chinese now).

Each domain keeps its keys in its own module here (common, auth, stores, …);
they merge into one catalog per language. `t(key, **params)` formats a message;
an unknown key is shown as itself so a missing text is visible, never a crash.

Plain Python that imports nothing of ours: it sits beside `base` at the bottom
of the layers, so that `core` can render what it sends out (robot messages,
sheets it hands back) while everything it stores stays key + params.
"""

import importlib
import logging
import pkgutil
from typing import Any, Protocol

log = logging.getLogger(__name__)

LANGUAGE = "zh_CN"
CATALOG: dict[str, dict[str, str]] = {LANGUAGE: {}}


def _load() -> None:
    for module_info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        for key, text in getattr(module, "ZH_CN", {}).items():
            if key in CATALOG[LANGUAGE]:
                raise RuntimeError(f"message key {key!r} defined twice")
            CATALOG[LANGUAGE][key] = text


def t(key: str, **params: Any) -> str:
    text = CATALOG[LANGUAGE].get(key)
    if text is None:
        log.warning("missing message %s", key)
        return key
    if not params:
        return text
    try:
        return text.format(**{k: ("" if v is None else v) for k, v in params.items()})
    except (KeyError, IndexError, ValueError):
        log.warning("message %s lacks a parameter in %s", key, params)
        return text


def label(key: str, fallback: str) -> str:
    """The catalog's text for a code shown to people (an audit action, say), or
    the code itself where the catalog has none."""
    return CATALOG[LANGUAGE].get(key, fallback)


class Keyed(Protocol):
    """A DomainError, or any stored problem: a catalog key and its parameters."""
    key: str
    params: dict[str, Any]


def error_text(error: Keyed) -> str:
    return t(error.key, **error.params)


_load()
