"""Tables as files: read and write CSV (UTF-8, with or without BOM; GB18030 as Excel saves it in
China) and Excel .xlsx (openpyxl). A sheet is a header and numbered rows; the number is the one a
spreadsheet shows (the header is row 1), so problems can name the row a person sees.

Files come from outside: reading is bounded (rows, columns, characters per cell, and for an
.xlsx the bytes it unpacks to), and a refusal never echoes more than an excerpt of the file.
Parsing is CPU work: callers run it off the event loop (a worker thread)."""

from __future__ import annotations

import csv
import io
import warnings
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from huren.domain.limits import excerpt
from huren.errors import InvalidInput, Problem

CSV_TYPE = "text/csv"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MEDIA_TYPES = {"csv": CSV_TYPE, "xlsx": XLSX_TYPE}
FORMATS = tuple(MEDIA_TYPES)
#: Rows read at most (a guard against a sheet of a million empty-looking rows).
MAX_ROWS = 100_000
#: Characters in one cell at most: Excel's own limit, far above any catalog or master-data field.
MAX_CELL = 32_767
#: Cells in one row at most (Excel's 16,384 columns of empty cells would otherwise be read).
MAX_COLUMNS = 256
#: Bytes an .xlsx may unpack to, all its members together, and members it may hold: a zip of a
#: few hundred KB can unpack to gigabytes (one 200 MB cell compresses to 205 KB).
MAX_UNZIPPED = 64 * 1024 * 1024
MAX_MEMBERS = 1_000

_ZIP = b"PK\x03\x04"
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # the old binary .xls
_EXTENSIONS = {".csv": "csv", ".txt": "csv", ".tsv": "csv", ".xlsx": "xlsx", ".xlsm": "xlsx"}
_CONTENT_TYPES = {
    "text/csv": "csv",
    "application/csv": "csv",
    "text/plain": "csv",
    "text/tab-separated-values": "csv",
    XLSX_TYPE: "xlsx",
}


@dataclass(slots=True)
class Sheet:
    header: list[Any]
    rows: list[tuple[int, list[Any]]] = field(default_factory=list)  # (row number, cells)


def _bad(rule: str, message: str) -> InvalidInput:
    return InvalidInput("文件无法读取", [Problem("file", rule, message)])


def declared_format(filename: str | None = None, content_type: str | None = None) -> str | None:
    """csv | xlsx from a file name's extension, else from a Content-Type; None when neither says."""
    if filename:
        ext = PurePath(filename).suffix.lower()
        if ext == ".xls":
            raise _bad("format", "不支持旧版 Excel（.xls）文件，请另存为 .xlsx 或 CSV")
        if ext in _EXTENSIONS:
            return _EXTENSIONS[ext]
        if ext:
            raise _bad("format", f"不支持的文件类型“{ext}”：应为 .csv 或 .xlsx")
    if content_type:
        return _CONTENT_TYPES.get(content_type.split(";")[0].strip().lower())
    return None


def read_table(data: bytes, filename: str | None = None, content_type: str | None = None) -> Sheet:
    """A CSV or XLSX file → its sheet. The content decides (an .xlsx is a zip), names only confirm."""
    declared = declared_format(filename, content_type)
    if data.startswith(_ZIP):
        return read_xlsx(data)
    if data.startswith(_OLE):
        raise _bad("format", "不支持旧版 Excel（.xls）文件，请另存为 .xlsx 或 CSV")
    if declared == "xlsx":
        raise _bad("format", "文件不是有效的 .xlsx 文件")
    return read_csv(data)


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError:
        raise _bad("encoding", "无法识别文件编码：CSV 文件应为 UTF-8（可带BOM）或 GBK/GB18030 编码") from None


def _blank(cells: Sequence[Any]) -> bool:
    return all(c is None or (isinstance(c, str) and not c.strip()) for c in cells)


def _check_row(number: int, cells: Sequence[Any]) -> None:
    """A row within the limits: at most MAX_COLUMNS cells of at most MAX_CELL characters each."""
    if len(cells) > MAX_COLUMNS:
        raise _bad("max_columns", f"第{number}行有{len(cells)}列，超过上限{MAX_COLUMNS}列")
    for i, c in enumerate(cells):
        if isinstance(c, str) and len(c) > MAX_CELL:
            raise _bad("max_cell", f"第{number}行第{i + 1}列的单元格有{len(c)}个字符，超过上限{MAX_CELL}个字符")


def read_csv(data: bytes) -> Sheet:
    text = _decode(data)
    first = text.split("\n", 1)[0]
    delimiter = "\t" if "\t" in first and "," not in first else ","
    sheet: Sheet | None = None
    try:
        for number, cells in enumerate(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), start=1):
            if _blank(cells):
                continue
            _check_row(number, cells)
            if sheet is None:
                sheet = Sheet(list(cells))
                continue
            if len(sheet.rows) >= MAX_ROWS:
                raise _bad("max_rows", f"文件超过{MAX_ROWS}行")
            sheet.rows.append((number, list(cells)))
    except csv.Error as exc:  # the csv module's own field limit (128 KB) is one: said without the field
        raise _bad("format", f"CSV 格式错误：{excerpt(str(exc), 80)}") from None
    return sheet or Sheet([])


