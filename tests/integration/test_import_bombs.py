"""Import bombs (issue 10 §1.3): a 205 KB .xlsx holding one 200 MB cell cost 5.7 s of the event loop
and 1.75 GB of memory, and the cell was echoed into a 419 MB error body.

Files are generated here, small on disk: a zip whose sheet unpacks to 200 MB, one whose member
declares less than it holds, a cell over Excel's 32,767 characters, a row of too many columns.
Each is refused at once, naming the file, with an error body of a few hundred bytes; spreadsheets
are parsed in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import csv
import functools
import io
import struct
import time
import zipfile
from typing import Any

import orjson
import pytest
from openpyxl import Workbook

from huren.errors import MAX_PROBLEMS, InvalidInput
from huren.wire import tabular
from tests.conftest import Api


def _workbook(rows: list[list[Any]]) -> bytes:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    for r in rows:
        ws.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


@functools.cache
def bomb(cell_mb: int = 200, cell_bytes: int = 0) -> bytes:
    """A valid .xlsx whose second row holds one cell of ``cell_mb`` MB (about 1 KB per MB on disk),
    or of ``cell_bytes`` bytes."""
    src = zipfile.ZipFile(io.BytesIO(_workbook([["kind", "code", "name"], ["lab", "X", "placeholder"]])))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for info in src.infolist():
            data = src.read(info)
            if info.filename != "xl/worksheets/sheet1.xml":
                z.writestr(info, data)
                continue
            head, tail = data.split(b"<sheetData>")[0], data.split(b"</sheetData>")[1]
            member = zipfile.ZipInfo(info.filename)
            member.compress_type = zipfile.ZIP_DEFLATED
            with z.open(member, "w", force_zip64=True) as f:
                f.write(head + b'<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>kind</t></is></c></row>')
                f.write(b'<row r="2"><c r="A2" t="inlineStr"><is><t>')
                chunk = b"A" * (1 << 20)
                for _ in range(cell_mb):
                    f.write(chunk)
                f.write(b"A" * cell_bytes)
                f.write(b"</t></is></c></row></sheetData>" + tail)
    return out.getvalue()


def lying(data: bytes, member: str, declared: int) -> bytes:
    """``data`` with ``member``'s uncompressed size in the central directory (which zipfile reads)
    set to ``declared``: a zip that says it unpacks small."""
    buf = bytearray(data)
    name = member.encode()
    at = buf.find(b"PK\x01\x02")
    while at != -1:  # central directory entries: uncompressed size at offset 24, name at 46
        n = struct.unpack_from("<H", buf, at + 28)[0]
        if bytes(buf[at + 46 : at + 46 + n]) == name:
            struct.pack_into("<I", buf, at + 24, declared)
        at = buf.find(b"PK\x01\x02", at + 4)
    return bytes(buf)


def _refusal(data: bytes, filename: str = "x.xlsx") -> tuple[InvalidInput, int, float]:
    started = time.perf_counter()
    with pytest.raises(InvalidInput) as err:
        tabular.read_table(data, filename)
    elapsed = time.perf_counter() - started
    body = orjson.dumps({"message": err.value.text(), "problems": [p.as_dict() for p in err.value.problems]})
    return err.value, len(body), elapsed


def test_a_bomb_is_refused_by_its_declared_size_at_once() -> None:
    data = bomb()
    assert len(data) < 400_000  # 200 MB of cell, a few hundred KB on disk
    exc, body, elapsed = _refusal(data)
    assert [p.rule for p in exc.problems] == ["max_unzipped"] and exc.problems[0].field == "file"
    assert body < 1_000 and elapsed < 1.0


def test_a_zip_declaring_less_than_it_holds_is_refused_while_reading() -> None:
    data = lying(bomb(80), "xl/worksheets/sheet1.xml", 10_000)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert sum(i.file_size for i in z.infolist()) < tabular.MAX_UNZIPPED  # the lie holds
    exc, body, elapsed = _refusal(data)
    assert exc.problems[0].field == "file" and exc.problems[0].rule in ("max_unzipped", "format")
    assert body < 1_000 and elapsed < 3.0


def test_the_actual_unpacked_size_is_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Declared sizes within the limit, what the members unpack to over it: counted while reading."""
    monkeypatch.setattr(tabular, "MAX_UNZIPPED", 2 * 1024 * 1024)
    data = bomb(3)
    real = zipfile.ZipFile(io.BytesIO(data)).infolist()
    declared = sum(i.file_size for i in real if i.filename != "xl/worksheets/sheet1.xml")
    exc, _, _ = _refusal(lying(data, "xl/worksheets/sheet1.xml", max(0, 2 * 1024 * 1024 - declared - 1)))
    assert exc.problems[0].rule in ("max_unzipped", "format")


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_a_cell_over_excels_limit_is_refused_naming_row_and_column(fmt: str) -> None:
    rows = [["kind", "code", "name"], ["lab", "X1", "ok"], ["lab", "X2", "y" * (tabular.MAX_CELL + 1)]]
    if fmt == "xlsx":  # written by hand: openpyxl itself will not write such a cell
        data = bomb(0, tabular.MAX_CELL + 1)
    else:
        buf = io.StringIO()
        csv.writer(buf).writerows(rows)
        data = buf.getvalue().encode()
    exc, body, _ = _refusal(data, f"x.{fmt}")
    assert [p.rule for p in exc.problems] == ["max_cell"]
    assert ("第3行第3列" if fmt == "csv" else "第2行第1列") in exc.problems[0].message and body < 1_000


