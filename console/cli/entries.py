"""export-entries: every store's entry config as JSON (the client API's shape)."""

import json
import os
import sys
import tempfile
from pathlib import Path

from core.auth.permissions import system_actor
from core.bindings import entries
from db.engine import check_database, get_engine, session_scope

CLI_ACTOR = system_actor("cli")


def register(subparsers) -> None:
    p = subparsers.add_parser("export-entries", help="every store's entry config as JSON (stdout or --out FILE)")
    p.add_argument("--out", type=Path, help="write to this file (replaced atomically) instead of stdout")
    p.set_defaults(handler=cmd_export_entries)


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
