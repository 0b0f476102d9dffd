"""`python -m console` foundation commands, run as operators run them."""

import os
import subprocess
import sys

import openpyxl
import pytest
from sqlmodel import select

from base.config import PROJECT_ROOT as ROOT
from core.auth import api_keys
from db.models import ApiKey, Store, User


def cli(*args: str, db_url: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "console", *args], cwd=ROOT, input=stdin, text=True,
                          capture_output=True, timeout=120,
                          env={**os.environ, "DATABASE_URL": db_url, **env})


def test_migrate_then_create_user_with_password_from_stdin(tmp_path, session, db_url):
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert cli("migrate", db_url=fresh).returncode == 0
    created = cli("create-user", "--username", "ops", "--role", "hq_operator", "--password-stdin",
                  db_url=db_url, stdin="long-enough-pw\n")
    assert created.returncode == 0, created.stderr
    user = session.exec(select(User).where(User.username == "ops")).one()
    from core.auth.passwords import verify_password

    assert verify_password(user.password_hash, "long-enough-pw")


@pytest.mark.parametrize("args, message", [
    (["--role", "superuser"], "superuser"),
    (["--role", "branch_manager", "--branch", "NOPE"], "NOPE"),
    (["--role", "branch_manager"], "分公司"),
])
def test_create_user_refuses_unknown_role_or_branch(db_url, org, session, args, message):
    result = cli("create-user", "--username", "someone", *args, "--password-stdin", db_url=db_url,
                 stdin="long-enough-pw\n")
    assert result.returncode == 1 and message in result.stderr
    assert session.exec(select(User).where(User.username == "someone")).first() is None


def test_create_api_key_prints_the_key_once_and_stores_a_hash(db_url, session):
    result = cli("create-api-key", "--name", "App 后端", db_url=db_url)
    assert result.returncode == 0
    key = result.stdout.strip().splitlines()[-1]
    stored = session.exec(select(ApiKey)).one()
    assert key not in stored.key_hash and stored.name == "App 后端"
    assert api_keys.authenticate(session=session, key=key).id == stored.id


def test_import_stores_from_gbk_csv_keeps_leading_zeros(db_url, session, tmp_path):
    path = tmp_path / "stores.csv"
    path.write_bytes(("分公司编码,分公司名称,CRM门店ID,门店名称,状态\n"
                      "BJ01,北京分公司,000123,北京朝阳店,营业\nBJ01,北京分公司,123,北京海淀店,关闭\n")
                     .encode("gb18030"))
    result = cli("import-stores", str(path), db_url=db_url)
    assert result.returncode == 0, result.stderr
    assert "2 new" in result.stdout
    ids = set(session.exec(select(Store.crm_store_id)).all())
    assert ids == {"000123", "123"}


def test_import_stores_with_bad_rows_writes_nothing_and_names_each_row(db_url, session, tmp_path):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["门店名称", "CRM门店ID", "分公司编码", "分公司名称", "状态", "备注"])
    sheet.append(["好店", "000001", "BJ01", "北京分公司", "营业", "any"])
    sheet.append(["数字ID店", 123, "BJ01", "北京分公司", "营业", ""])
    sheet.append(["怪状态店", "000003", "BJ01", "北京分公司", "装修中", ""])
    sheet.append(["重复店", "000001", "BJ01", "北京分公司", "营业", ""])
    sheet.append(["公式店", "=A1", "BJ01", "北京分公司", "营业", ""])
    path = tmp_path / "stores.xlsx"
    book.save(path)
    result = cli("import-stores", str(path), db_url=db_url)
    assert result.returncode == 1
    for row in (3, 4, 5, 6):
        assert f"row {row}:" in result.stderr
    assert "row 2:" not in result.stderr
    assert session.exec(select(Store)).first() is None


def test_import_stores_missing_columns(db_url, tmp_path):
    path = tmp_path / "stores.csv"
    path.write_text("CRM门店ID,门店名称\n001,店\n", encoding="utf-8-sig")
    result = cli("import-stores", str(path), db_url=db_url)
    assert result.returncode == 1 and "分公司编码" in result.stderr and "状态" in result.stderr


def test_unreachable_database_is_one_clear_line(tmp_path):
    bad = "postgresql://nobody@127.0.0.1:9/none"
    result = cli("migrate", db_url=bad)
    assert result.returncode == 2
    assert result.stderr.startswith("error: database") and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_seed_demo_only_into_an_empty_database(db_url, session, tmp_path):
    credentials = tmp_path / "logins.txt"
    first = cli("seed-demo", "--credentials-file", str(credentials), db_url=db_url)
    assert first.returncode == 0 and "admin" in first.stdout
    assert oct(credentials.stat().st_mode)[-3:] == "600"
    roles = set(session.exec(select(User.role)).all())
    assert roles == {"hq_admin", "hq_operator", "branch_manager", "viewer"}
    stores = session.exec(select(Store)).all()
    assert len(stores) >= 500 and any(s.crm_store_id.startswith("0") for s in stores)
    assert any(s.status == "closed" for s in stores)
    from db.models import Binding

    ended = set(session.exec(select(Binding.end_reason).where(Binding.ended_at.is_not(None))).all())
    assert ended == {"replaced", "unbound", "store_closed", "account_disabled"}
    current = session.exec(select(Binding).where(Binding.ended_at.is_(None))).all()
    assert any(b.shown for b in current) and any(not b.shown and b.reviewed_at is None for b in current)
    assert any(not b.shown and b.reviewed_at is not None for b in current)
    second = cli("seed-demo", db_url=db_url)
    assert second.returncode == 0 and "already has data" in second.stdout


def test_import_stores_names_over_long_values_by_their_chinese_column(db_url, session, tmp_path):
    path = tmp_path / "stores.csv"
    path.write_text("分公司编码,分公司名称,CRM门店ID,门店名称,状态\n"
                    f"BJ01,北京分公司,000001,{'长' * 201},营业\n"
                    f"{'B' * 33},{'北' * 101},000002,正常店,营业\n"
                    "BJ01,北京分公司,000003,,营业\n", encoding="utf-8-sig")
    result = cli("import-stores", str(path), db_url=db_url)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert any("row 2:" in line and "门店名称" in line and "200" in line for line in lines), result.stderr
    assert any("row 3:" in line and "分公司编码" in line and "32" in line for line in lines), result.stderr
    assert any("row 3:" in line and "分公司名称" in line and "100" in line for line in lines), result.stderr
    assert any("row 4:" in line and "门店名称" in line for line in lines), result.stderr
    assert "store_name" not in result.stderr and "Traceback" not in result.stderr
    assert session.exec(select(Store)).first() is None


def test_console_with_an_unreachable_database_exits_with_one_clear_line():
    result = subprocess.run(
        [sys.executable, "-m", "streamlit", "run", "console/server.py", "--server.port", "0",
         "--server.headless", "true"],
        cwd=ROOT, text=True, capture_output=True, timeout=120,
        env={**os.environ, "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none"})
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: database") and "unreachable" in errors[0]
    assert "Traceback" not in result.stdout + result.stderr
