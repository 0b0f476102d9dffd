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
from db.models import Account, AccountStatus, AlertChannel, ChannelKind, ContactCode, Store
from db.typed import select_columns
from demo import people
from demo import standby as demo_standby
from demo.simulator import WeComSimulator

CLI_ACTOR = system_actor("cli")


def register(subparsers) -> None:
    p = subparsers.add_parser("add-channel",
                              help="add an alert channel (group robot, JSON webhook or WeCom app messages)")
    p.add_argument("--kind", required=True, choices=[kind.value for kind in ChannelKind])
    p.add_argument("--url", help="the robot's or webhook's address (not for wecom_app)")
    p.add_argument("--secret", help="signing secret (DingTalk/Feishu signing; HMAC header for webhook)")
    p.add_argument("--to", metavar="USERID[|USERID…]", help="wecom_app: the members who get every alert")
    p.add_argument("--to-branch-managers", action="store_true",
                   help="wecom_app: also the alert's branch managers linked to WeCom (create-user --wecom-userid)")
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
    p.add_argument("--agent-id", help="the self-built app's agent id; default: WECOM_AGENT_ID or 1000002")
    p.add_argument("--callback-url", help="where member changes are posted as change_contact callbacks")
    p.add_argument("--callback-token", help="default: WECOM_CALLBACK_TOKEN")
    p.add_argument("--callback-aes-key", help="default: WECOM_CALLBACK_AES_KEY")
    p.add_argument("--scans-per-minute", type=float, default=0.0,
                   help="demo: customers scan the store codes at about this rate (add_external_contact callbacks)")
    p.add_argument("--leave-after", type=float, metavar="SECONDS",
                   help="demo (with --from-database): a BJ store's member leaves the company after this long")
    p.add_argument("--switch-after", type=float, metavar="SECONDS",
                   help="demo (with --from-database): one store's account reaches the switch level after this "
                        "long and the store moves to its standby")
    p.set_defaults(handler=cmd_simulator)


def cmd_add_channel(args) -> int:
    check_database(get_engine())
    with session_scope() as session:
        channel = channels.add_channel(session=session, actor=CLI_ACTOR, kind=args.kind, url=args.url or "",
                                       secret=args.secret, branch_code=args.branch, name=args.name,
                                       members=args.to, to_branch_managers=args.to_branch_managers)
        recipients = ""
        if channel.kind == ChannelKind.wecom_app:
            recipients = ", to " + " | ".join(
                ([channel.recipients] if channel.recipients else [])
                + (["the branch managers"] if channel.to_branch_managers else []))
        print(f"added alert channel #{channel.id} '{channel.name}' ({channel.kind}"
              f"{', branch ' + args.branch if args.branch else ', all branches'}{recipients})")
    return 0


def growth_plan(accounts: list[tuple[str, int, int]], warn_pct: int, how_many: int,
                first: set[str] | frozenset[str] = frozenset()) -> dict[str, float]:
    """Customers per minute for the accounts closest under the warning line, so
    each crosses it a minute or two after the previous one; the closest of those
    in `first` goes first. `accounts`: (userid, count, limit) of the accounts that may grow."""
    under = sorted((a for a in accounts if usage_pct(a[1], a[2]) < warn_pct), key=lambda a: -usage_pct(a[1], a[2]))
    leader = next((a for a in under if a[0] in first), None)
    if leader is not None:
        under = [leader, *(a for a in under if a is not leader)]
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
                         per_minute=args.per_minute, host=args.host, port=args.port,
                         agent_id=args.agent_id or settings.WECOM_AGENT_ID or "1000002",
                         callback_url=args.callback_url,
                         callback_token=args.callback_token or settings.WECOM_CALLBACK_TOKEN,
                         callback_aes_key=args.callback_aes_key or settings.WECOM_CALLBACK_AES_KEY)
    leaving: threading.Timer | None = None
    if args.from_database:
        check_database(get_engine())
        with session_scope() as session:
            rows = session.exec(select(Account.id, Account.userid, Account.customer_count, Account.capacity_limit,
                                       Account.status)).all()
            warn = settings_store.effective(session=session, key="capacity.warn_pct")
            placed = placements(session=session)
            branch_channels = session.exec(select(AlertChannel.branch_id, AlertChannel.kind).where(
                col(AlertChannel.branch_id).is_not(None), col(AlertChannel.enabled).is_(True))).all()
            sim.set_members(people.members_from_database(session=session))
            with_own_robot = {branch_id for branch_id, kind in branch_channels if kind != ChannelKind.wecom_app}
            with_app_channel = {branch_id for branch_id, kind in branch_channels if kind == ChannelKind.wecom_app}
            # Grow accounts that serve a store (the alert names its branch and store) in a
            # branch without its own robot: each crossing is then one message, in the HQ group;
            # first one whose branch managers get app messages.
            growable = [(u, c, lim, placed[account_id].branch_id) for account_id, u, c, lim, s in rows
                        if s == AccountStatus.active and account_id in placed
                        and placed[account_id].branch_id not in with_own_robot]
            plan = growth_plan([(u, c, lim) for u, c, lim, _branch in growable], warn, args.grow,
                               first={u for u, _c, _lim, branch in growable if branch in with_app_channel})
            if args.switch_after:
                # One store's account crosses the switch level and moves to its standby.
                switching = demo_standby.switch_growth(session=session, minutes=args.switch_after / 60)
                plan.update(switching)
                for userid in switching:
                    print(f"demo: {userid} reaches the switch level in {args.switch_after:.0f} s", flush=True)
            leaver = people.leaving_member(session=session, keep=set(plan)) if args.leave_after is not None else None
            # The codes the console made with an earlier simulator keep working.
            for state, config_id, userid, name in session.exec(select_columns(
                    ContactCode.state, ContactCode.config_id, ContactCode.userid, Store.name)
                    .join(Store, col(Store.id) == ContactCode.store_id)
                    .where(col(ContactCode.config_id).is_not(None))).all():
                sim.codes.keep(config_id, state=state, user=[userid] if userid else [], remark=name[:30])
        sim.set_customers({userid: count for _id, userid, count, _limit, _status in rows})
        sim.set_limits({userid: limit for _id, userid, _count, limit, _status in rows})
        if plan:
            sim.grow(plan, speed=args.grow_speed)
            for userid, rate in plan.items():
                print(f"demo growth: {userid} +{rate:.0f} customers/min", flush=True)
        if leaver is not None:
            leaving = threading.Timer(args.leave_after, sim.member_leaves, [leaver[0]])
            leaving.daemon = True
            leaving.start()
            print(f"demo: member {leaver[0]} ({leaver[1]}) leaves the company in {args.leave_after:.0f} s", flush=True)
    sim.start()
    stopped = threading.Event()
    if args.scans_per_minute > 0:
        threading.Thread(target=sim.codes.scan_randomly, args=(stopped, args.scans_per_minute),
                         name="demo-scans", daemon=True).start()
        print(f"demo: customers scan store codes, about {args.scans_per_minute:g} a minute", flush=True)
    print(f"WeCom simulator on {sim.base_url} (corp id {sim.corp_id}); robot inbox {sim.base_url}/_simulator/inbox",
          flush=True)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    stopped.wait()
    if leaving is not None:
        leaving.cancel()
    sim.stop()
    return 0
