"""The age of a customer count in words ("3 分钟前"), flagged 过旧 when the count is
older than twice its sync interval (the rule: core.capacity.watch.freshness)."""

from core.capacity.watch import Freshness
from i18n import t


def age_text(age_seconds: float | None, *, stale: bool) -> str:
    """How long ago the count was listed in WeCom, and the stale flag."""
    if age_seconds is None:
        return t("capacity.age.never")
    if age_seconds < 60:
        age = t("capacity.age.now")
    elif age_seconds < 3600:
        age = t("capacity.age.minutes", minutes=int(age_seconds // 60))
    elif age_seconds < 86400:
        age = t("capacity.age.hours", hours=int(age_seconds // 3600))
    else:
        age = t("capacity.age.days", days=int(age_seconds // 86400))
    return t("capacity.age.stale", age=age) if stale else age


def count_age(fresh: Freshness | None) -> str:
    """The age with the stale flag; an account watched closely says so, which is why a few
    minutes can already be stale for it. No freshness known: the count was never listed."""
    if fresh is None:
        return t("capacity.age.never")
    age = age_text(fresh.age_seconds, stale=fresh.stale)
    return t("capacity.age.watched", age=age) if fresh.hot else age
