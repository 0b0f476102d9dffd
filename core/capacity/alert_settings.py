"""Thresholds and the message template, saved together and checked first."""

from sqlmodel import Session

from base.errors import InvalidInput
from core import settings_store
from core.auth.permissions import Actor, Capability
from core.capacity.template import PLACEHOLDERS, render, validate_template

SAMPLE = dict(zip(PLACEHOLDERS, ("上海浦东陆家嘴店客服王晓雯", "store000201", 70, "预警", "上海分公司",
                                 "上海浦东陆家嘴店", 3512, 5000), strict=True))


def save_thresholds(*, session: Session, actor: Actor, warn: int, critical: int, full: int, hysteresis: int,
                    repeat_hours: int) -> None:
    """All five or none: the caller's transaction holds them."""
    settings_store.require_chain_wide(actor, Capability.manage_alerts)
    values = {"capacity.warn_pct": warn, "capacity.critical_pct": critical, "capacity.full_pct": full,
              "capacity.hysteresis_pct": hysteresis, "capacity.repeat_hours": repeat_hours}
    typed = {key: settings_store.validate(key, value) for key, value in values.items()}
    if not typed["capacity.warn_pct"] < typed["capacity.critical_pct"] <= typed["capacity.full_pct"]:
        raise InvalidInput("capacity.thresholds.order")
    for key, value in typed.items():
        settings_store.save(session=session, actor=actor, key=key, value=value)


def save_template(*, session: Session, actor: Actor, text: str) -> str:
    settings_store.require_chain_wide(actor, Capability.manage_alerts)
    text = validate_template(text)
    settings_store.save(session=session, actor=actor, key="capacity.alert_template", value=text)
    return text


def preview(text: str) -> str:
    """The template filled with a sample account (raises InvalidInput like saving)."""
    validate_template(text)
    return render(text, SAMPLE)
