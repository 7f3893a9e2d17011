"""Catalog and mapping rows (pure): headers, values, every problem at once; CSV / XLSX files."""

from __future__ import annotations

import csv
import io
from importlib import resources
from typing import Any

import pytest

from huren.domain import catalog as rows
from huren.errors import InvalidInput, Problem
from huren.store.tables import catalog_item, code_map
from huren.wire import tabular

DEMO = resources.files("huren.demo").joinpath("data/catalog-demo.csv").read_bytes()
HEADER = ["kind", "code", "name", "unit", "validity_days", "source_note"]


def parse_file(data: bytes, filename: str | None = "x.csv", kind: str | None = None) -> tuple[list[dict[str, Any]], list[Problem]]:
    sheet = tabular.read_table(data, filename)
    records, problems = rows.records_from_table(
        sheet.header, sheet.rows, rows.CATALOG_COLUMNS, ignored=rows.CATALOG_IGNORED, defaulted=("kind",) if kind else ()
    )
    items, more = rows.parse_catalog(records, kind=kind)
    return items, problems + more


def parse_json(items: Any, kind: str | None = None) -> tuple[list[dict[str, Any]], list[Problem]]:
    records, problems = rows.records_from_json(items, rows.CATALOG_COLUMNS, ignored=rows.CATALOG_IGNORED)
    out, more = rows.parse_catalog(records, kind=kind)
    return out, problems + more


def csv_bytes(header: list[str], *body: list[Any], bom: bool = False) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(body)
    return ("\ufeff" if bom else "").encode() + buf.getvalue().encode("utf-8")


def fields(problems: list[Problem]) -> set[tuple[str, str]]:
    return {(p.field, p.rule) for p in problems}


def one(**kw: Any) -> dict[str, Any]:
    base = {"kind": "lab", "code": "250301002", "name": "血清白蛋白测定", "unit": "g/L", "validity_days": 30}
    return base | kw


# -- the demo catalog ---------------------------------------------------------------------------


def test_demo_csv_parses_exactly() -> None:
    items, problems = parse_file(DEMO, "catalog-demo.csv")
    assert problems == []
    assert len(items) == 72
    assert sum(i["kind"] == "lab" for i in items) == 53
    assert sum(i["kind"] == "exam" for i in items) == 19
    by = {(i["kind"], i["code"]): i for i in items}
    assert by["lab", "250301002"] == {
        "kind": "lab",
        "code": "250301002",
        "name": "血清白蛋白测定",
        "unit": "g/L",
        "validity_days": 30,
        "recognizable": True,
        "min_level": 2,
        "region_scope": "",
        "source_note": "[SX2014] 25030100201 '血清白蛋白测定'; also [SPEC]; LOINC 1751-7 [HSPC]; "
        "validity:HB-HR(湖北公示,鄂卫通〔2023〕56号); conf=high",
        "fee": None,
    }
    # a quoted unit with commas, an unquoted note, an empty exam unit
    assert by["lab", "250101015"]["unit"].startswith("panel: WBC/NEUT/LYMPH/MONO/EO/BASO 10^9/L & %, RBC 10^12/L")
    assert by["lab", "250101015"]["validity_days"] == 3
    assert by["lab", "250305007"]["source_note"].startswith("[SX2014] 25030500702 '血清丙氨酸氨基转移酶测定(速率法)'; LOINC")
    assert by["exam", "310701001"]["unit"] == "" and by["exam", "310701001"]["validity_days"] == 7
    assert by["lab", "260000001"]["validity_days"] == 365


