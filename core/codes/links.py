"""获客链接 (customer acquisition links, issue 11 item 4): one link per store with a
contact code, opening the profile of the member the code serves, so the App and H5
can send a customer to the store's account without a long-press.

- `codes.links_enabled` (off by default: adds through links cost quota) decides
  whether stores get links. A link follows its code's member: when the code moves
  (换号, a standby switch, a member swap) the link is updated behind the same link_id;
  a closed store's link is deleted. Updates and deletions go on while links are off,
  so a link handed out earlier never sends customers to an account the store left.
- A WeCom refusal (create, update or delete) is stored on the store's code in
  words (`link_problem`, key + params) and shown with the code; the next call
  WeCom takes clears it.
- Before `create_link` is sent the row is marked (`link_pending_since`, committed)
  and the answer clears the mark. A sidecar killed in between leaves it: the next
  run first looks among the links WeCom has (`list_link` + `get_link`) for one it
  made for that store — the store's link name and member, made since the mark,
  known to no other store — and keeps it instead of making a second.
- The corp's quota is read every hour; a balance under `codes.links_balance_low`
  opens one incident for the episode (on the alerts page, its message in the
  outbox), closed once the balance is back above the level.
- Each link's clicks and new customers are pulled per day (one call per link and
  day; the API takes at most 30 days) for the funnel page.

`contact_code.link_userid` is the member WeCom confirmed for the link: comparing it
with the code's member finds the links still to update.
"""

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from base.problems import problem
from base.timeutil import display_zone, utcnow
from core import settings_store
from core.alerts.incidents import close_incidents, open_incident
from core.auth.permissions import Actor, Capability, require
from core.codes.service import LINKS_ENABLED, SKIP_VERIFY
from core.scheduling.lease import Fence
from core.wecom.client import LINK_NAME_MAX, LINK_NOT_FOUND, WeComClient, WeComError
from db.models import AcquisitionQuota, AlertLevel, Branch, ContactCode, LinkStatistic, Store, StoreStatus
from db.typed import select_columns
from i18n import t

log = logging.getLogger("codes.links")

BALANCE_LOW = "codes.links_balance_low"
QUOTA_EVERY = timedelta(hours=1)
# Days a statistics run looks back for days not pulled yet (a sidecar that was down).
STATISTICS_CATCH_UP_DAYS = 7
CONCURRENCY = 8
CHUNK = 500
# How far before a pending mark a link it may have made is looked for (clock skew).
ADOPT_MARGIN = timedelta(minutes=2)
QUOTA_ROW = 1
T = TypeVar("T")


@dataclass
class LinkRow:
    code_id: int
    store_id: int
    crm_store_id: str
    name: str
    open: bool
    config_id: str | None
    userid: str | None       # the member the store's code serves (WeCom confirmed)
    link_id: str | None
    link_userid: str | None  # the member the link serves (WeCom confirmed)
    link_pending_since: datetime | None = None  # create_link sent, answer not recorded


@dataclass
class LinkSyncResult:
    links: int = 0
    created: int = 0
    adopted: int = 0
    updated: int = 0
    deleted: int = 0
    failed: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"links": self.links, "created": self.created, "adopted": self.adopted, "updated": self.updated,
                "deleted": self.deleted, "failed": self.failed, "reasons": self.reasons}

    def count_failure(self, exc: WeComError) -> None:
        self.failed += 1
        self.reasons[exc.reason_key] = self.reasons.get(exc.reason_key, 0) + 1


def link_name(store_name: str) -> str:
    """The store's name as the link's name (WeCom keeps at most 30 characters)."""
    return store_name[:LINK_NAME_MAX] or "-"


