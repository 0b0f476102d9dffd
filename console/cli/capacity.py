"""add-channel, and the WeCom simulator + robot inbox for the demo."""

import logging
import signal
import threading

from sqlmodel import col, select

from base.config import get_settings
from core import settings_store
from core.alerts import channels
from core.auth.permissions import system_actor
from core.capacity.placement import placements
from core.capacity.rules import usage_pct
from db.engine import check_database, get_engine, session_scope
from db.models import Account, AccountStatus, AlertChannel
from demo.simulator import WeComSimulator

CLI_ACTOR = system_actor("cli")


def register(subparsers) -> None:
    p = subparsers.add_parser("add-channel", help="add an alert channel (group robot or JSON webhook)")
    p.add_argument("--kind", required=True, choices=["wecom", "dingtalk", "feishu", "webhook"])
    p.add_argument("--url", required=True)
    p.add_argument("--secret", help="signing secret (DingTalk/Feishu signing; HMAC header for webhook)")
    p.add_argument("--branch", help="branch code; without it the channel gets every alert")
    p.add_argument("--name")
    p.set_defaults(handler=cmd_add_channel)

    p = subparsers.add_parser("simulator", help="run the WeCom API simulator and robot inbox (demo, tests)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8502)
    p.add_argument("--corp-id", help="default: WECOM_CORP_ID or wwsimulator")
    p.add_argument("--secret", help="default: WECOM_SECRET or simulator-secret")
    p.add_argument("--per-minute", type=int, help="calls per minute per API before errcode 45009")
    p.add_argument("--from-database", action="store_true", help="serve the database's accounts and their counts")
    p.add_argument("--grow", type=int, default=0,
                   help="demo: this many accounts just under the warning line gain customers and cross it")
    p.add_argument("--grow-speed", type=float, default=1.0,
                   help="demo: run the growth this many times faster (tests)")
    p.set_defaults(handler=cmd_simulator)


def cmd_add_channel(args) -> int:
    check_database(get_engine())
    with session_scope() as session:
        channel = channels.add_channel(session=session, actor=CLI_ACTOR, kind=args.kind, url=args.url,
                                       secret=args.secret, branch_code=args.branch, name=args.name)
        print(f"added alert channel #{channel.id} '{channel.name}' ({channel.kind}"
              f"{', branch ' + args.branch if args.branch else ', all branches'})")
    return 0


def growth_plan(accounts: list[tuple[str, int, int]], warn_pct: int, how_many: int) -> dict[str, float]:
    """Customers per minute for the accounts closest under the warning line, so
    each crosses it a minute or two after the previous one. `accounts`: (userid,
    count, limit) of the accounts that may grow."""
    under = sorted((a for a in accounts if usage_pct(a[1], a[2]) < warn_pct), key=lambda a: -usage_pct(a[1], a[2]))
    plan: dict[str, float] = {}
    for number, (userid, count, limit) in enumerate(under[:how_many]):
        missing = limit * warn_pct / 100 - count
        minutes = 1 + 1.5 * number
        plan[userid] = max(1.0, missing / minutes)
    return plan


def cmd_simulator(args) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    sim = WeComSimulator(corp_id=args.corp_id or settings.WECOM_CORP_ID or "wwsimulator",
                         secret=args.secret or settings.WECOM_SECRET or "simulator-secret",
                         per_minute=args.per_minute, host=args.host, port=args.port)
    if args.from_database:
        check_database(get_engine())
        with session_scope() as session:
            rows = session.exec(select(Account.id, Account.userid, Account.customer_count, Account.capacity_limit,
                                       Account.status)).all()
            warn = settings_store.effective(session=session, key="capacity.warn_pct")
            placed = placements(session=session)
            with_own_robot = set(session.exec(select(AlertChannel.branch_id).where(
                col(AlertChannel.branch_id).is_not(None), col(AlertChannel.enabled).is_(True))).all())
        sim.set_customers({userid: count for _id, userid, count, _limit, _status in rows})
        sim.set_limits({userid: limit for _id, userid, _count, limit, _status in rows})
        # Grow accounts that serve a store (the alert names its branch and store) in a
        # branch without its own robot: each crossing is then one message, in the HQ group.
        plan = growth_plan([(u, c, lim) for account_id, u, c, lim, s in rows
                            if s == AccountStatus.active and account_id in placed
                            and placed[account_id].branch_id not in with_own_robot], warn, args.grow)
        if plan:
            sim.grow(plan, speed=args.grow_speed)
            for userid, rate in plan.items():
                print(f"demo growth: {userid} +{rate:.0f} customers/min", flush=True)
    sim.start()
    print(f"WeCom simulator on {sim.base_url} (corp id {sim.corp_id}); robot inbox {sim.base_url}/_simulator/inbox",
          flush=True)
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    stopped.wait()
    sim.stop()
    return 0