def test_demo_csv_with_bom_and_crlf_is_the_same() -> None:
    plain, _ = parse_file(DEMO)
    bom, problems = parse_file(b"\xef\xbb\xbf" + DEMO.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    assert problems == []
    assert bom == plain


def test_limits_fit_the_tables() -> None:
    """Every length the rows allow fits its column (SQLite would not notice; PostgreSQL refuses)."""
    for cols, table in ((rows.CATALOG_COLUMNS, catalog_item), (rows.MAPPING_COLUMNS, code_map)):
        for col in cols:
            if col.max_length is None or col.name not in table.c:
                continue
            length = getattr(table.c[col.name].type, "length", None)
            assert length is None or col.max_length <= length, (
                f"{table.name}.{col.name} is VARCHAR({length}) but rows allow {col.max_length} characters "
                "(the demo catalog's longest unit has 112)"
            )


# -- headers ------------------------------------------------------------------------------------


def test_chinese_headers_and_values() -> None:
    data = csv_bytes(
        ["类型", "项目编码", "项目名称", "单位", "有效天数", "是否互认", "最低机构等级", "适用区域", "来源"],
        ["检验", "250304001", "钾测定", "mmol/L", "7", "否", "三级", "65；650100 6523", "湖北"],
        ["检查", "210300001", "CT扫描", "", "90天", "是", "", "", ""],
        bom=True,
    )
    items, problems = parse_file(data)
    assert problems == []
    assert items == [
        {"kind": "lab", "code": "250304001", "name": "钾测定", "unit": "mmol/L", "validity_days": 7, "recognizable": False,
         "min_level": 3, "region_scope": "65,650100,6523", "source_note": "湖北", "fee": None},
        {"kind": "exam", "code": "210300001", "name": "CT扫描", "unit": "", "validity_days": 90, "recognizable": True,
         "min_level": 2, "region_scope": "", "source_note": "", "fee": None},
    ]  # fmt: skip


def test_header_problems_all_at_once() -> None:
    data = csv_bytes(["kind", "项目编码", "code", "name", "validty_days"], ["lab", "1", "1", "x", "3"])
    items, problems = parse_file(data)
    assert items == []
    assert fields(problems) >= {
        ("header.code", "duplicate"),
        ("header.validty_days", "unknown_column"),
        ("header.validity_days", "required"),
    }
    assert all(p.message for p in problems)


def test_kind_column_may_be_given_by_the_caller() -> None:
    data = csv_bytes(["code", "name", "validity_days"], ["250304001", "钾测定", "7"])
    items, problems = parse_file(data, kind="lab")
    assert problems == [] and items[0]["kind"] == "lab"
    _, problems = parse_file(data)
    assert ("header.kind", "required") in fields(problems)
    # a row of another kind than the one asked for
    mixed = csv_bytes(["kind", "code", "name", "validity_days"], ["exam", "210300001", "CT", "90"])
    _, problems = parse_file(mixed, kind="lab")
    assert fields(problems) == {("row[2].kind", "consistency")}


# -- values -------------------------------------------------------------------------------------


def test_bad_rows_every_problem_with_its_row_and_column() -> None:
    data = csv_bytes(
        HEADER,
        ["lab", "250301001", "血清总蛋白测定", "g/L", "30", ""],  # good
        ["labs", "250301002", "血清白蛋白测定", "g/L", "30", ""],
        ["lab", "250302001", "葡萄糖测定", "mmol/L", "0", ""],
        ["lab", "250303001", "血清总胆固醇测定", "mmol/L", "abc", ""],
        ["lab", "", "无编码", "", "30", ""],
        ["exam", "210300001", "", "", "-5", ""],
        ["lab", "250301001", "重复", "g/L", "30", ""],
    )
    items, problems = parse_file(data)
    assert items == []  # nothing, although row 2 is good
    assert fields(problems) == {
        ("row[3].kind", "dictionary"),
        ("row[4].validity_days", "positive"),
        ("row[5].validity_days", "integer"),
        ("row[6].code", "required"),
        ("row[7].name", "required"),
        ("row[7].validity_days", "positive"),
        ("row[8].code", "duplicate"),
    }
    assert all(p.message for p in problems)
    assert "row[2]" in next(p.message for p in problems if p.rule == "duplicate")


def test_row_numbers_are_spreadsheet_rows_even_with_multiline_fields_and_blank_lines() -> None:
    data = b'kind,code,name,validity_days,source_note\nlab,1,a,3,"two\nlines"\n\nlab,2,b,x,\n'
    _, problems = parse_file(data)
    assert fields(problems) == {("row[4].validity_days", "integer")}  # the 4th row of the sheet (blank row 3 kept)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("0", False), ("是", True), ("否", False), ("TRUE", True), ("false", False), ("", True),
     (True, True), (False, False), (1, True), (0, False), (None, True)],
)  # fmt: skip
def test_recognizable_values(value: Any, expected: bool) -> None:
    items, problems = parse_json([one(recognizable=value)])
    assert problems == [] and items[0]["recognizable"] is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", 1), ("2", 2), ("3", 3), ("", 2), (None, 2), (3, 3), (2.0, 2), ("一级", 1), ("二级及以上", 2), ("三", 3)],
)
def test_min_level_values(value: Any, expected: int) -> None:
    items, problems = parse_json([one(min_level=value)])
    assert problems == [] and items[0]["min_level"] == expected


