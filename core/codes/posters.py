"""Posters of the store contact codes: one PNG per bound store, named
`<CRM门店ID>_<门店名称>.png`, WeCom's QR image with the store name printed under
it, and an xlsx index (CRM ID, name, branch, config_id, qr_code, link), in a zip.

The QR image is WeCom's own (fetched from the code's `qr_code`), never drawn
here: a redrawn code could differ from the one WeCom serves.
"""

import io
import re
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

import httpx
import xlsxwriter
from PIL import Image, ImageDraw, ImageFont
from sqlmodel import Session, col, select

from base.errors import DomainError, InvalidInput
from core.auth.permissions import Actor, Capability, require
from core.bindings.entries import current_binding_join
from db.models import Binding, Branch, ContactCode, Store, StoreStatus
from db.typed import select_columns
from i18n import t

# Debian's fonts-noto-cjk first (scripts/setup.sh installs it), then other common places.
FONT_CANDIDATES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/System/Library/Fonts/PingFang.ttc",
)
FONT_GLOBS = ("**/*CJK*.tt[cf]", "**/*CJK*.otf", "**/wqy*.tt[cf]")
QR_SIZE = 600
MARGIN = 48
FETCH_TIMEOUT = 10.0
_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f]+')


@dataclass(frozen=True)
class PosterStore:
    crm_store_id: str
    name: str
    branch: str
    config_id: str
    qr_code: str
    link_url: str | None


@dataclass
class PosterResult:
    count: int = 0
    # Stores whose QR image could not be fetched (CRM ID), left out of the zip.
    failed: list[str] = field(default_factory=list)


@lru_cache(maxsize=1)
def cjk_font_path() -> str:
    """A font with Chinese glyphs; a clear error when the machine has none."""
    for candidate in FONT_CANDIDATES:
        if Path(candidate).is_file():
            return candidate
    for root in (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), Path.home() / ".fonts"):
        for pattern in FONT_GLOBS:
            found = sorted(root.glob(pattern)) if root.is_dir() else []
            if found:
                return str(found[0])
    raise DomainError("codes.posters.no_font")


def file_name(crm_store_id: str, store_name: str) -> str:
    """`<CRM门店ID>_<门店名称>.png`, safe on every file system (no separators,
    reserved or control characters; at most 120 characters before `.png`)."""
    stem = f"{crm_store_id}_{store_name}"
    stem = _UNSAFE.sub("_", stem).strip(" .") or "_"
    return f"{stem[:120]}.png"


def poster_stores(*, session: Session, actor: Actor, branch_code: str | None = None,
                  store_ids: list[int] | None = None) -> list[PosterStore]:
    """Bound open stores whose code exists, by CRM store ID (the actor's branch only when scoped)."""
    require(actor, Capability.review_entries)
    query = (select_columns(Store.crm_store_id, Store.name, Branch.name, ContactCode.config_id, ContactCode.qr_code,
                            ContactCode.link_url)
             .select_from(Store)
             .join(Binding, current_binding_join())
             .join(ContactCode, col(ContactCode.store_id) == Store.id)
             .join(Branch, col(Branch.id) == Store.branch_id)
             .where(Store.status == StoreStatus.open, col(ContactCode.config_id).is_not(None),
                    col(ContactCode.qr_code).is_not(None))
             .order_by(Store.crm_store_id))
    if branch_code is not None:
        branch = session.exec(select(Branch).where(Branch.code == branch_code)).first()
        if branch is None:
            raise InvalidInput("codes.posters.unknown_branch", code=branch_code)
        query = query.where(Store.branch_id == branch.id)
    if actor.branch_scope is not None:
        query = query.where(Store.branch_id == actor.branch_scope)
    if store_ids is not None:
        query = query.where(col(Store.id).in_(store_ids))
    return [PosterStore(*row) for row in session.exec(query).all()]


def draw_poster(qr_png: bytes, store_name: str, crm_store_id: str) -> bytes:
    """The QR code with the store name (and CRM ID) printed under it, as PNG."""
    qr = Image.open(io.BytesIO(qr_png)).convert("RGB").resize((QR_SIZE, QR_SIZE), Image.Resampling.NEAREST)
    width = QR_SIZE + 2 * MARGIN
    font_path = cjk_font_path()
    size = 44
    font = ImageFont.truetype(font_path, size)
    # Long names get a smaller font rather than running off the poster.
    while size > 18 and font.getlength(store_name) > width - 2 * MARGIN:
        size -= 2
        font = ImageFont.truetype(font_path, size)
    small = ImageFont.truetype(font_path, 26)
    poster = Image.new("RGB", (width, QR_SIZE + 2 * MARGIN + size + 60), "white")
    poster.paste(qr, (MARGIN, MARGIN))
    draw = ImageDraw.Draw(poster)
    top = MARGIN + QR_SIZE + 16
    draw.text((width / 2, top), store_name, font=font, fill="black", anchor="ma")
    draw.text((width / 2, top + size + 12), crm_store_id, font=small, fill="#555555", anchor="ma")
    out = io.BytesIO()
    poster.save(out, format="PNG")
    return out.getvalue()


def _index(stores: list[PosterStore], files: dict[str, str]) -> bytes:
    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True})
    sheet = book.add_worksheet(t("codes.posters.index_sheet"))
    columns = ["crm_store_id", "store_name", "branch", "config_id", "qr_code", "link", "file"]
    text = book.add_format({"num_format": "@"})
    for number, column in enumerate(columns):
        sheet.write_string(0, number, t(f"codes.posters.col.{column}"))
    for row, store in enumerate(stores, start=1):
        for number, value in enumerate([store.crm_store_id, store.name, store.branch, store.config_id, store.qr_code,
                                        store.link_url or "", files.get(store.crm_store_id, "")]):
            # Text, so that "000123" keeps its zeros.
            sheet.write_string(row, number, value, text)
    sheet.set_column(0, 0, 14)
    sheet.set_column(1, 2, 24)
    sheet.set_column(3, 6, 40)
    book.close()
    return out.getvalue()


def write_posters(stores: list[PosterStore], out: BinaryIO, *, http: httpx.Client | None = None,
                  concurrency: int = 8, progress: Callable[[int], None] | None = None) -> PosterResult:
    """The zip of posters and the index. Images are fetched a few at a time; a
    store whose image cannot be fetched is left out and named in the result."""
    cjk_font_path()    # no font: stop before fetching anything
    result = PosterResult()
    own = http is None
    client = http or httpx.Client(timeout=FETCH_TIMEOUT, follow_redirects=True)

    def fetch(store: PosterStore) -> tuple[PosterStore, bytes | None]:
        try:
            response = client.get(store.qr_code)
            response.raise_for_status()
            return store, draw_poster(response.content, store.name, store.crm_store_id)
        except (httpx.HTTPError, OSError):
            return store, None

    files: dict[str, str] = {}
    try:
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive, \
                ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="posters") as pool:
            for store, png in pool.map(fetch, stores):
                if png is None:
                    result.failed.append(store.crm_store_id)
                    continue
                name = file_name(store.crm_store_id, store.name)
                files[store.crm_store_id] = name
                archive.writestr(name, png)
                result.count += 1
                if progress is not None:
                    progress(result.count)
            archive.writestr("index.xlsx", _index(stores, files))
    finally:
        if own:
            client.close()
    return result