def load_rows(session: Session) -> list[LinkRow]:
    rows = session.exec(
        select_columns(ContactCode.id, Store.id, Store.crm_store_id, Store.name, Store.status, ContactCode.config_id,
                       ContactCode.userid, ContactCode.link_id, ContactCode.link_userid, ContactCode.link_pending_since)
        .select_from(ContactCode).join(Store, col(Store.id) == ContactCode.store_id)
        .order_by(col(ContactCode.id))).all()
    return [LinkRow(code_id, store_id, crm, name, status == StoreStatus.open, config_id, userid, link_id, link_userid,
                    pending)
            for code_id, store_id, crm, name, status, config_id, userid, link_id, link_userid, pending in rows]


def _refused(exc: WeComError) -> str:
    return problem(exc.reason_key, errcode=exc.errcode, errmsg=exc.errmsg[:300])


def _run(call: Callable[[LinkRow], T], rows: list[LinkRow]) -> list[tuple[LinkRow, T | None, WeComError | None]]:
    def one(row: LinkRow) -> tuple[LinkRow, T | None, WeComError | None]:
        try:
            return row, call(row), None
        except WeComError as exc:
            return row, None, exc

    with ThreadPoolExecutor(max_workers=CONCURRENCY, thread_name_prefix="wecom-links") as pool:
        return list(pool.map(one, rows))


def _write(engine: Engine, changes: list[tuple[LinkRow, dict[str, Any]]], fence: Fence | None) -> None:
    if not changes:
        return
    with Session(engine) as session:
        for row, change in changes:
            session.exec(update(ContactCode).where(col(ContactCode.id) == row.code_id)
                         .values(**change, updated_at=utcnow(), version=col(ContactCode.version) + 1))
        if fence is not None:
            fence.check(session)
        session.commit()


def sync_links(*, engine: Engine, client: WeComClient, fence: Fence | None = None,
               now: Callable[[], datetime] = utcnow) -> LinkSyncResult:
    """Create, update and delete store links so that each follows its code (see the module)."""
    with Session(engine) as session:
        rows = load_rows(session)
        enabled = bool(settings_store.effective(session=session, key=LINKS_ENABLED))
        skip_verify = bool(settings_store.effective(session=session, key=SKIP_VERIFY))
    result = LinkSyncResult()
    # First the links a killed run made (every marked row, also one no longer to
    # get a link: once adopted it is deleted or moved below like any other).
    waiting = [r for r in rows if not r.link_id and r.link_pending_since is not None]
    if waiting:
        _adopt(engine, client, waiting, result, fence)
    result.links = sum(1 for r in rows if r.link_id)
    deleting = [r for r in rows if r.link_id and not r.open]
    updating = [r for r in rows if r.link_id and r.open and r.userid
                and (r.link_userid or "").lower() != r.userid.lower()]
    creating = [r for r in rows if enabled and not r.link_id and r.open and r.config_id and r.userid]
    for start in range(0, len(deleting), CHUNK):
        changes: list[tuple[LinkRow, dict[str, Any]]] = []
        for row, _, error in _run(lambda r: client.delete_link(r.link_id or ""), deleting[start:start + CHUNK]):
            if error is None or error.errcode == LINK_NOT_FOUND:
                result.deleted += 1
                changes.append((row, {"link_id": None, "link_url": None, "link_userid": None, "link_problem": None}))
            else:
                result.count_failure(error)
                changes.append((row, {"link_problem": _refused(error)}))
        _write(engine, changes, fence)
    for start in range(0, len(updating), CHUNK):
        changes = []
        for row, _, error in _run(lambda r: client.update_link(link_id=r.link_id or "", link_name=link_name(r.name),
                                                               user_list=[r.userid or ""], skip_verify=skip_verify),
                                  updating[start:start + CHUNK]):
            if error is None:
                result.updated += 1
                changes.append((row, {"link_userid": row.userid, "link_problem": None}))
            elif error.errcode == LINK_NOT_FOUND:
                # Deleted elsewhere: forgotten here, and made again while links are on.
                changes.append((row, {"link_id": None, "link_url": None, "link_userid": None,
                                      "link_problem": _refused(error)}))
                result.count_failure(error)
            else:
                result.count_failure(error)
                changes.append((row, {"link_problem": _refused(error)}))
        _write(engine, changes, fence)
    for start in range(0, len(creating), CHUNK):
        chunk = creating[start:start + CHUNK]
        marked = now()
        # Committed before any create_link of the chunk is sent (see the module).
        _write(engine, [(row, {"link_pending_since": marked}) for row in chunk], fence)
        changes = []
        for row, answer, error in _run(lambda r: client.create_link(link_name=link_name(r.name),
                                                                    user_list=[r.userid or ""],
                                                                    skip_verify=skip_verify), chunk):
            if answer is not None:
                result.created += 1
                link_id, url = answer
                changes.append((row, {"link_id": link_id, "link_url": url, "link_userid": row.userid,
                                      "link_pending_since": None, "link_problem": None}))
            elif error is not None:
                result.count_failure(error)
                change: dict[str, Any] = {"link_problem": _refused(error)}
                # Without an answer (network) the link may exist: the mark stays and the next run looks.
                if error.errcode is not None:
                    change["link_pending_since"] = None
                changes.append((row, change))
        _write(engine, changes, fence)
    if result.failed:
        log.warning("links: %s", result.as_dict())
    return result


