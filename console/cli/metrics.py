"""`metrics --from --to [--branch] [--format json|csv]`: the 导流效果 page's
figures for scripts and reports (DESIGN.md, fixed interfaces); and
`rebuild-funnel`: recut every stored day after CONSOLE_TIMEZONE changed."""

import csv
import json
import sys
from datetime import date

from core.auth.permissions import system_actor
from core.exports import neutralise
from core.funnel import queries, rollup
from db.engine import check_database, get_engine, session_scope

CLI_ACTOR = system_actor("cli")
FIGURES = ["open_stores", "bound_stores", "binding_rate", "order_result_users", "entry_click_users",
           "guide_view_users", "add_click_users", "added_customers", "entry_ctr", "add_click_rate", "add_rate"]


def register(subparsers) -> None:
    p = subparsers.add_parser("metrics", help="binding rate and funnel figures, overall and per branch")
    p.add_argument("--from", dest="start", required=True, help="first day YYYY-MM-DD (CONSOLE_TIMEZONE)")
    p.add_argument("--to", dest="end", required=True, help="last day YYYY-MM-DD, inclusive")
    p.add_argument("--branch", help="branch code")
    p.add_argument("--format", choices=["json", "csv"], default="json")
    p.set_defaults(handler=cmd_metrics)
    p = subparsers.add_parser("rebuild-funnel", help="recompute the funnel facts and roll-up from the kept events, "
                                                     "days cut in the current CONSOLE_TIMEZONE")
    p.set_defaults(handler=cmd_rebuild_funnel)


def cmd_metrics(args) -> int:
    try:
        start, end = date.fromisoformat(args.start), date.fromisoformat(args.end)
    except ValueError:
        print("error: --from and --to must be YYYY-MM-DD", file=sys.stderr)
        return 1
    check_database(get_engine())
    with session_scope() as session:
        # Take in facts the sidecar has not rolled up yet, so a script reads the latest figures.
        rollup.refresh_rollup(session=session)
    with session_scope() as session:
        figures = queries.report(session=session, actor=CLI_ACTOR, start=start, end=end, branch_code=args.branch)
        change = rollup.zone_change(session=session)
    if change:
        print(f"warning: days are cut at midnight in {change.recorded} (the zone the facts were recorded in), "
              f"not in CONSOLE_TIMEZONE={change.configured}; run `python -m console rebuild-funnel` to recut them",
              file=sys.stderr)
    if args.format == "json":
        print(json.dumps(figures, ensure_ascii=False, indent=2))
        return 0
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["from", "to", "branch_code", "branch_name", *FIGURES])
    rows = [("", "", figures["overall"])] + [(b["branch_code"], b["branch_name"], b) for b in figures["branches"]]
    for code, name, values in rows:
        writer.writerow([figures["from"], figures["to"], neutralise(code), neutralise(name),
                         *["" if values[key] is None else values[key] for key in FIGURES]])
    return 0


def cmd_rebuild_funnel(_args) -> int:
    check_database(get_engine())
    with session_scope() as session:
        figures = rollup.rebuild_funnel(session=session, actor=CLI_ACTOR)
    print(f"recut {figures['facts']:,} funnel facts from {figures['events']:,} tracking events and "
          f"{figures['adds']:,} added customers; rolling up …", flush=True)
    with session_scope() as session:
        rolled = rollup.refresh_rollup(session=session)
    print(f"done: {rolled['facts']:,} facts rolled up")
    return 0
