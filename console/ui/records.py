"""Stored records in people's words: an audit entry's before/after as
"字段：旧 → 新", a job run's figures as "名称：数", job ids by their Chinese names.

Audit entries and job figures are stored as JSON with code names (`"status":
"active"`), so that they stay stable when wording changes; this module is where
they become Chinese. A field, value or job the catalog does not name yet is
still shown, in a Chinese frame, rather than hidden.
"""

import json
from typing import Any

from base.problems import Problem
from i18n import CATALOG, LANGUAGE, error_text, label, t

# Values read through another catalog prefix, by field (and, for `status`, by the entry's entity type).
_VALUE_PREFIXES = {
    "end_reason": "end_reason", "role": "role", "kind": "channel_kind", "level": "capacity.level",
    "reason": "standby.reason",
}
_STATUS_PREFIXES = {"account": "account_status", "store": "store_status"}
# Yes/no fields with words of their own.
_FLAGS = {
    "shown": ("stores.entry.shown", "stores.entry.hidden"),
    "current": ("audit.value.current", "audit.value.ended"),
    "reviewed": ("audit.value.reviewed", "audit.value.not_reviewed"),
    "enabled": ("audit.value.enabled", "audit.value.disabled"),
}
EMPTY = "—"


def _known(key: str) -> bool:
    return key in CATALOG[LANGUAGE]


def field_name(key: str) -> str:
    return label(f"audit.field.{key}", t("audit.field.other", field=key))


def value_text(key: str, value: Any, entity_type: str = "") -> str:
    if value is None or value == "":
        return EMPTY
    if isinstance(value, bool):
        yes, no = _FLAGS.get(key, ("common.yes", "common.no"))
        return t(yes if value else no)
    if isinstance(value, list):
        return "、".join(value_text(key, item, entity_type) for item in value) or t("audit.value.none")
    if isinstance(value, dict):
        return "；".join(f"{field_name(k)} {value_text(k, v, entity_type)}" for k, v in value.items())
    if key == "status_reason" and isinstance(value, str):
        return error_text(Problem.decode(value))
    prefix = _STATUS_PREFIXES.get(entity_type) if key == "status" else _VALUE_PREFIXES.get(key)
    if prefix and _known(f"{prefix}.{value}"):
        return t(f"{prefix}.{value}")
    return str(value)


def _loaded(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        loaded = json.loads(text)
    except ValueError:
        return {"value": text}
    return loaded if isinstance(loaded, dict) else {"value": loaded}


def change_text(entity_type: str, before_json: str | None, after_json: str | None) -> str:
    """One line per field: changed ones first as "字段：旧 → 新", then the ones that
    stayed as "字段：值"; a field only after (a creation) as "字段：新"."""
    before, after = _loaded(before_json), _loaded(after_json)
    changed, kept = [], []
    for key in [*before, *(k for k in after if k not in before)]:
        if key == "version":
            continue  # an edit counter, not something a person changed
        old = value_text(key, before.get(key), entity_type)
        new = value_text(key, after.get(key), entity_type)
        if key not in before:
            changed.append(f"{field_name(key)}：{new}")
        elif key not in after:
            changed.append(f"{field_name(key)}：{old} → {EMPTY}")
        elif before[key] == after[key]:
            kept.append(f"{field_name(key)}：{old}")
        else:
            changed.append(f"{field_name(key)}：{old} → {new}")
    return "；".join(changed + kept)


def job_name(job_id: str) -> str:
    return label(f"job.{job_id}", t("jobs.unnamed", job_id=job_id))


def _figure(key: str, value: Any) -> str:
    name = label(f"job_figure.{key}", t("audit.field.other", field=key)) if not _known(key) else t(key)
    if isinstance(value, dict):
        inner = "，".join(_figure(k, v) for k, v in value.items())
        return f"{name}（{inner or t('audit.value.none')}）"
    if isinstance(value, str) and _known(value):
        value = t(value)
    elif isinstance(value, float):
        value = f"{value:.2f}".rstrip("0").rstrip(".")
    elif isinstance(value, list):
        value = "、".join(str(item) for item in value) or t("audit.value.none")
    return f"{name} {value}"


def figures_text(figures_json: str | None) -> str:
    """A job run's figures, e.g. "同步账号 12，失败 0，原因（该成员不在…… 1）"."""
    figures = _loaded(figures_json)
    return "，".join(_figure(key, value) for key, value in figures.items())
