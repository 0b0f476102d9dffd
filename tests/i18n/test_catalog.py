"""The catalog: one file per key prefix, the English locale for the events API."""

import importlib
import pkgutil
import sys
import types

import pytest

import i18n
from i18n import CATALOG, ENGLISH, LANGUAGE, t, translate


def prefix_modules():
    return [importlib.import_module(f"i18n.{info.name}") for info in pkgutil.iter_modules(i18n.__path__)]


def test_each_file_holds_only_its_own_prefix():
    for module in prefix_modules():
        prefixes = getattr(module, "PREFIXES", (module.__name__.rsplit(".", 1)[-1],))
        for table in (module.ZH_CN, getattr(module, "EN", {})):
            assert all(key.split(".", 1)[0] in prefixes for key in table), module.__name__


def test_every_prefix_has_its_own_file_but_the_generic_ones():
    generic = set(importlib.import_module("i18n.common").PREFIXES)
    files = {module.__name__.rsplit(".", 1)[-1] for module in prefix_modules()}
    prefixes = {key.split(".", 1)[0] for key in CATALOG[LANGUAGE]}
    assert prefixes - generic <= files


def test_a_key_in_the_wrong_file_stops_the_catalog_loading(monkeypatch):
    stray = types.ModuleType("i18n.stray")
    stray.ZH_CN = {"bindings.stray": "x"}
    monkeypatch.setitem(sys.modules, "i18n.stray", stray)
    monkeypatch.setattr(pkgutil, "iter_modules", lambda _path: [pkgutil.ModuleInfo(None, "stray", False)])
    monkeypatch.setattr(i18n, "CATALOG", {locale: {} for locale in i18n.LOCALES})
    with pytest.raises(RuntimeError, match="does not belong in i18n.stray"):
        i18n._load()


def test_english_problems_for_the_events_api():
    assert translate("events.unknown_name", {"value": "nope"}, ENGLISH) == "unknown event name 'nope'"
    assert t("events.unknown_name", value="nope") == "未知的事件名“nope”"
    # Every English text has its Chinese one; a key without English falls back to Chinese.
    assert CATALOG[ENGLISH].keys() <= CATALOG[LANGUAGE].keys()
    assert translate("events.file_empty", {}, ENGLISH) == t("events.file_empty")


def test_words_stored_before_problems_had_keys_are_shown_as_they_were():
    assert t("common.legacy_text", text="企业微信系统繁忙") == "企业微信系统繁忙"