def _adopt(engine: Engine, client: WeComClient, rows: list[LinkRow], result: LinkSyncResult,
           fence: Fence | None) -> None:
    """Keep the links a run killed before recording them made: among the links
    WeCom has that no store here knows, the one with the store's link name and
    member made since the mark. A row without one loses its mark (WeCom never
    made its link; one still to get a link is marked again when it is sent)."""
    with Session(engine) as session:
        known = set(session.exec(select(ContactCode.link_id).where(col(ContactCode.link_id).is_not(None))).all())
    unknown = [link_id for link_id in client.list_links() if link_id not in known]
    found = [client.get_link(link_id) for link_id in unknown]
    changes: list[tuple[LinkRow, dict[str, Any]]] = []
    for row in rows:
        since = _stamp(row.link_pending_since) - int(ADOPT_MARGIN.total_seconds()) if row.link_pending_since else 0
        match = next((link for link in found
                      if link.get("link_name") == link_name(row.name)
                      and [u.lower() for u in link["user_list"]] == [(row.userid or "").lower()]
                      and int(link.get("create_time") or 0) >= since), None)
        if match is None:
            changes.append((row, {"link_pending_since": None}))
            continue
        found.remove(match)
        result.adopted += 1
        row.link_id = str(match["link_id"])
        changes.append((row, {"link_id": row.link_id, "link_url": str(match.get("url") or ""),
                              "link_userid": row.userid, "link_pending_since": None, "link_problem": None}))
    _write(engine, changes, fence)


def _stamp(at: datetime) -> int:
    return int(at.replace(tzinfo=UTC).timestamp())


# -- quota ---------------------------------------------------------------------


@dataclass(frozen=True)
class QuotaResult:
    read: bool
    total: int | None = None
    balance: int | None = None
    alerted: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"read": self.read, "total": self.total, "balance": self.balance, "alerted": self.alerted}


def quota_row(session: Session) -> AcquisitionQuota:
    row = session.get(AcquisitionQuota, QUOTA_ROW)
    if row is None:
        row = AcquisitionQuota(id=QUOTA_ROW)
        session.add(row)
        session.flush()
    return row


def quota_due(*, session: Session, now: datetime) -> bool:
    """Every hour, once links are on or any link exists."""
    row = session.get(AcquisitionQuota, QUOTA_ROW)
    if row is not None and row.read_at is not None and now - row.read_at < QUOTA_EVERY:
        return False
    if settings_store.effective(session=session, key=LINKS_ENABLED):
        return True
    return session.exec(select(ContactCode.id).where(col(ContactCode.link_id).is_not(None))).first() is not None


