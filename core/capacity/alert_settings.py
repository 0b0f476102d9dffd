"""Thresholds, the risk-first watch, the message template: each form's settings
saved together, checked first, and only over the values the form was opened with."""

from collections.abc import Mapping
from typing import Any

from sqlmodel import Session, col, select

from base.errors import ConcurrentEdit, InvalidInput
from core import settings_store
from core.auth.permissions import Actor, Capability
from core.capacity.template import PLACEHOLDERS, render, validate_template
from core.conflicts import lock_for_write, settled_races
from db.models import SettingOverride

SAMPLE = dict(zip(PLACEHOLDERS, ("上海浦东陆家嘴店客服王晓雯", "store000201", 70, "预警", "上海分公司",
                                 "上海浦东陆家嘴店", 3512, 5000), strict=True))


class SettingsChanged(ConcurrentEdit):
    """Someone saved some of these settings since the form was opened; nothing was
    written. `changed`: key → (the value the form was opened with, the value now)."""

    def __init__(self, changed: dict[str, tuple[Any, Any]]) -> None:
        super().__init__("alert_settings.changed_meanwhile")
        self.changed = changed


def save_checked(*, session: Session, actor: Actor, values: Mapping[str, Any], seen: Mapping[str, Any]) -> None:
    """Save `values` (valid already) when none of them changed since the form read
    `seen`; otherwise SettingsChanged and nothing is written, so two operators'
    edits never overwrite each other silently. Only what differs is saved, so the
    audit log names what the operator changed."""
    for key in values:
        settings_store.require_chain_wide(actor, settings_store.SPECS[key].capability)
    with settled_races():
        # The values are read under the write lock (SQLite) or with their rows locked
        # (PostgreSQL): nobody saves between this check and the write.
        lock_for_write(session)
        session.exec(select(SettingOverride).where(col(SettingOverride.key).in_(list(values)))
                     .with_for_update()).all()
        now = {key: settings_store.effective(session=session, key=key) for key in values}
        changed = {key: (seen.get(key), now[key]) for key in values if seen.get(key) != now[key]}
        if changed:
            raise SettingsChanged(changed)
        for key, value in values.items():
            if value != now[key]:
                settings_store.save(session=session, actor=actor, key=key, value=value)
        session.flush()


def save_thresholds(*, session: Session, actor: Actor, warn: int, critical: int, full: int, hysteresis: int,
                    repeat_hours: int, seen: Mapping[str, Any]) -> None:
    """All five or none: the caller's transaction holds them."""
    settings_store.require_chain_wide(actor, Capability.manage_alerts)
    values = {"capacity.warn_pct": warn, "capacity.critical_pct": critical, "capacity.full_pct": full,
              "capacity.hysteresis_pct": hysteresis, "capacity.repeat_hours": repeat_hours}
    typed = {key: settings_store.validate(key, value) for key, value in values.items()}
    if not typed["capacity.warn_pct"] < typed["capacity.critical_pct"] <= typed["capacity.full_pct"]:
        raise InvalidInput("capacity.thresholds.order")
    save_checked(session=session, actor=actor, values=typed, seen=seen)


WATCH_BAND = "capacity.watch_band_pct"
WATCH_GROWTH = "capacity.watch_growth_pct"


def _in_range(key: str, value: Any, message: str) -> int:
    spec = settings_store.SPECS[key]
    assert spec.minimum is not None and spec.maximum is not None  # both bounded
    if isinstance(value, bool) or not isinstance(value, int) or not spec.minimum <= value <= spec.maximum:
        raise InvalidInput(message, minimum=spec.minimum, maximum=spec.maximum)
    return value


def save_watch(*, session: Session, actor: Actor, band: Any, growth: Any, seen: Mapping[str, Any]) -> None:
    """Which accounts the count sync watches closely (core.capacity.watch): within
    `band` points below a level, or growing `growth` points of their limit a day."""
    settings_store.require_chain_wide(actor, Capability.manage_alerts)
    values = {WATCH_BAND: _in_range(WATCH_BAND, band, "alert_settings.watch_band_range"),
              WATCH_GROWTH: _in_range(WATCH_GROWTH, growth, "alert_settings.watch_growth_range")}
    save_checked(session=session, actor=actor, values=values, seen=seen)


def save_template(*, session: Session, actor: Actor, text: str) -> str:
    settings_store.require_chain_wide(actor, Capability.manage_alerts)
    text = validate_template(text)
    settings_store.save(session=session, actor=actor, key="capacity.alert_template", value=text)
    return text


def preview(text: str) -> str:
    """The template filled with a sample account (raises InvalidInput like saving)."""
    validate_template(text)
    return render(text, SAMPLE)
