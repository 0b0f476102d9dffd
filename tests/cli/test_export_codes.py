"""`export-codes`: one poster per bound store with a code, named
`<CRM门店ID>_<门店名称>.png`, whose QR decodes back to the code WeCom serves (the
simulator's PNG, fetched over HTTP), the store name printed under it, and an
index sheet; `--branch` narrows it."""

import io
import zipfile

import openpyxl
import pytest
import zxingcpp
from PIL import Image
from sqlmodel import select

from console.cli import main as cli
from core.codes import posters
from core.codes.sync import sync_codes
from db.models import ContactCode
from tests.support.capacity import client_for, start_simulator
from tests.support.factories import bind, find_store, make_store


@pytest.fixture
def made(engine, session, org):
    """Codes made by the sync for 000101 (north), 000201 (south) and a store whose name needs cleaning."""
    odd = make_store(session, org["north"], "000104", name='朝阳/望京:店*"试"')
    sim = start_simulator()
    sim.set_customers({"u101": 0, "u201": 0, "u104": 0})
    bind(session, "000101", "u101", code=False)
    bind(session, "000201", "u201", code=False)
    bind(session, odd.crm_store_id, "u104", code=False)
    with client_for(sim) as client:
        assert sync_codes(engine=engine, client=client).created == 3
    yield sim
    sim.stop()


def decoded(png: bytes) -> str:
    [barcode] = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    return barcode.text


def test_every_poster_decodes_to_its_stores_code(made, session, tmp_path, capsys):
    out = tmp_path / "codes.zip"
    assert cli(["export-codes", "--out", str(out)]) == 0
    assert "wrote 3 posters" in capsys.readouterr().err
    archive = zipfile.ZipFile(out)
    names = sorted(archive.namelist())
    assert names == ["000101_北京朝阳大悦城店.png", "000104_朝阳_望京_店_试_.png", "000201_上海浦东陆家嘴店.png",
                     "index.xlsx"]
    sheet = openpyxl.load_workbook(io.BytesIO(archive.read("index.xlsx"))).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:6] == ("CRM门店ID", "门店名称", "分公司", "config_id", "二维码图片地址", "获客链接")
    by_crm = {row[0]: row for row in rows[1:]}
    assert set(by_crm) == {"000101", "000104", "000201"}       # text: the leading zeros stay
    for crm, name in (("000101", "000101_北京朝阳大悦城店.png"), ("000201", "000201_上海浦东陆家嘴店.png")):
        config_id = by_crm[crm][3]
        png = archive.read(name)
        assert decoded(png) == made.codes.scan_url(config_id)
        poster = Image.open(io.BytesIO(png))
        assert poster.height > poster.width      # room for the name under the code
        # The name is printed: dark pixels under the QR area.
        strip = poster.convert("L").crop((0, posters.MARGIN + posters.QR_SIZE + 10, poster.width, poster.height))
        assert min(strip.getdata()) < 100


def test_one_branch_only(made, tmp_path):
    out = tmp_path / "south.zip"
    assert cli(["export-codes", "--out", str(out), "--branch", "SH01"]) == 0
    assert sorted(zipfile.ZipFile(out).namelist()) == ["000201_上海浦东陆家嘴店.png", "index.xlsx"]
    assert cli(["export-codes", "--out", str(out), "--branch", "XX99"]) == 1


def test_an_image_that_cannot_be_fetched_fails_the_command_and_is_named(made, session, tmp_path, capsys):
    store = find_store(session, "000201")
    code = session.exec(select(ContactCode).where(ContactCode.store_id == store.id)).one()
    made.codes.delete_elsewhere(code.config_id)       # its image now answers 404
    out = tmp_path / "codes.zip"
    assert cli(["export-codes", "--out", str(out)]) == 1
    assert "000201" in capsys.readouterr().err
    assert "000201_上海浦东陆家嘴店.png" not in zipfile.ZipFile(out).namelist()


def test_file_names_are_safe_everywhere():
    assert posters.file_name("000101", "a/b\\c:d*e?f\"g<h>i|j") == "000101_a_b_c_d_e_f_g_h_i_j.png"
    assert len(posters.file_name("1", "店" * 300)) == 124


def test_without_a_cjk_font_the_command_says_what_to_install(made, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(posters, "FONT_CANDIDATES", ())
    monkeypatch.setattr(posters, "FONT_GLOBS", ())
    posters.cjk_font_path.cache_clear()
    try:
        assert cli(["export-codes", "--out", str(tmp_path / "x.zip")]) == 1
    finally:
        posters.cjk_font_path.cache_clear()
    assert "fonts-noto-cjk" in capsys.readouterr().err
    assert not (tmp_path / "x.zip").exists()
