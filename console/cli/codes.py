"""export-codes: the store contact codes as posters (one PNG per bound store) plus an index sheet, zipped."""

import os
import sys
import tempfile
from pathlib import Path

from core.auth.permissions import system_actor
from core.codes import posters
from db.engine import check_database, get_engine, session_scope

CLI_ACTOR = system_actor("cli")


def register(subparsers) -> None:
    p = subparsers.add_parser("export-codes",
                              help="each bound store's QR code as <CRM门店ID>_<门店名称>.png, and an index (zip)")
    p.add_argument("--out", type=Path, required=True, help="the zip file to write (replaced atomically)")
    p.add_argument("--branch", help="only this branch's stores (branch code)")
    p.set_defaults(handler=cmd_export_codes)


def cmd_export_codes(args) -> int:
    check_database(get_engine())
    with session_scope() as session:
        stores = posters.poster_stores(session=session, actor=CLI_ACTOR, branch_code=args.branch)
    posters.cjk_font_path()
    # A reader never sees a half-written zip: write beside it, then rename.
    target = args.out.resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as stream:
            result = posters.write_posters(stores, stream)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    print(f"wrote {result.count} posters to {args.out}", file=sys.stderr)
    if result.failed:
        print(f"error: the QR image of {len(result.failed)} stores could not be fetched: "
              f"{', '.join(result.failed[:20])}", file=sys.stderr)
        return 1
    return 0