@pytest.mark.parametrize(
    ("column", "value", "rule"),
    [
        ("recognizable", "maybe", "dictionary"),
        ("recognizable", 2, "dictionary"),
        ("min_level", "4", "dictionary"),
        ("min_level", 0, "dictionary"),
        ("validity_days", 30.5, "integer"),
        ("validity_days", True, "integer"),
        ("validity_days", "", "required"),
        ("validity_days", 100000, "range"),
        ("region_scope", "65,6501x", "format"),
        ("region_scope", "650", "format"),
        ("code", "2503 01002", "format"),
        ("code", "a,b", "format"),
        ("code", "x" * 129, "max_length"),
        ("name", "x" * 257, "max_length"),
        ("name", "bell\x07", "characters"),
        ("source_note", "nul\x00", "characters"),
        ("kind", "blood", "dictionary"),
        ("kind", None, "required"),
    ],
)
def test_bad_values(column: str, value: Any, rule: str) -> None:
    items, problems = parse_json([one(**{column: value})])
    assert items == []
    assert fields(problems) == {(f"row[0].{column}", rule)}
    assert problems[0].message


@pytest.mark.parametrize(("value", "expected"), [(30, 30), (30.0, 30), ("30", 30), (" 30 ", 30), ("30天", 30), ("+7", 7)])
def test_validity_days_values(value: Any, expected: int) -> None:
    items, problems = parse_json([one(validity_days=value)])
    assert problems == [] and items[0]["validity_days"] == expected


def test_region_scope_is_normalised() -> None:
    items, _ = parse_json([one(region_scope=" 65 ; 650100，6523、65\t650102001 ")])
    assert items[0]["region_scope"] == "65,650100,6523,650102001"


def test_json_rows() -> None:
    _, problems = parse_json([one(), one(kind="检查", code="210300001", 项目名称="CT", name=None)])
    # 项目名称 and name are one column: given twice (and the first, None, is empty)
    assert fields(problems) == {("row[1].name", "duplicate"), ("row[1].name", "required")}
    _, problems = parse_json([one(updated_at="2024-01-01 00:00:00", extra=1), "x"])
    assert fields(problems) == {("row[0].extra", "unknown_column"), ("row[1]", "type")}
    assert ("rows", "type") in fields(parse_json({"rows": []})[1])
    assert fields(parse_json([])[1]) == {("rows", "required")}


def test_numbers_from_a_spreadsheet_are_text_without_dot_zero() -> None:
    row = one(code=250301002.0, unit=None, name="白蛋白")
    records, problems = rows.records_from_table(list(row), [(2, list(row.values()))], rows.CATALOG_COLUMNS)
    items, more = rows.parse_catalog(records)
    assert problems + more == [] and items[0]["code"] == "250301002" and items[0]["unit"] == ""


@pytest.mark.parametrize("value", [250301002, 250301002.0, True])
def test_json_numbers_and_booleans_are_not_text(value: Any) -> None:
    """In JSON a value has its own type: a number where a code is asked is refused, not turned into text."""
    _, problems = parse_json([one(code=value)])
    assert [(p.field, p.rule) for p in problems] == [("row[0].code", "type")]


@pytest.mark.parametrize("bad", ["A\x00", "白\u202e蛋白", "x\u2066y", "\x1b[31m"])
def test_control_and_bidi_characters_are_refused(bad: str) -> None:
    _, problems = parse_json([one(name=bad)])
    assert [(p.field, p.rule) for p in problems] == [("row[0].name", "characters")]
    _, problems = parse_json([one(source_note=bad)])
    assert [(p.field, p.rule) for p in problems] == [("row[0].source_note", "characters")]


# -- mapping rows ---------------------------------------------------------------------------------


