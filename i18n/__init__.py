"""The one message catalog for user-facing text: Simplified Chinese, and English
for the few texts that leave the system for machines' owners (the problems in
the `POST /api/v1/events` answer).

One module per key prefix (`bindings.py` holds `bindings.*`; `common.py` the
generic prefixes it lists in `PREFIXES`), each with a `ZH_CN` dict and, where
needed, an `EN` dict; they merge into one catalog per locale. `t(key, **params)`
formats a Chinese message, `translate(key, params, locale)` one in any locale;
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
ENGLISH = "en"
# Each locale's dict in a prefix module.
LOCALES = {LANGUAGE: "ZH_CN", ENGLISH: "EN"}
CATALOG: dict[str, dict[str, str]] = {locale: {} for locale in LOCALES}


def _load() -> None:
    for module_info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        prefixes = tuple(f"{prefix}." for prefix in getattr(module, "PREFIXES", (module_info.name,)))
        for locale, name in LOCALES.items():
            for key, text in getattr(module, name, {}).items():
                if not key.startswith(prefixes):
                    raise RuntimeError(f"message key {key!r} does not belong in {module.__name__}")
                if key in CATALOG[locale]:
                    raise RuntimeError(f"message key {key!r} defined twice")
                CATALOG[locale][key] = text
    untranslated = CATALOG[ENGLISH].keys() - CATALOG[LANGUAGE].keys()
    if untranslated:
        raise RuntimeError(f"English messages without a Chinese one: {sorted(untranslated)}")


def translate(key: str, params: dict[str, Any], locale: str = LANGUAGE) -> str:
    """The message in `locale`; a key that locale lacks falls back to Chinese."""
    text = CATALOG[locale].get(key) or CATALOG[LANGUAGE].get(key)
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


def t(key: str, **params: Any) -> str:
    return translate(key, params)


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
