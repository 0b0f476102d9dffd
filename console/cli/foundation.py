"""migrate, create-user, unlock-user, create-api-key, import-stores, seed-demo."""

import getpass
import sys
from datetime import date, datetime, time
from pathlib import Path

from base.timeutil import format_display, to_storage
from core.auth import api_keys, users
from core.auth.passwords import generate_password
from core.auth.permissions import system_actor
from core.directory import stores
from db.engine import check_database, get_engine, session_scope
from db.migrate import upgrade_to_head
from demo import seed as demo
from i18n import t

CLI_ACTOR = system_actor("cli")


def register(subparsers) -> None:
    p = subparsers.add_parser("migrate", help="upgrade the schema to head")
    p.set_defaults(handler=cmd_migrate)

    p = subparsers.add_parser("create-user", help="add a console user")
    p.add_argument("--username", required=True)
    p.add_argument("--role", required=True, help="hq_admin | hq_operator | branch_manager | viewer")
    p.add_argument("--branch", help="branch code (required for branch_manager)")
    p.add_argument("--display-name", default="")
    p.add_argument("--expires", help="last valid day YYYY-MM-DD (agency operators)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    p.add_argument("--wecom-userid", help="link the user to this WeCom member (QR login, app messages)")
    p.set_defaults(handler=cmd_create_user)

    p = subparsers.add_parser("unlock-user", help="let a username log in again from every address at once")
    p.add_argument("--username", required=True)
    p.set_defaults(handler=cmd_unlock_user)

    p = subparsers.add_parser("create-api-key", help="print a new API key once; only its hash is stored")
    p.add_argument("--name", required=True)
    p.set_defaults(handler=cmd_create_api_key)

    p = subparsers.add_parser("import-stores", help="HQ store list from CRM (.xlsx or .csv), all or nothing")
    p.add_argument("file", type=Path)
    p.add_argument("--dry-run", action="store_true")
    p.set_defaults(handler=cmd_import_stores)

    p = subparsers.add_parser("seed-demo", help="a realistic demo data set (only into an empty database)")
    p.add_argument("--credentials-file", type=Path, help="also write the demo logins to this file (mode 600)")
    p.set_defaults(handler=cmd_seed_demo)


def _ready() -> None:
    check_database(get_engine())


def cmd_migrate(_args) -> int:
    _ready()
    upgrade_to_head()
    print("schema is at head")
    return 0


def cmd_create_user(args) -> int:
    _ready()
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        generated = False
    elif sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        generated = False
    else:
        password, generated = generate_password(), True
    expires = None
    if args.expires:
        try:
            expires = to_storage(datetime.combine(date.fromisoformat(args.expires), time(23, 59, 59)))
        except ValueError:
            print("error: --expires must be YYYY-MM-DD", file=sys.stderr)
            return 1
    with session_scope() as session:
        user = users.create_user(session=session, actor=CLI_ACTOR, data=users.UserCreate(
            username=args.username, role=args.role, password=password, display_name=args.display_name,
            branch_code=args.branch, expires_at=expires, wecom_userid=args.wecom_userid))
        linked = f", WeCom member {user.wecom_userid}" if user.wecom_userid else ""
        print(f"created user {user.username} ({user.role}{linked})")
    if generated:
        print(f"password: {password}")
    return 0


def cmd_unlock_user(args) -> int:
    _ready()
    with session_scope() as session:
        cleared = users.unlock_user(session=session, actor=CLI_ACTOR, username=args.username)
    print(f"unlocked {args.username.strip()} ({cleared} failed attempt(s) cleared)")
    return 0


def cmd_create_api_key(args) -> int:
    _ready()
    with session_scope() as session:
        row, plain = api_keys.create_api_key(session=session, actor=CLI_ACTOR, name=args.name)
        print(f"api key #{row.id} '{row.name}' (shown once, store it now):")
    print(plain)
    return 0


def cmd_import_stores(args) -> int:
    _ready()
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        print(f"error: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 1
    with session_scope() as session:
        result = stores.import_stores(session=session, actor=CLI_ACTOR, data=data, filename=args.file.name,
                                      dry_run=args.dry_run)
    if not result.ok:
        for row_number, key, params in result.errors:
            print(f"row {row_number}: {t(key, **params)}", file=sys.stderr)
        print(f"error: {len(result.errors)} invalid row(s); nothing was written", file=sys.stderr)
        return 1
    for run_id in result.resumed:
        print(f"import run #{run_id}, interrupted earlier, was finished first")
    verb = "would import" if args.dry_run else "imported"
    print(f"{verb} {result.rows} rows: {result.created} new, {result.updated} updated, "
          f"{result.unchanged} unchanged, {result.branches_created} new branches, "
          f"{result.closed_bindings} bindings ended by closed stores")
    if result.run is not None:
        finished = format_display(result.run.finished_at, "%Y-%m-%d %H:%M:%S") if result.run.finished_at else None
        print(f"import run #{result.run.run_id}: " + (f"finished {finished}" if finished else
                                                     f"{result.run.steps_done}/{result.run.steps_total} steps, "
                                                     "being finished by another process"))
    return 0


def cmd_seed_demo(args) -> int:
    _ready()
    with session_scope() as session:
        if not demo.is_empty(session=session):
            print("database already has data; demo not seeded")
            return 0
        created = demo.seed_demo(session=session)
    lines = ["Demo logins (demo data only; generated for this database):"]
    lines += [f"  {u.username:<12} {u.password:<20} {u.role}{' ' + u.branch if u.branch else ''}"
              + (f"  (or scan with WeCom as {u.wecom_userid})" if u.wecom_userid else "") for u in created]
    print("\n".join(lines))
    if args.credentials_file:
        args.credentials_file.parent.mkdir(parents=True, exist_ok=True)
        args.credentials_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
        args.credentials_file.chmod(0o600)
    return 0
