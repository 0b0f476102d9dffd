"""Alert rules, as pure functions: which episodes close, which open, and which
single level is notified.

An episode of (account, level) opens when usage reaches the level and ends when
usage falls `hysteresis` points below it; a later crossing is a new episode. A
jump across several levels opens each of them but notifies only the highest.
"""

from dataclasses import dataclass

LEVELS = ("warn", "critical", "full")
RANK = {level: rank for rank, level in enumerate(LEVELS)}
REPEATED_LEVELS = ("critical", "full")


@dataclass(frozen=True)
class Thresholds:
    warn: int = 70
    critical: int = 90
    full: int = 100
    hysteresis: int = 5
    repeat_hours: int = 24

    def pct(self, level: str) -> int:
        return getattr(self, level)


@dataclass(frozen=True)
class Decision:
    close: frozenset[str]
    open: tuple[str, ...]
    notify: str | None


def usage_pct(count: int, limit: int) -> float:
    return 100.0 * count / limit if limit > 0 else 0.0


def decide(pct: float, open_levels: set[str], thresholds: Thresholds) -> Decision:
    close = frozenset(level for level in open_levels if pct < thresholds.pct(level) - thresholds.hysteresis)
    still_open = set(open_levels) - close
    crossed = tuple(level for level in LEVELS if pct >= thresholds.pct(level) and level not in still_open)
    notify = None
    if crossed:
        highest = crossed[-1]
        # An already open, higher level has told the group; a lower crossing adds nothing.
        if all(RANK[highest] > RANK[level] for level in still_open):
            notify = highest
    return Decision(close=close, open=crossed, notify=notify)


def highest(levels: set[str]) -> str | None:
    return max(levels, key=RANK.__getitem__) if levels else None
