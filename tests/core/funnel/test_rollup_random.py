"""The roll-up against a brute-force distinct count over the funnel facts:
random events sent out of order, late, resent and in random batches, adds by
State and by binding, stores moving between branches, roll-ups in small
chunks between the rounds; then overall(), daily(), by_branch() and by_store()
for random ranges, branches, stores and platforms, on SQLite and PostgreSQL."""

import random
from collections import defaultdict
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session

from core.auth.permissions import system_actor
from core.funnel import contacts, intake, queries, rollup
from core.funnel.queries import MetricsFilter
from db.engine import get_engine
from db.models import Store
from tests.support.factories import make_account, make_binding, make_branch, make_store

SYSTEM = system_actor("test")
SHANGHAI = ZoneInfo("Asia/Shanghai")
FIRST = date(2026, 9, 1)
DAYS = 45
NOW = datetime(2026, 10, 20, 12, 0, tzinfo=SHANGHAI)
STEPS = list(intake.FUNNEL_STEPS[:4])


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request) -> Session:
    url = request.getfixturevalue("db_url" if request.param == "sqlite" else "pg_url")
    with Session(get_engine(url), expire_on_commit=False) as session:
        yield session


class World:
    """The org and, beside the database, every fact the console should hold."""

    def __init__(self, session: Session, rng: random.Random) -> None:
        self.rng = rng
        self.branches = [make_branch(session, f"B{n}", name=f"分公司{n}") for n in range(3)]
        self.stores = [make_store(session, self.branches[n % 3], f"{n:06d}", name=f"门店{n}") for n in range(8)]
        self.accounts = [make_account(session, f"kf{n}", name=f"客服{n}") for n in range(len(self.stores))]
        for store, account in zip(self.stores, self.accounts, strict=True):
            make_binding(session, store, account, started_at=datetime(2026, 1, 1))
        self.facts: set[tuple[str, str, int, int, str]] = set()  # step, user, day, store id, platform
        self.serial = 0

    def events(self, count: int) -> list[dict]:
        """New events, some near midnight; about one in ten resends an earlier one."""
        made = []
        for _ in range(count):
            self.serial += 1
            day = FIRST + timedelta(days=self.rng.randrange(DAYS))
            second = self.rng.choice([self.rng.randrange(86400), 86399, 0, 30])
            moment = datetime(day.year, day.month, day.day, tzinfo=SHANGHAI) + timedelta(seconds=second)
            store = self.rng.choice(self.stores)
            made.append({"event_id": f"r{self.serial}", "event": self.rng.choice(STEPS + ["jump_fail"]),
                         "occurred_at": moment.astimezone(ZoneInfo("UTC")).isoformat(),
                         "user_key": f"u{self.rng.randrange(25)}", "crm_store_id": store.crm_store_id,
                         "platform": self.rng.choice(intake.PLATFORMS)})
        return made

    def keep(self, event: dict) -> None:
        if event["event"] == "jump_fail":
            return
        store = next(s for s in self.stores if s.crm_store_id == event["crm_store_id"])
        moment = datetime.fromisoformat(event["occurred_at"])
        self.facts.add((event["event"], event["user_key"], intake.day_number(moment, SHANGHAI), store.id,
                        event["platform"]))

    def add(self, session: Session) -> None:
        """A customer added: by State (a store's CRM ID) or by the account's binding."""
        store = self.rng.choice(self.stores)
        account = self.rng.choice(self.accounts)
        by_state = self.rng.random() < 0.5
        day = FIRST + timedelta(days=self.rng.randrange(DAYS))
        moment = datetime(day.year, day.month, day.day, tzinfo=SHANGHAI) + timedelta(
            seconds=self.rng.randrange(86400))
        external = f"wm{self.rng.randrange(15)}"
        self.serial += 1
        change = contacts.ContactChange(corp_id="c", change_type=contacts.ADDED, userid=account.userid,
                                        external_userid=external, create_time=int(moment.timestamp()) + self.serial,
                                        state=store.crm_store_id if by_state else "")
        contacts.record_contact_change(session=session, actor=SYSTEM, change=change)
        kept = store if by_state else self.stores[self.accounts.index(account)]
        when = datetime.fromtimestamp(change.create_time, SHANGHAI)
        fact_day = intake.day_number(when, SHANGHAI)
        self.facts.add(("added", external, fact_day, kept.id, ""))
        if by_state:
            self.facts.add((intake.ADDED_BY_STATE, external, fact_day, kept.id, ""))

    def expected(self, filters: MetricsFilter, branch_of: dict[int, int]) -> dict[str, int]:
        a, b = intake.number_of(filters.start), intake.number_of(filters.end)
        users: dict[str, set] = defaultdict(set)
        for step, user, day, store_id, platform in self.facts:
            if not a <= day <= b:
                continue
            if filters.platform is not None and platform != filters.platform:
                continue
            if filters.store_id is not None and store_id != filters.store_id:
                continue
            if filters.branch_id is not None and branch_of[store_id] != filters.branch_id:
                continue
            users[step].add(user)
        return {step: len(found) for step, found in users.items()}


