"""export-entries: every store's entry config as JSON (the client API's shape);
set-entries: the bindings page's bulk show/hide, as a console user."""

import json
import os
import sys
import tempfile
from pathlib import Path

from core.auth.permissions import system_actor
from core.bindings import entries, entry_flags
from core.bindings.imports.commit import actor_for_username
from core.bindings.review import BulkRefused
from core.sheets import SheetColumn, read_sheet
from db.engine import check_database, get_engine, session_scope
from i18n import error_text, t

CLI_ACTOR = system_actor("cli")


def register(subparsers) -> None:
    p = subparsers.add_parser("export-entries", help="every store's entry config as JSON (stdout or --out FILE)")
    p.add_argument("--out", type=Path, help="write to this file (replaced atomically) instead of stdout")
    p.set_defaults(handler=cmd_export_entries)
    p = subparsers.add_parser("set-entries", help="show or hide stores' entries as user U; all or nothing, audited")
    flag = p.add_mutually_exclusive_group(required=True)
    flag.add_argument("--show", dest="shown", action="store_true", default=None)
    flag.add_argument("--hide", dest="shown", action="store_false")
    p.add_argument("--user", required=True, help="the console user the change is made as (their rights apply)")
    stores = p.add_mutually_exclusive_group(required=True)
    stores.add_argument("--store", action="extend", nargs="+", metavar="ID", help="CRM store IDs")
    stores.add_argument("--file", type=Path,
                        help="one CRM store ID per line, or a sheet (.xlsx/.csv) with a CRM门店ID column")
    p.set_defaults(handler=cmd_set_entries)


STORE_COLUMN = SheetColumn("crm_store_id", ("CRM门店ID", "crm_store_id"), is_id=True)


def store_ids_from(path: Path) -> list[str]:
    """A sheet's CRM门店ID column (read as text, as uploads are), or one ID per line."""
    data = path.read_bytes()
    text = None if path.suffix.lower() == ".xlsx" else data.decode("utf-8-sig", errors="replace")
    if text is not None and not any(h in text.split("\n", 1)[0] for h in STORE_COLUMN.headers):
        return [line.strip() for line in text.splitlines() if line.strip()]
    return [row.values["crm_store_id"] for row in read_sheet(data, path.name, [STORE_COLUMN]).rows
            if row.values.get("crm_store_id")]


def cmd_set_entries(args) -> int:
    check_database(get_engine())
    try:
        crm_store_ids = args.store if args.file is None else store_ids_from(args.file)
    except OSError as exc:
        print(f"error: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 1
    if not crm_store_ids:
        print("error: no CRM store IDs given; nothing was changed", file=sys.stderr)
        return 1
    try:
        with session_scope() as session:
            actor = actor_for_username(session=session, username=args.user)
            result = entry_flags.set_entries(session=session, actor=actor, crm_store_ids=crm_store_ids,
                                             shown=args.shown)
    except BulkRefused as exc:
        print(f"error: {error_text(exc)}", file=sys.stderr)
        for problem in exc.problems:
            print(f"{problem.crm_store_id} {problem.store_name}: {t(f'bindings.problem.{problem.reason}')}",
                  file=sys.stderr)
        return 1
    print(f"{'shown' if args.shown else 'hidden'}: {result.changed} changed, {result.unchanged} already so")
    return 0


def _write(stream, session) -> int:
    """A JSON array written one entry at a time, so 50,000 stores need no big list."""
    count = 0
    stream.write("[")
    for entry in entries.all_entries(session=session, actor=CLI_ACTOR):
        stream.write(("\n" if count == 0 else ",\n") + json.dumps(entry.as_json(), ensure_ascii=False))
        count += 1
    stream.write("\n]\n" if count else "]\n")
    return count


def cmd_export_entries(args) -> int:
    check_database(get_engine())
    with session_scope() as session:
        if args.out is None:
            count = _write(sys.stdout, session)
        else:
            # A reader never sees a half-written file: write beside it, then rename.
            target = args.out.resolve()
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as stream:
                    count = _write(stream, session)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
    if args.out is not None:
        print(f"wrote {count} entries to {args.out}", file=sys.stderr)
    return 0
