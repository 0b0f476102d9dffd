"""The CRM store import works everything out from reads before it takes the
write lock; a store changed by someone else in between refuses the whole
import, and nothing of it is written."""

import pytest
from sqlalchemy import event, text, update
from sqlmodel import Session, select

from base.errors import ConcurrentEdit
from core.auth.permissions import system_actor
from core.directory import stores
from db.models import AuditEntry, Store
from i18n import error_text

ACTOR = system_actor("crm")
HEADER = "分公司编码,分公司名称,CRM门店ID,门店名称,状态\n"
RENAMED = HEADER + "".join(f"BJ01,北京分公司,{crm},{name}（新）,营业\n" for crm, name in [
    ("000101", "北京朝阳大悦城店"), ("000102", "北京海淀银泰店")]) + "SH01,上海分公司,000299,上海新店,营业\n"


def test_a_store_changed_between_the_reads_and_the_writes_refuses_the_import(engine, session, org):
    other_write_done = []

    def someone_else_renames_a_store(_conn, _cursor, statement, *_args) -> None:
        if statement.lstrip().upper().startswith(("INSERT", "UPDATE")) and not other_write_done:
            other_write_done.append(True)
            with Session(engine) as other:
                other.exec(update(Store).where(Store.crm_store_id == "000102")
                           .values(name="别人改的名字", version=Store.version + 1))
                other.commit()

    event.listen(engine, "before_cursor_execute", someone_else_renames_a_store)
    try:
        with Session(engine) as importing, pytest.raises(ConcurrentEdit) as refused:
            try:
                stores.import_stores(session=importing, actor=ACTOR, data=RENAMED.encode(), filename="crm.csv")
            finally:
                importing.rollback()
    finally:
        event.remove(engine, "before_cursor_execute", someone_else_renames_a_store)
    assert "未写入任何内容" in error_text(refused.value)
    session.expire_all()
    names = dict(session.exec(select(Store.crm_store_id, Store.name)).all())
    assert names["000101"] == "北京朝阳大悦城店" and names["000102"] == "别人改的名字"
    assert "000299" not in names
    assert session.exec(select(AuditEntry).where(AuditEntry.action == "store.update")).all() == []


def test_without_interference_the_same_file_imports(session, org):
    result = stores.import_stores(session=session, actor=ACTOR, data=RENAMED.encode(), filename="crm.csv")
    session.commit()
    assert (result.created, result.updated, result.unchanged) == (1, 2, 0)
    names = dict(session.exec(select(Store.crm_store_id, Store.name)).all())
    assert names["000101"] == "北京朝阳大悦城店（新）" and names["000299"] == "上海新店"
    assert session.connection().execute(text("SELECT version FROM store WHERE crm_store_id = '000102'")).scalar() == 2
