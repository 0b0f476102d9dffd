"""Memory of reading crafted files: each case is read by a fresh child process
(this script with `--child`), which reports its peak RSS (VmHWM; Linux carries
ru_maxrss over from the parent through fork and exec).
Target: every import's peak stays under 500 MB whatever the file.

Cases: a workbook of millions of elements that are no rows (the sheet XML's
size kept under the part cap, compressing 20× like a real sheet); one cell
holding a single text of ~120 MB; the same junk as a zip bomb diluted by a
random stored member; an event file of 600,000 rejected rows.

    .venv/bin/python bench/hostile_input.py
"""

import io
import json
import os
import random
import re
import string
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HEADER_ROWS = ('<row r="1"><c r="A1" t="inlineStr"><is><t>编码</t></is></c><c r="B1" t="inlineStr"><is><t>名称</t>'
               '</is></c></row><row r="2"><c r="A2" t="inlineStr"><is><t>A1</t></is></c><c r="B2" t="inlineStr">'
               '<is><t>甲</t></is></c></row>')


def workbook(sheet_data: str, stored: dict[str, bytes] | None = None) -> bytes:
    from tests.support.binding_sheets import workbook_bytes

    source = zipfile.ZipFile(io.BytesIO(workbook_bytes([("Sheet", [["x"]])])))
    body = f"<sheetData>{sheet_data}</sheetData>".encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                data = re.sub(rb"<sheetData>.*</sheetData>|<sheetData/>", body.replace(b"\\", b"\\\\"), data,
                              flags=re.S)
            archive.writestr(info.filename, data)
        for name, data in (stored or {}).items():
            archive.writestr(name, data, compress_type=zipfile.ZIP_STORED)
    return buffer.getvalue()


def cases(tmp: Path) -> list[tuple[str, Path]]:
    rng = random.Random(1)
    junk = "".join(f"<x a='{rng.randrange(100)}'/>" if i % 8 == 0 else "<x/>" for i in range(3_000_000))
    text = "".join(rng.choice(string.ascii_letters) + "a" * 40 for _ in range(3_000_000))
    files = {
        "xlsx: 3 M elements beside the rows (14 MB XML)": workbook(HEADER_ROWS + junk),
        "xlsx: one cell of 123 MB text": workbook(
            HEADER_ROWS + f"<row r='3'><c r='A3' t='inlineStr'><is><t>{text}</t></is></c></row>"),
        "xlsx: 60 MB of <x/> + 400 KB random stored member": workbook(
            HEADER_ROWS + "<x/>" * 15_000_000, stored={"docProps/thumbnail.bin": os.urandom(400_000)}),
    }
    paths = []
    for n, (name, data) in enumerate(files.items()):
        path = tmp / f"case{n}.xlsx"
        path.write_bytes(data)
        paths.append((name, path))
    rows = "".join(f"b{n},page_view,2026-11-20T10:00:00+08:00,user-{n:08d},{n:07d},app\n" for n in range(600_000))
    path = tmp / "bad-events.csv"
    path.write_text("event_id,event,occurred_at,user_key,crm_store_id,platform\n" + rows)
    paths.append(("event file: 600,000 rejected rows", path))
    return paths


def peak_kb() -> int:
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))  # type: ignore[union-attr]


def child(path: Path) -> None:
    before = peak_kb()
    started = time.perf_counter()
    if path.suffix == ".csv":
        from core.auth.permissions import system_actor
        from core.funnel import event_files
        from db.engine import session_scope
        from db.migrate import upgrade_to_head

        upgrade_to_head(os.environ["DATABASE_URL"])
        before = peak_kb()
        started = time.perf_counter()
        with path.open("rb") as stream:
            result = event_files.import_event_file(session_factory=session_scope, actor=system_actor("bench"),
                                                   stream=stream, filename=path.name)
        outcome = f"{result.rejected:,} rejected, {len(result.problems):,} kept"
    else:
        from core.sheets import SheetColumn, SheetError, read_sheet

        try:
            rows = read_sheet(path.read_bytes(), path.name, [SheetColumn("code", ("编码",)),
                                                             SheetColumn("name", ("名称",))]).rows
            outcome = f"{len(rows)} rows"
        except SheetError as exc:
            outcome = exc.key
    print(json.dumps({"outcome": outcome, "seconds": time.perf_counter() - started, "before_kb": before,
                      "peak_kb": peak_kb()}))


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in cases(Path(tmp)):
            env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": f"sqlite:///{tmp}/bench.db"}
            done = subprocess.run([sys.executable, __file__, "--child", str(path)], cwd=ROOT, env=env,
                                  capture_output=True, text=True, check=True)
            read = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"{name} ({path.stat().st_size / 1e6:.1f} MB file): {read['outcome']}, {read['seconds']:.1f} s, "
                  f"peak RSS {read['peak_kb'] // 1024} MB (after imports {read['before_kb'] // 1024} MB)")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(Path(sys.argv[2]))
    else:
        main()