def figures_of(funnel: queries.Funnel) -> dict[str, int]:
    return {step: users for step, users in funnel.users.items() if users}


def random_filter(rng: random.Random, world: World, branch_of: dict[int, int]) -> MetricsFilter:
    start = FIRST + timedelta(days=rng.randrange(-3, DAYS))
    end = start + timedelta(days=rng.randrange(0, 20))
    branch = rng.choice([None, None, *[b.id for b in world.branches]])
    store = None
    if rng.random() < 0.3:
        candidates = [s.id for s in world.stores if branch is None or branch_of[s.id] == branch]
        store = rng.choice(candidates) if candidates else None
    return MetricsFilter(start, end, branch, store, rng.choice([None, None, *intake.PLATFORMS]))


def check(session: Session, world: World, rng: random.Random, rounds: int = 12) -> None:
    branch_of = {s.id: session.get(Store, s.id).branch_id for s in world.stores}
    for _ in range(rounds):
        filters = random_filter(rng, world, branch_of)
        assert figures_of(queries.overall(session=session, actor=SYSTEM, filters=filters).funnel) == \
            world.expected(filters, branch_of), filters
        for day, funnel in queries.daily(session=session, actor=SYSTEM, filters=filters):
            one_day = MetricsFilter(day, day, filters.branch_id, filters.store_id, filters.platform)
            assert figures_of(funnel) == world.expected(one_day, branch_of), one_day
        if filters.store_id is None:
            for row in queries.by_branch(session=session, actor=SYSTEM, filters=filters):
                per_branch = MetricsFilter(filters.start, filters.end, row.branch_id, None, filters.platform)
                assert figures_of(row.funnel) == world.expected(per_branch, branch_of), per_branch
        if filters.branch_id is not None and filters.store_id is None:
            for row in queries.by_store(session=session, actor=SYSTEM, filters=filters):
                per_store = MetricsFilter(filters.start, filters.end, None, row.store_id, filters.platform)
                assert figures_of(row.funnel) == world.expected(per_store, branch_of), per_store


@pytest.mark.parametrize("seed", [1, 2])
def test_roll_up_equals_a_brute_force_count(db, seed):
    rng = random.Random(seed)
    world = World(db, rng)
    sent: list[dict] = []
    for round_number in range(6):
        batch = world.events(rng.randrange(20, 120))
        # Resends of earlier events, possibly already rolled up.
        batch += rng.sample(sent, min(len(sent), rng.randrange(0, 15)))
        rng.shuffle(batch)
        for start in range(0, len(batch), 37):
            part = batch[start:start + 37]
            result = intake.ingest_events(session=db, actor=SYSTEM, events=part, now=NOW)
            db.commit()
            assert not result.rejected
            for event in part:
                world.keep(event)
        sent += batch
        for _ in range(rng.randrange(0, 6)):
            world.add(db)
        db.commit()
        if round_number in (2, 4):
            # A store moves to another branch: its whole history goes with it.
            store = db.get(Store, rng.choice(world.stores).id)
            store.branch_id = rng.choice([b.id for b in world.branches if b.id != store.branch_id])
            db.add(store)
            db.commit()
        if rng.random() < 0.8:
            rollup.refresh_rollup(session=db, chunk_facts=rng.choice([1, 7, 50, 10_000]))
            assert not rollup.pending(session=db)
            check(db, world, rng)
    rollup.refresh_rollup(session=db, chunk_facts=13)
    check(db, world, rng, rounds=40)