def check_zip(data: bytes) -> None:
    """Refuse an .xlsx whose members unpack to more than MAX_UNZIPPED bytes, by their declared
    sizes first (cheap), then by what they really unpack to, read in chunks and stopped at the
    limit (a member may declare less than it holds: zipfile stops at the declared size and the
    checksum then fails, which is refused too)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            members = z.infolist()
            if len(members) > MAX_MEMBERS:
                raise _bad("max_members", f"文件内含{len(members)}个部件，超过上限{MAX_MEMBERS}个")
            declared = sum(m.file_size for m in members)
            if declared > MAX_UNZIPPED:
                raise _bad("max_unzipped", f"文件解压后有{declared}字节，超过上限{MAX_UNZIPPED}字节")
            total = 0
            for m in members:
                with z.open(m) as f:
                    while chunk := f.read(1 << 20):
                        total += len(chunk)
                        if total > MAX_UNZIPPED:
                            raise _bad("max_unzipped", f"文件解压后超过上限{MAX_UNZIPPED}字节")
    except InvalidInput:
        raise
    except Exception as exc:  # a damaged zip, a bad checksum, an unsupported compression
        raise _bad("format", f"文件不是有效的 .xlsx 文件（{exc.__class__.__name__}）") from None


def read_xlsx(data: bytes) -> Sheet:
    """The first worksheet of an .xlsx (values, not formulas)."""
    from openpyxl import load_workbook

    check_zip(data)
    sheet: Sheet | None = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
            try:
                if not wb.worksheets:
                    return Sheet([])
                for number, values in enumerate(wb.worksheets[0].iter_rows(values_only=True), start=1):
                    if number > 2 * MAX_ROWS:  # blank rows count too: a sheet can declare a million
                        raise _bad("max_rows", f"文件超过{MAX_ROWS}行")
                    cells = list(values)
                    while cells and cells[-1] is None:
                        cells.pop()
                    if _blank(cells):
                        continue
                    _check_row(number, cells)
                    if sheet is None:
                        sheet = Sheet(cells)
                        continue
                    if len(sheet.rows) >= MAX_ROWS:
                        raise _bad("max_rows", f"文件超过{MAX_ROWS}行")
                    sheet.rows.append((number, cells))
            finally:
                wb.close()
    except InvalidInput:
        raise
    except Exception as exc:  # a damaged or foreign zip: whatever openpyxl raises, it is the file
        raise _bad("format", f"文件不是有效的 .xlsx 文件（{exc.__class__.__name__}）") from None
    return sheet or Sheet([])


def write_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """UTF-8 with a BOM (so Excel shows Chinese correctly), CRLF line ends, minimal quoting."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(header)
    for row in rows:
        w.writerow(["" if v is None else v for v in row])
    return buf.getvalue().encode("utf-8-sig")


def write_xlsx(header: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str = "Sheet1") -> bytes:
    """One worksheet: a bold, frozen header and the rows. Text is always stored as text (a value
    starting with ``=`` is not turned into a formula)."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wb = Workbook(write_only=True)
        ws = wb.create_sheet(title)
        ws.freeze_panes = "A2"
        materialized = [list(r) for r in rows]
        for i, name in enumerate(header, start=1):
            width = max([len(str(name))] + [len(str(r[i - 1])) for r in materialized[:200] if i - 1 < len(r) and r[i - 1] is not None])
            ws.column_dimensions[get_column_letter(i)].width = min(60, max(8, width + 2))
        bold = Font(bold=True)
        head = []
        for name in header:
            cell = WriteOnlyCell(ws, value=name)
            cell.font = bold
            head.append(cell)
        ws.append(head)
        for row in materialized:
            cells: list[Any] = []
            for v in row:
                if isinstance(v, str):
                    cell = WriteOnlyCell(ws, value=v if v else None)
                    if v:
                        cell.data_type = "s"
                    cells.append(cell)
                else:
                    cells.append(v)
            ws.append(cells)
        buf = io.BytesIO()
        wb.save(buf)
    return buf.getvalue()


#: a text cell a spreadsheet would take for a formula (CSV has no cell types): written with a
#: leading apostrophe, as Excel itself shows a text that starts so
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _inert(v: Any) -> Any:
    return "'" + v if isinstance(v, str) and v.startswith(_FORMULA_START) else v


def export_table(fmt: str, header: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str) -> tuple[bytes, str]:
    """A table as shown on a page → (the file's bytes, its media type): ``csv`` (UTF-8 with BOM,
    no text cell read as a formula) or ``xlsx`` (one sheet named ``title``, Excel's 31 characters)."""
    if fmt == "csv":
        return write_csv(header, ([_inert(v) for v in r] for r in rows)), CSV_TYPE + "; charset=utf-8"
    if fmt == "xlsx":
        safe = "".join(ch for ch in title if ch not in "[]:*?/\\")[:31] or "Sheet1"
        return write_xlsx(header, rows, title=safe), XLSX_TYPE
    msg = f"导出格式应为 xlsx 或 csv，而不是“{excerpt(fmt)}”"
    raise InvalidInput(msg, [Problem("format", "dictionary", msg)])
