"""What follows a binding sheet's preview: one decision for the upload page and the CLI."""

from enum import StrEnum

from core.bindings.imports.judge import Preview


class NextStep(StrEnum):
    fix_errors = "fix_errors"              # rows with errors: nothing can be written
    already_imported = "already_imported"  # the same file was committed before and would change nothing now
    nothing_to_change = "nothing_to_change"
    confirm_warnings = "confirm_warnings"  # the commit waits for the operator's tick on the warnings
    commit = "commit"


def next_step(preview: Preview) -> NextStep:
    if not preview.ok:
        return NextStep.fix_errors
    if preview.repeats_earlier_import:
        return NextStep.already_imported
    if not preview.changes_something:
        return NextStep.nothing_to_change
    if preview.warning_count:
        return NextStep.confirm_warnings
    return NextStep.commit
