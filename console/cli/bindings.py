"""import-bindings: the upload page's validation and commit, from the command line."""

import functools
import gc
import sys
from collections.abc import Callable
from pathlib import Path

from base.errors import DomainError
from base.timeutil import format_display
from core.bindings.imports import commit, judge, read
from core.bindings.imports.flow import NextStep, next_step
from core.directory.known_members import CheckState
from db.engine import check_database, get_engine, session_scope
from i18n import error_text, t


def register(subparsers) -> None:
    p = subparsers.add_parser("import-bindings",
                              help="binding sheet (.xlsx or .csv) as user U; all or nothing, every bad row named")
    p.add_argument("file", type=Path)
    p.add_argument("--user", required=True, help="the console user the import is made as (their rights apply)")
    p.add_argument("--dry-run", action="store_true", help="validate and preview only")
    p.add_argument("--accept-unchecked", action="store_true",
                   help="when WeCom cannot be reached, import without checking that it knows the accounts")
    p.set_defaults(handler=cmd_import_bindings)


def _collector_off(command: Callable[..., int]) -> Callable[..., int]:
    """The cyclic garbage collector off while the command runs: this process
    serves no one else, and nothing an import builds forms cycles (reference
    counting frees it all). Web imports only skip older objects (read._gc_paused)."""

    @functools.wraps(command)
    def run(args) -> int:
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return command(args)
        finally:
            if was_enabled:
                gc.enable()

    return run


def _reason(issue: judge.RowIssue) -> str:
    return error_text(DomainError(issue.key, **issue.params))


@_collector_off
def cmd_import_bindings(args) -> int:
    check_database(get_engine())
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        print(f"error: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 1
    parsed = read.parse_sheet(data, args.file.name)
    with session_scope() as session:
        actor = commit.actor_for_username(session=session, username=args.user)
        preview = judge.preview(session=session, actor=actor, parsed=parsed)
    for row in preview.rows:
        for issue in row.errors:
            print(f"row {row.row_number}: {_reason(issue)}", file=sys.stderr)
        for issue in row.warnings:
            print(f"row {row.row_number} (warning): {_reason(issue)}", file=sys.stderr)
    figures = (f"{len(preview.rows)} rows: {preview.new_count} new, {preview.changed_count} changed, "
               f"{preview.unchanged_count} unchanged, {preview.warning_count} with warnings, "
               f"{preview.error_count} invalid, {preview.accounts_to_create} new accounts")
    check = preview.member_check
    if check.state == CheckState.not_configured:
        print(f"note: {t('binding_import.members_not_configured')}", file=sys.stderr)
    elif check.state == CheckState.unreachable:
        reason = error_text(DomainError(check.reason_key or "wecom.reason.network", **check.reason_params))
        print(f"warning: {t('binding_import.members_unreachable', reason=reason)}", file=sys.stderr)
    step = next_step(preview)
    if step is NextStep.fix_errors:
        print(f"error: {preview.error_count} invalid row(s); nothing was written", file=sys.stderr)
        return 1
    earlier = preview.already_imported
    if step is NextStep.already_imported:
        print(f"already imported as batch #{earlier.import_id} by {earlier.uploaded_by}; nothing written")
        return 0
    if earlier is not None:
        print(f"note: this file was imported before as batch #{earlier.import_id}; the bindings have changed since")
    if args.dry_run:
        print(f"would import {figures}")
        return 0
    if step is NextStep.nothing_to_change:
        print(f"nothing to change: {figures}")
        return 0
    if preview.members_unchecked and not args.accept_unchecked:
        print("error: WeCom could not check the accounts; nothing was written "
              "(run again later, or with --accept-unchecked to import without the check)", file=sys.stderr)
        return 1
    with session_scope() as session:
        # Warnings were printed above; running the command is the operator's confirmation.
        result = commit.commit(session=session, actor=actor, preview=preview, confirm_warnings=True,
                               confirm_unchecked=args.accept_unchecked)
    run = result.run
    if run is not None and run.finished_at is None:
        print(f"import run #{run.run_id}: {run.steps_done}/{run.steps_total} steps, being finished by another "
              f"process (导入中); see the import history once done: {figures}")
        return 0
    print(f"imported batch #{result.import_id}: {figures}")
    if run is not None and run.finished_at is not None:
        print(f"import run #{run.run_id}: {run.steps_total} steps, finished "
              f"{format_display(run.finished_at, '%Y-%m-%d %H:%M:%S')}")
    print(t("binding_import.committed", new=result.new_count, changed=result.changed_count,
            unchanged=result.unchanged_count, accounts=result.accounts_created))
    return 0
