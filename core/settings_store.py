"""Settings an operator changes in the console override the environment defaults.

`effective` is what every service reads. Each key declares its type and bounds
so that a bad value is refused when saved, not when used.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, select

from base.config import get_settings
from base.errors import InvalidInput, PermissionDenied
from base.timeutil import utcnow
from core import audit
from core.auth.permissions import Actor, Capability, require
from core.capacity.template import default_template
from db.models import SettingOverride


@dataclass(frozen=True)
class SettingSpec:
    key: str
    default: Callable[[], Any]
    kind: type
    minimum: int | None = None
    maximum: int | None = None
    capability: Capability = Capability.manage_alerts


SPECS: dict[str, SettingSpec] = {}


def register(spec: SettingSpec) -> SettingSpec:
    SPECS[spec.key] = spec
    return spec


register(SettingSpec("capacity.default_limit", lambda: get_settings().CAPACITY_DEFAULT_LIMIT, int, 1, 1_000_000,
                     Capability.manage_accounts))
register(SettingSpec("capacity.warn_pct", lambda: get_settings().CAPACITY_WARN_PCT, int, 1, 100))
register(SettingSpec("capacity.critical_pct", lambda: get_settings().CAPACITY_CRITICAL_PCT, int, 1, 100))
register(SettingSpec("capacity.full_pct", lambda: 100, int, 1, 200))
# A store moves to its standby account at this usage; 0 turns automatic switching off.
register(SettingSpec("capacity.switch_pct", lambda: get_settings().CAPACITY_SWITCH_PCT, int, 0, 100))
register(SettingSpec("capacity.hysteresis_pct", lambda: 5, int, 1, 50))
register(SettingSpec("capacity.repeat_hours", lambda: 24, int, 1, 720))
register(SettingSpec("capacity.alert_template", default_template, str))
register(SettingSpec("wecom.calls_per_minute", lambda: 9000, int, 1, 10_000))
# Accounts this many points below a level, or growing this many points of their limit a day, are listed every minute.
register(SettingSpec("capacity.watch_band_pct", lambda: 10, int, 0, 50))
register(SettingSpec("capacity.watch_growth_pct", lambda: 10, int, 1, 100))
# Store contact codes: customers added without the member confirming each request.
register(SettingSpec("codes.skip_verify", lambda: True, bool))
# Off for chains whose App renders entries without our QR code: an entry may then be visible before its code exists.
register(SettingSpec("codes.entry_needs_code", lambda: True, bool))
# 获客链接 next to the QR code (they cost quota, so HQ turns them on).
register(SettingSpec("codes.links_enabled", lambda: False, bool))
# Under this many 获客链接 adds left, one alert (WeCom's own balance_low event fires under 20).
register(SettingSpec("codes.links_balance_low", lambda: 20, int, 0, 1_000_000))
# Off: only hq_admin may still log in with a password (break-glass); everyone else scans with WeCom.
register(SettingSpec("auth.password_login", lambda: True, bool, capability=Capability.manage_users))


def effective(*, session: Session, key: str) -> Any:
    spec = SPECS[key]
    row = session.get(SettingOverride, key)
    if row is None:
        return spec.default()
    return json.loads(row.value_json)


def effective_all(*, session: Session) -> dict[str, Any]:
    rows = {r.key: json.loads(r.value_json) for r in session.exec(select(SettingOverride)).all()}
    return {key: rows.get(key, spec.default()) for key, spec in SPECS.items()}


def validate(key: str, value: Any) -> Any:
    spec = SPECS.get(key)
    if spec is None:
        raise InvalidInput("settings.unknown_key", key=key)
    try:
        typed = spec.kind(value)
    except (TypeError, ValueError):
        raise InvalidInput("settings.bad_value", key=key) from None
    if spec.minimum is not None and typed < spec.minimum or spec.maximum is not None and typed > spec.maximum:
        raise InvalidInput("settings.out_of_range", key=key, minimum=spec.minimum, maximum=spec.maximum)
    return typed


def require_chain_wide(actor: Actor, capability: Capability) -> None:
    """Settings apply to every branch: only an HQ role without a branch scope may
    change them (a scoped operator, such as an agency, manages its own branch only)."""
    require(actor, capability)
    if actor.branch_scope is not None:
        raise PermissionDenied("settings.chain_wide_only")


def save(*, session: Session, actor: Actor, key: str, value: Any) -> None:
    spec = SPECS.get(key)
    if spec is None:
        raise InvalidInput("settings.unknown_key", key=key)
    require_chain_wide(actor, spec.capability)
    typed = validate(key, value)
    before = effective(session=session, key=key)
    row = session.get(SettingOverride, key)
    if row is None:
        row = SettingOverride(key=key, value_json=json.dumps(typed))
    row.value_json = json.dumps(typed)
    row.updated_at = utcnow()
    row.updated_by_id = actor.user_id
    session.add(row)
    audit.record(session=session, actor=actor, action="setting.update", entity_type="setting",
                 entity_id=key, before={"value": before}, after={"value": typed})