def test_mapping_rows() -> None:
    records, problems = rows.records_from_json(
        [
            {"kind": "lab", "local_code": "ALB", "local_name": "白蛋白", "std_code": "250301002", "std_name": "ignored"},
            {"类型": "检查", "本地编码": "CT-HEAD", "标准编码": "210300001"},
            {"kind": "lab", "local_code": "ALB", "std_code": "250301001"},
            {"kind": "lab", "local_code": "", "std_code": ""},
        ],
        rows.MAPPING_COLUMNS,
        ignored=rows.MAPPING_IGNORED,
    )
    assert problems == []
    maps, problems = rows.parse_mappings(records)
    assert maps == []
    assert fields(problems) == {
        ("row[2].local_code", "duplicate"),
        ("row[3].local_code", "required"),
        ("row[3].std_code", "required"),
    }
    maps, problems = rows.parse_mappings(records[:2])
    assert problems == []
    assert [(m["kind"], m["local_code"], m["local_name"], m["std_code"], m["label"]) for m in maps] == [
        ("lab", "ALB", "白蛋白", "250301002", "row[0]"),
        ("exam", "CT-HEAD", "", "210300001", "row[1]"),
    ]


# -- files ------------------------------------------------------------------------------------------


def test_xlsx_round_trip_keeps_text_as_text() -> None:
    header = list(rows.CATALOG_EXPORT)
    data = [
        ["lab", "0250", "=1+1 不是公式", "", 30, 0, 3, "65,6501", "note, with comma\nand a new line", ""],
        ["exam", "210300001", "CT", "", 90, 1, 2, "", "", "12.50"],
    ]
    sheet = tabular.read_table(tabular.write_xlsx(header, data, title="catalog"), "catalog.xlsx")
    assert sheet.header == header
    records, problems = rows.records_from_table(sheet.header, sheet.rows, rows.CATALOG_COLUMNS)
    items, more = rows.parse_catalog(records)
    assert problems == [] and more == []
    assert [rows.catalog_export_row(i) for i in items] == data


def test_csv_round_trip() -> None:
    items, _ = parse_file(DEMO)
    out = tabular.write_csv(rows.CATALOG_EXPORT, [rows.catalog_export_row(i) for i in items])
    assert out.startswith(b"\xef\xbb\xbf")
    again, problems = parse_file(out)
    assert problems == [] and again == items


def test_gb18030_csv_as_excel_saves_it() -> None:
    data = "类型,项目编码,项目名称,有效天数\n检验,250304001,钾测定,7\n".encode("gb18030")
    items, problems = parse_file(data)
    assert problems == [] and items[0]["name"] == "钾测定"


def test_tab_separated() -> None:
    items, problems = parse_file(b"kind\tcode\tname\tvalidity_days\nlab\t1\tx, y\t3\n", "x.tsv")
    assert problems == [] and items[0]["name"] == "x, y"


@pytest.mark.parametrize(
    ("data", "filename", "rule"),
    [
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100, "old.xls", "format"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100, None, "format"),
        (b"kind,code\n", "catalog.pdf", "format"),
        (b"not a zip", "catalog.xlsx", "format"),
        (b"PK\x03\x04 broken zip", None, "format"),
        (b"\xff\xfe\x00k\x00i", "x.csv", "encoding"),
    ],
)
def test_unreadable_files(data: bytes, filename: str | None, rule: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        tabular.read_table(data, filename)
    assert [(p.field, p.rule) for p in exc.value.problems] == [("file", rule)]
    assert exc.value.problems[0].message


def test_empty_file_and_header_only() -> None:
    assert fields(parse_file(b"")[1]) >= {("rows", "required"), ("header.code", "required")}
    assert fields(parse_file(b"kind,code,name,validity_days\n")[1]) == {("rows", "required")}


def test_fee_column() -> None:
    data = csv_bytes(
        ["kind", "code", "name", "validity_days", "单价"],
        ["lab", "1", "a", "3", "12.5"], ["lab", "2", "b", "3", ""], ["lab", "3", "c", "3", "8元"],
    )
    items, problems = parse_file(data)
    assert problems == [] and [str(i["fee"]) if i["fee"] is not None else None for i in items] == ["12.50", None, "8.00"]
    for bad in ("abc", "-1", "1.234", "NaN", "2000000"):
        items, problems = parse_file(csv_bytes(["kind", "code", "name", "validity_days", "收费标准"], ["lab", "1", "a", "3", bad]))
        assert items == [] and fields(problems) == {("row[2].fee", "format")}, bad