def read_quota(*, engine: Engine, client: WeComClient, fence: Fence | None = None,
               now: datetime | None = None) -> QuotaResult:
    """Read the balance; under the level, one alert per episode (in the same transaction)."""
    now = now or utcnow()
    try:
        total, balance = client.acquisition_quota()
    except WeComError as exc:
        with Session(engine) as session:
            row = quota_row(session)
            row.problem = problem(exc.reason_key, errcode=exc.errcode, errmsg=exc.errmsg[:300])
            row.read_at = now
            if fence is not None:
                fence.check(session)
            session.commit()
        log.warning("customer_acquisition_quota failed: %s", exc)
        return QuotaResult(read=False)
    with Session(engine) as session:
        low_level = int(settings_store.effective(session=session, key=BALANCE_LOW))
        row = quota_row(session)
        row.total, row.balance, row.read_at, row.problem = total, balance, now, None
        alerted = False
        if balance < low_level and row.low_alerted_at is None:
            # The quota is the chain's: an incident of no store and no branch, so HQ's.
            open_incident(session=session, level=AlertLevel.links_quota_low, store_id=None, branch_id=None, now=now,
                          detail=problem("links.incident.quota_low", balance=balance, total=total, level=low_level),
                          text=t("links.alert.balance_low", balance=balance, total=total, level=low_level))
            row.low_alerted_at = now
            alerted = True
        elif balance >= low_level:
            row.low_alerted_at = None
            close_incidents(session=session, level=AlertLevel.links_quota_low, now=now)
        session.add(row)
        if fence is not None:
            fence.check(session)
        session.commit()
    return QuotaResult(read=True, total=total, balance=balance, alerted=alerted)


@dataclass(frozen=True)
class QuotaView:
    total: int | None
    balance: int | None
    read_at: datetime | None
    low_level: int
    problem: str | None


def quota_view(*, session: Session, actor: Actor) -> QuotaView:
    """The quota as last read, for the alert settings page."""
    require(actor, Capability.manage_alerts)
    row = session.get(AcquisitionQuota, QUOTA_ROW)
    level = int(settings_store.effective(session=session, key=BALANCE_LOW))
    if row is None:
        return QuotaView(None, None, None, level, None)
    return QuotaView(row.total, row.balance, row.read_at, level, row.problem)


# -- statistics ------------------------------------------------------------------


def day_number(day: date) -> int:
    return (day - date(1970, 1, 1)).days


def _day_bounds(day: date, zone: ZoneInfo) -> tuple[int, int]:
    start = datetime.combine(day, datetime.min.time(), tzinfo=zone)
    return int(start.timestamp()), int((start + timedelta(days=1)).timestamp()) - 1


@dataclass
class StatisticsResult:
    days: int = 0
    calls: int = 0
    stored: int = 0
    failed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"days": self.days, "calls": self.calls, "stored": self.stored, "failed": self.failed}


def statistics_due(*, session: Session, today: date) -> bool:
    row = session.get(AcquisitionQuota, QUOTA_ROW)
    yesterday = day_number(today) - 1
    if row is not None and row.statistics_through is not None and row.statistics_through >= yesterday:
        return False
    return session.exec(select(ContactCode.id).where(col(ContactCode.link_id).is_not(None))).first() is not None


