"""Import history (导入记录): the batches and their rows, scoped by branch."""

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from base.errors import NotFound, PermissionDenied
from core.auth.permissions import Actor, Capability, require
from core.bindings.imports.read import RowIssue
from db.models import BindingImport, BindingImportRow, Branch
from db.models.imports import BindingImportBranch


@dataclass(frozen=True)
class ImportSummary:
    import_id: int
    committed_at: datetime
    uploaded_by: str
    branch_code: str | None
    branch_name: str | None
    filename: str
    total_rows: int
    new_count: int
    changed_count: int
    unchanged_count: int
    warning_count: int
    accounts_created: int


def _find_import(session: Session, sha256: str) -> BindingImport | None:
    return session.exec(select(BindingImport).where(BindingImport.sha256 == sha256)
                        .order_by(col(BindingImport.id).desc())).first()


def _summary(session: Session, batch: BindingImport) -> ImportSummary:
    return _summary_of(batch, batch, session.get(Branch, batch.branch_id) if batch.branch_id else None)



def list_imports(*, session: Session, actor: Actor, offset: int = 0,
                 limit: int = 50) -> tuple[list[ImportSummary], int]:
    """Committed batches, newest first. A scoped actor sees the batches that
    touched the own branch, with the own branch's figures."""
    require(actor, Capability.upload_bindings)
    branches = {b.id: b for b in session.exec(select(Branch))}
    order = (col(BindingImport.committed_at).desc(), col(BindingImport.id).desc())
    if actor.branch_scope is None:
        total = session.exec(select(func.count()).select_from(BindingImport)).one()
        batches = session.exec(select(BindingImport).order_by(*order).offset(offset).limit(limit)).all()
        return [_summary_of(batch, batch, branches.get(batch.branch_id)) for batch in batches], total
    mine = BindingImportBranch.branch_id == actor.branch_scope
    total = session.exec(select(func.count()).select_from(BindingImportBranch).where(mine)).one()
    pairs = session.exec(select(BindingImport, BindingImportBranch)
                         .join(BindingImportBranch, col(BindingImportBranch.import_id) == BindingImport.id)
                         .where(mine).order_by(*order).offset(offset).limit(limit)).all()
    return [_summary_of(batch, figures, branches.get(actor.branch_scope)) for batch, figures in pairs], total


def _summary_of(batch: BindingImport, figures: BindingImport | BindingImportBranch,
                branch: Branch | None) -> ImportSummary:
    assert batch.id is not None  # a loaded row has its key
    return ImportSummary(batch.id, batch.committed_at, batch.uploaded_by_name, branch.code if branch else None,
                         branch.name if branch else None, batch.filename, figures.total_rows, figures.new_count,
                         figures.changed_count, figures.unchanged_count, figures.warning_count,
                         figures.accounts_created)


@dataclass(frozen=True)
class ImportedRow:
    row_number: int
    crm_store_id: str
    store_name: str
    wecom_userid: str
    wecom_name: str
    outcome: str
    previous_userid: str | None
    warnings: list[RowIssue]


def import_rows(*, session: Session, actor: Actor, import_id: int, outcome: str | None = None,
                offset: int = 0, limit: int = 50) -> tuple[list[ImportedRow], int]:
    """One page of a batch's rows and what each did; a scoped actor sees the
    own branch's rows of a batch that touched it."""
    require(actor, Capability.upload_bindings)
    batch = session.get(BindingImport, import_id)
    if batch is None:
        raise NotFound()
    conditions = [BindingImportRow.import_id == import_id]
    if actor.branch_scope is not None:
        if session.get(BindingImportBranch, (import_id, actor.branch_scope)) is None:
            raise PermissionDenied("error.branch_out_of_scope")
        conditions.append(BindingImportRow.branch_id == actor.branch_scope)
    if outcome:
        conditions.append(BindingImportRow.outcome == outcome)
    total = session.exec(select(func.count()).select_from(BindingImportRow).where(*conditions)).one()
    rows = session.exec(select(BindingImportRow).where(*conditions).order_by(col(BindingImportRow.row_number))
                        .offset(offset).limit(limit)).all()
    return [ImportedRow(r.row_number, r.crm_store_id, r.store_name, r.wecom_userid, r.wecom_name, r.outcome,
                        r.previous_userid,
                        [RowIssue(w["key"], w["params"]) for w in json.loads(r.warnings_json or "[]")])
            for r in rows], total