def test_a_row_of_too_many_columns_is_refused() -> None:
    data = ("a," * (tabular.MAX_COLUMNS + 5) + "\n").encode()
    exc, _, _ = _refusal(data, "x.csv")
    assert [p.rule for p in exc.problems] == ["max_columns"]


def test_error_bodies_carry_an_excerpt_never_the_input() -> None:
    """The backstop in huren.errors: a message is cut, the problems list is capped."""
    from huren.errors import Problem

    exc = InvalidInput("坏" * 100_000, [Problem("f" * 10_000, "r", "m" * 100_000)] * (MAX_PROBLEMS + 50))
    assert len(exc.message) < 600 and len(exc.problems) == MAX_PROBLEMS + 1
    assert len(exc.problems[0].message) < 600 and len(exc.problems[0].field) < 300
    assert exc.problems[-1].rule == "more" and "50" in exc.problems[-1].message


# -- over REST ------------------------------------------------------------------------------------------------
def test_rest_refuses_the_bomb_with_a_short_body_off_the_event_loop(
    api_sup: Api, api_a: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    loops: list[bool] = []
    real = tabular.read_table

    def spy(*a: Any, **kw: Any) -> Any:
        try:
            asyncio.get_running_loop()
            loops.append(True)
        except RuntimeError:  # no loop in this thread: a worker
            loops.append(False)
        return real(*a, **kw)

    monkeypatch.setattr(tabular, "read_table", spy)
    for api, path in ((api_sup, "/api/v1/catalog/file"), (api_a, "/api/v1/code-map/file")):
        started = time.perf_counter()
        r = api.put(path, content=bomb(), headers={"Content-Type": tabular.XLSX_TYPE}, params={"filename": "bomb.xlsx"})
        assert r.status_code == 422, r.text[:300]
        assert len(r.content) < 1_000 and time.perf_counter() - started < 2.0
        assert r.json()["problems"][0]["rule"] == "max_unzipped"
    assert loops == [False, False]


def test_rest_catalog_rows_with_huge_values_answer_a_short_body(api_sup: Api) -> None:
    rows = [{"kind": "lab", "code": f"C{i}", "name": "n", "validity_days": "x" * 50_000, "k" * 5_000: 1} for i in range(400)]
    r = api_sup.post("/api/v1/catalog", {"rows": rows})
    assert r.status_code == 422
    assert len(r.content) < 200_000  # 400 rows × 55 KB sent, a capped list of short problems back
    assert len(r.json()["problems"]) == MAX_PROBLEMS + 1


def test_pages_refuse_the_bomb_without_echoing_it(client: Any, api_sup: Api) -> None:
    token = api_sup.headers["Authorization"].split()[1]
    page = client.get(f"/ui/catalog?token={token}")
    assert page.status_code == 200
    import re

    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    form = {"csrf_token": csrf.group(1)} if csrf else {}
    r = client.post(
        f"/ui/catalog/upload?token={token}", data=form, files={"file": ("bomb.xlsx", bomb(), tabular.XLSX_TYPE)}
    )
    assert r.status_code == 422, r.text[:300]
    assert len(r.content) < 200_000 and "AAAAAAAAAAAAAAAA" not in r.text