def pull_statistics(*, engine: Engine, client: WeComClient, today: date | None = None,
                    zone: ZoneInfo | None = None, fence: Fence | None = None) -> StatisticsResult:
    """Each link's figures for every whole day not pulled yet (up to a week back),
    one call per link and day; the days are marked done once every call succeeded."""
    zone = zone or display_zone()
    today = today or datetime.now(zone).date()
    yesterday = day_number(today) - 1
    with Session(engine) as session:
        through = session.exec(select(AcquisitionQuota.statistics_through)
                               .where(col(AcquisitionQuota.id) == QUOTA_ROW)).first()
        links = [(r.store_id, r.link_id or "") for r in load_rows(session) if r.link_id]
        first = max(yesterday - STATISTICS_CATCH_UP_DAYS + 1, (through or yesterday - 1) + 1)
        days = list(range(first, yesterday + 1))
        have = set(session.exec(select(LinkStatistic.link_id, LinkStatistic.day)
                                .where(col(LinkStatistic.day).between(first, yesterday))).all()) if days else set()
    result = StatisticsResult(days=len(days))
    wanted = [(store_id, link_id, day) for day in days for store_id, link_id in links if (link_id, day) not in have]

    def fetch(item: tuple[int, str, int]) -> tuple[int, int] | WeComError:
        start, end = _day_bounds(date(1970, 1, 1) + timedelta(days=item[2]), zone)
        try:
            return client.link_statistic(link_id=item[1], start_time=start, end_time=end)
        except WeComError as exc:
            return exc

    for chunk_start in range(0, len(wanted), CHUNK):
        chunk = wanted[chunk_start:chunk_start + CHUNK]
        with ThreadPoolExecutor(max_workers=CONCURRENCY, thread_name_prefix="wecom-link-stats") as pool:
            answers = list(pool.map(fetch, chunk))
        result.calls += len(chunk)
        with Session(engine) as session:
            for (store_id, link_id, day), answer in zip(chunk, answers, strict=True):
                if isinstance(answer, WeComError):
                    result.failed += 1
                    continue
                clicks, new_customers = answer
                session.add(LinkStatistic(store_id=store_id, link_id=link_id, day=day, clicks=clicks,
                                          new_customers=new_customers))
                result.stored += 1
            if fence is not None:
                fence.check(session)
            session.commit()
    if days and not result.failed:
        with Session(engine) as session:
            quota_row(session).statistics_through = yesterday
            if fence is not None:
                fence.check(session)
            session.commit()
    return result


@dataclass(frozen=True)
class LinkFigures:
    key: str       # branch code or CRM store ID
    name: str
    clicks: int
    new_customers: int


def link_figures(*, session: Session, actor: Actor, start: date, end: date, branch_id: int | None = None,
                 store_id: int | None = None) -> list[LinkFigures]:
    """Clicks and new customers through the stores' links over the days: per branch,
    or per store of `branch_id` (only `store_id` when given); a branch-scoped actor
    sees its own branch only. Empty when no link has figures."""
    require(actor, Capability.view_metrics, branch_id=branch_id)
    if actor.branch_scope is not None:
        branch_id = actor.branch_scope
    clicks, new_customers = func.sum(LinkStatistic.clicks), func.sum(LinkStatistic.new_customers)
    key, name = (Store.crm_store_id, Store.name) if branch_id is not None else (Branch.code, Branch.name)
    query = (select_columns(clicks, new_customers, key, name)
             .select_from(LinkStatistic)
             .join(Store, col(Store.id) == LinkStatistic.store_id)
             .join(Branch, col(Branch.id) == Store.branch_id)
             .where(col(LinkStatistic.day).between(day_number(start), day_number(end)))
             .group_by(key, name).order_by(key))
    if branch_id is not None:
        query = query.where(col(Store.branch_id) == branch_id)
    if store_id is not None:
        query = query.where(col(Store.id) == store_id)
    return [LinkFigures(row_key, row_name, int(row_clicks or 0), int(row_new or 0))
            for row_clicks, row_new, row_key, row_name in session.exec(query).all()]


def run_links_job(*, engine: Engine, client: WeComClient, fence: Fence | None = None,
                  now: Callable[[], datetime] = utcnow) -> dict[str, Any]:
    """What the sidecar's `codes.links` does each run: the links, then the quota when
    an hour has passed, then the day's figures once a day."""
    started = time.monotonic()
    figures: dict[str, Any] = {"links": sync_links(engine=engine, client=client, fence=fence).as_dict()}
    with Session(engine) as session:
        quota_now = quota_due(session=session, now=now())
        statistics_now = statistics_due(session=session, today=datetime.now(display_zone()).date())
    if quota_now:
        figures["quota"] = read_quota(engine=engine, client=client, fence=fence, now=now()).as_dict()
    if statistics_now:
        figures["statistics"] = pull_statistics(engine=engine, client=client, fence=fence).as_dict()
    figures["seconds"] = round(time.monotonic() - started, 2)
    return figures
