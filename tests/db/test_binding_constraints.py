"""The database enforces the binding rules and case-insensitive uniqueness,
on SQLite and on PostgreSQL, through the migrations."""

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from core.auth.permissions import SYSTEM
from core.bindings import service as bindings
from core.directory import stores
from db.engine import get_engine
from db.models import Account, Binding, Store, User
from tests.support.factories import make_account, make_branch, make_store


def _org(session: Session) -> tuple[Store, Store, Account, Account]:
    branch = make_branch(session, "B1", name="分公司")
    return (make_store(session, branch, "000123", name="一号店"), make_store(session, branch, "123", name="二号店"),
            make_account(session, "ZhangSan", name="张三"), make_account(session, "lisi", name="李四"))


def check_binding_rules(session: Session) -> None:
    s1, s2, a1, a2 = _org(session)
    assert s1.id != s2.id  # "000123" and "123" are two stores
    session.add(Binding(store_id=s1.id, account_id=a1.id))
    session.commit()

    session.add(Binding(store_id=s1.id, account_id=a2.id))  # a second current binding for the store
    with pytest.raises(IntegrityError):
        session.commit()
    session.rollback()

    session.add(Binding(store_id=s2.id, account_id=a1.id))  # the account current for two stores
    with pytest.raises(IntegrityError):
        session.commit()
    session.rollback()

    # Ended bindings are history and do not count.
    session.add(Binding(store_id=s1.id, account_id=a2.id, ended_at=s1.created_at, end_reason="replaced"))
    session.add(Binding(store_id=s2.id, account_id=a2.id))
    session.commit()

    session.add(Binding(store_id=s2.id, account_id=a1.id, ended_at=s1.created_at, end_reason="because"))
    with pytest.raises(IntegrityError):
        session.commit()  # an end reason outside the list
    session.rollback()

    session.add(Account(userid="zhangsan", name="同名不同大小写"))
    with pytest.raises(IntegrityError):
        session.commit()
    session.rollback()

    session.add(User(username="Admin", role="hq_admin", password_hash="x"))
    session.add(User(username="admin", role="viewer", password_hash="x"))
    with pytest.raises(IntegrityError):
        session.commit()
    session.rollback()

    session.add(User(username="bm", role="branch_manager", password_hash="x"))
    with pytest.raises(IntegrityError):
        session.commit()  # a branch manager without a branch
    session.rollback()


def test_binding_rules_on_sqlite(session):
    check_binding_rules(session)


def test_sqlite_pragmas(engine):
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 5000


@pytest.mark.postgres
def test_migrations_and_binding_rules_on_postgres(pg_url):
    engine = get_engine(pg_url)
    tables = set(inspect(engine).get_table_names())
    assert {"branch", "store", "account", "binding", "user", "audit_log", "alembic_version"} <= tables
    with Session(engine) as session:
        check_binding_rules(session)


@pytest.mark.postgres
def test_store_service_on_postgres(pg_url):
    """A service end to end on PostgreSQL: import, search, close a bound store."""
    engine = get_engine(pg_url)
    sheet = ("分公司编码,分公司名称,CRM门店ID,门店名称,状态\n"
             "SH01,上海分公司,000201,上海浦东店,营业\nSH01,上海分公司,000202,上海徐汇店,营业\n").encode()
    with Session(engine) as session:
        result = stores.import_stores(session=session, actor=SYSTEM, data=sheet, filename="stores.csv")
        session.commit()
        assert (result.created, result.branches_created) == (2, 1)
        store = session.exec(text("SELECT id FROM store WHERE crm_store_id = '000201'")).scalar()
        account = make_account(session, "wx1", name="客服")
        bindings.start_binding(session=session, actor=SYSTEM, store=session.get(Store, store), account=account)
        session.commit()
        closing = sheet.replace("000201,上海浦东店,营业".encode(), "000201,上海浦东店,关闭".encode())
        result = stores.import_stores(session=session, actor=SYSTEM, data=closing, filename="stores.csv")
        session.commit()
        assert (result.updated, result.closed_bindings) == (1, 1)
        rows, total = stores.search_stores(session=session, actor=SYSTEM,
                                           filters=stores.StoreFilter(search="000201"))
        assert total == 1 and rows[0].status == "closed" and rows[0].wecom_userid is None


def schema_drift(url: str) -> list:
    """What autogenerate would change: the models and the migrations must agree."""
    import warnings

    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    import db.models  # noqa: F401  (registers every table)

    with get_engine(url).connect() as connection, warnings.catch_warnings():
        # Expression indexes (lower(userid)) cannot be reflected; the rules tests cover them.
        warnings.simplefilter("ignore")
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, SQLModel.metadata)


def test_models_match_the_migrations_on_sqlite(db_url):
    assert schema_drift(db_url) == []


@pytest.mark.postgres
def test_models_match_the_migrations_on_postgres(pg_url):
    assert schema_drift(pg_url) == []
