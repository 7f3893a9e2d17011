"""Pure validation of seed-002 payloads: field tables, formats, dictionaries, consistency, PDFs."""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any

import pytest

from huren.domain import dictionaries, idcard
from huren.domain.fields import (
    ALIASES,
    EXAM_SUBITEM,
    EXAMMASTER,
    LAB_EXAM_REPORT,
    LAB_SUBITEM,
    LABMASTER,
    VOID_FILTER,
    Field,
)
from huren.domain.validation import (
    Report,
    check_record,
    raw_key,
    validate_daily,
    validate_report,
    validate_void,
)
from huren.errors import Problem
from tests import samples

MAX_PDF = 1024 * 1024

# (payload kind, node, field table); items and daily rows are addressed as node[0]
TABLES: tuple[tuple[str, str, tuple[Field, ...]], ...] = (
    ("lab", "labmaster", LABMASTER),
    ("lab", "lab_subitem", LAB_SUBITEM),
    ("exam", "exammaster", EXAMMASTER),
    ("exam", "exam_subitem", EXAM_SUBITEM),
    ("daily", "lab_exam_report", LAB_EXAM_REPORT),
)
FACTORIES: dict[str, Callable[[], dict[str, Any]]] = {"lab": samples.lab, "exam": samples.exam, "daily": samples.daily}
# fields an item repeats from its master (changing them alone breaks consistency)
REFS = {"org_code", "event_no", "report_form_no"}


def _cases(pred: Callable[[Field], bool]) -> list[Any]:
    return [pytest.param(kind, node, f, id=f"{node}.{f.name}") for kind, node, spec in TABLES for f in spec if pred(f)]


def _target(payload: dict[str, Any], node: str) -> dict[str, Any]:
    value = payload[node]
    return value if isinstance(value, dict) else value[0]


def _where(node: str) -> str:
    return node if node.endswith("master") else f"{node}[0]"


def _set(record: dict[str, Any], name: str, value: Any) -> None:
    """Set a field whatever spelling the sample used (``Id_Type_Code``, ``patient_condition_descr``)."""
    _drop(record, name)
    record[name] = value


def _drop(record: dict[str, Any], name: str) -> None:
    for k in [k for k in record if ALIASES.get(k.lower(), k.lower()) == name]:
        del record[k]


def _run(kind: str, payload: Any) -> list[Problem]:
    if kind == "daily":
        return validate_daily(payload)[1]
    return validate_report(kind, payload, max_pdf_bytes=MAX_PDF)[1]


def _rules(problems: Sequence[Problem]) -> list[tuple[str, str]]:
    return [(p.field, p.rule) for p in problems]


# --- the seed's samples ---------------------------------------------------------------------------


def test_lab_sample_validates_and_is_normalised() -> None:
    report, problems = validate_report("lab", samples.lab(), max_pdf_bytes=MAX_PDF)
    assert problems == []
    assert isinstance(report, Report)
    assert report.kind == "lab"
    m = report.master
    assert m["last_update_dtime"] == datetime(2024, 3, 11, 9, 29, 0)
    assert m["retrieve_date"] == date(2024, 3, 11)  # a date-time where a date is asked: keep the date
    assert m["event_type"] == 1 and m["data_status"] == 1
    assert m["apply_form_no"] is None and m["order_priority"] is None  # empty optional -> None
    assert m["id_no"] == samples.ID_NO
    assert set(m) == {f.name for f in LABMASTER}
    assert [i["serial_no"] for i in report.items] == [46530132, 46530131]
    assert [i["recognition"] for i in report.items] == [0, 1]
    assert report.items[1]["norm_lower_limit"] == "40.0000"
    assert report.pdf == samples.PDF_BYTES
    assert report.key == ("457759922", "14437173", "1878", 1, "1878")


def test_exam_sample_validates_and_is_normalised() -> None:
    report, problems = validate_report("exam", samples.exam(), max_pdf_bytes=MAX_PDF)
    assert problems == []
    assert report is not None
    m = report.master
    assert m["id_type_code"] == "01"  # sent as Id_Type_Code
    assert m["patient_condition_desc"] == "无"  # sent as patient_condition_descr
    assert m["birth_date"] == date(1967, 2, 1)
    assert m["state"] == "4"
    assert m["participant_dept_std_code"] == "A11"
    assert set(m) == {f.name for f in EXAMMASTER}
    assert [i["exam_item_code"] for i in report.items] == ["115"]
    assert report.pdf == samples.PDF_BYTES


def test_exam_sample_with_local_dept_codes_names_both_fields() -> None:
    payload = samples.xml_to_payload(samples.EXAM_XML_SEED_DEPTS)
    report, problems = validate_report("exam", payload, max_pdf_bytes=MAX_PDF)
    assert report is None
    assert _rules(problems) == [
        ("exammaster.participant_dept_std_code", "dictionary"),
        ("exammaster.performer_dept_std_code", "dictionary"),
    ]
    assert "1411" in problems[0].message and "STD_DEPT" in problems[0].message


def test_daily_sample_validates() -> None:
    rows, problems = validate_daily(samples.daily())
    assert problems == []
    assert [(r["dept_code"], r["date_t"], r["lab_num"], r["exam_num"]) for r in rows] == [
        ("1190000", date(2024, 5, 29), 0, 74),
        ("1180000", date(2024, 5, 29), 0, 490),
    ]
    assert rows[1]["dept_std_code"] == "A32.05"


def _void_payload() -> dict[str, Any]:
    m = samples.lab()["labmaster"]
    filt = {k: m[k] for k in ("org_code", "report_form_no", "patient_id", "event_type", "event_no", "id_no")}
    filt["id_type"] = "01"
    return filt


def test_void_filter_validates() -> None:
    rec, problems = validate_void(_void_payload())
    assert problems == []
    assert rec == {
        "org_code": "457759922",
        "report_form_no": "14437173",
        "patient_id": "1878",
        "event_type": 1,
        "event_no": "1878",
        "id_no": samples.ID_NO,
        "id_type": "01",
    }


# --- required and optional fields -----------------------------------------------------------------


@pytest.mark.parametrize(("kind", "node", "field"), _cases(lambda f: f.required))
def test_required_field_removed(kind: str, node: str, field: Field) -> None:
    payload = FACTORIES[kind]()
    _drop(_target(payload, node), field.name)
    problems = _run(kind, payload)
    assert _rules(problems) == [(f"{_where(node)}.{field.name}", "required")]
    assert field.name in problems[0].message and "必填" in problems[0].message


@pytest.mark.parametrize(("kind", "node", "field"), _cases(lambda f: f.required))
def test_required_field_blank(kind: str, node: str, field: Field) -> None:
    payload = FACTORIES[kind]()
    _set(_target(payload, node), field.name, "  ")
    assert _rules(_run(kind, payload)) == [(f"{_where(node)}.{field.name}", "required")]


@pytest.mark.parametrize("field", [f for f in VOID_FILTER if f.required], ids=lambda f: f.name)
def test_void_required_field_removed(field: Field) -> None:
    payload = _void_payload()
    del payload[field.name]
    rec, problems = validate_void(payload)
    assert rec is None
    assert _rules(problems) == [(f"filter.{field.name}", "required")]


@pytest.mark.parametrize(("kind", "node", "field"), _cases(lambda f: not f.required))
def test_optional_field_may_be_empty_or_absent(kind: str, node: str, field: Field) -> None:
    for value in ("", None, "   "):
        payload = FACTORIES[kind]()
        _set(_target(payload, node), field.name, value)
        assert _run(kind, payload) == []
    payload = FACTORIES[kind]()
    _drop(_target(payload, node), field.name)
    if kind == "daily":
        rows, problems = validate_daily(payload)
        assert problems == [] and rows[0][field.name] is None
    else:
        report, problems = validate_report(kind, payload, max_pdf_bytes=MAX_PDF)
        assert problems == [] and report is not None
        rec = report.master if node.endswith("master") else report.items[0]
        assert rec[field.name] is None


def test_optional_tables_match_the_seed() -> None:
    optional = {f.name for f in LABMASTER if not f.required}
    assert optional == {
        "apply_form_no", "card_no", "effective_dtime", "order_id", "order_priority", "order_priority_name",
        "specimen_id", "specimen_class_code", "specimen_determiner_code", "specimen_determiner_name",
        "playing_device",
    }  # fmt: skip
    assert all(f.required for f in EXAM_SUBITEM)
    assert all(f.required for f in LAB_EXAM_REPORT)


# --- lengths and numbers -----------------------------------------------------------------------------


def _length_case(f: Field) -> bool:
    return f.kind == "str" and f.dictionary is None and f.name not in REFS | {"id_no"}


@pytest.mark.parametrize(("kind", "node", "field"), _cases(_length_case))
def test_max_length_at_size_and_over(kind: str, node: str, field: Field) -> None:
    payload = FACTORIES[kind]()
    _set(_target(payload, node), field.name, "测" * field.size)  # characters, not bytes
    assert _run(kind, payload) == []

    payload = FACTORIES[kind]()
    _set(_target(payload, node), field.name, "a" * (field.size + 1))
    problems = _run(kind, payload)
    assert _rules(problems) == [(f"{_where(node)}.{field.name}", "max_length")]
    assert str(field.size) in problems[0].message and str(field.size + 1) in problems[0].message


def test_text_is_trimmed_before_length_check() -> None:
    payload = samples.lab()
    payload["labmaster"]["report_title"] = "  " + "x" * 256 + "\n"
    report, problems = validate_report("lab", payload, max_pdf_bytes=MAX_PDF)
    assert problems == [] and report is not None
    assert report.master["report_title"] == "x" * 256


@pytest.mark.parametrize(
    ("kind", "node", "name", "ok", "too_many"),
    [
        ("lab", "labmaster", "data_status", "1", "12"),
        ("lab", "lab_subitem", "serial_no", "1234567890", "12345678901"),
        ("exam", "exammaster", "data_status", "0", "10"),
        ("daily", "lab_exam_report", "lab_num", "9999", "10000"),
        ("daily", "lab_exam_report", "exam_num", "0", "12345"),
    ],
)
def test_number_precision(kind: str, node: str, name: str, ok: str, too_many: str) -> None:
    payload = FACTORIES[kind]()
    _set(_target(payload, node), name, ok)
    assert _run(kind, payload) == []

    payload = FACTORIES[kind]()
    _set(_target(payload, node), name, too_many)
    assert _rules(_run(kind, payload)) == [(f"{_where(node)}.{name}", "max_digits")]


@pytest.mark.parametrize("value", ["1.5", "1.0", "abc", "1e3", "-", "0x1", "１", "7 4", 1.5])
def test_number_must_be_an_integer(value: Any) -> None:
    payload = samples.daily()
    payload["lab_exam_report"][0]["exam_num"] = value
    rows, problems = validate_daily(payload)
    assert rows == []
    assert _rules(problems) == [("lab_exam_report[0].exam_num", "integer")]


def test_number_accepts_json_integers_and_signs() -> None:
    payload = samples.daily()
    payload["lab_exam_report"][0]["exam_num"] = 74
    payload["lab_exam_report"][1]["exam_num"] = " 0490 "
    rows, problems = validate_daily(payload)
    assert problems == []
    assert [r["exam_num"] for r in rows] == [74, 490]


def test_non_scalar_value_is_a_type_problem() -> None:
    payload = samples.lab()
    payload["labmaster"]["name"] = ["张三"]
    payload["labmaster"]["event_no"] = {"v": 1}
    _, problems = validate_report("lab", payload, max_pdf_bytes=MAX_PDF)
    assert _rules(problems) == [("labmaster.event_no", "type"), ("labmaster.name", "type")]


# --- dictionaries ---------------------------------------------------------------------------------


def _unknown_code(f: Field) -> str:
    codes = dictionaries.load(f.dictionary or "")
    candidates = ["98", "8", "7"] if f.kind == "num" else ["ZZZ"[: max(1, min(3, f.size))], "Z"]
    for c in candidates:
        if c not in codes:
            return c
    raise AssertionError(f"no unknown code for {f.name}")


@pytest.mark.parametrize(("kind", "node", "field"), _cases(lambda f: f.dictionary is not None))
def test_dictionary_field_rejects_unknown_code(kind: str, node: str, field: Field) -> None:
    assert field.dictionary in dictionaries.NAMES
    code = _unknown_code(field)
    payload = FACTORIES[kind]()
    _set(_target(payload, node), field.name, code)
    problems = _run(kind, payload)
    assert _rules(problems) == [(f"{_where(node)}.{field.name}", "dictionary")]
    assert code in problems[0].message and str(field.dictionary) in problems[0].message


@pytest.mark.parametrize(("kind", "node", "field"), _cases(lambda f: f.dictionary is not None))
def test_dictionary_field_accepts_every_code(kind: str, node: str, field: Field) -> None:
    for code in dictionaries.load(field.dictionary or ""):
        if field.kind == "num" and not code.isdigit():
            continue
        if len(code) > (field.size or 10**6) and field.kind == "str":
            continue
        payload = FACTORIES[kind]()
        _set(_target(payload, node), field.name, code)
        assert _run(kind, payload) == [], code


@pytest.mark.parametrize("field", [f for f in VOID_FILTER if f.dictionary], ids=lambda f: f.name)
def test_void_dictionary_fields(field: Field) -> None:
    payload = _void_payload()
    payload[field.name] = _unknown_code(field)
    assert _rules(validate_void(payload)[1]) == [(f"filter.{field.name}", "dictionary")]


# --- date and time formats ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "2024-03-11 9:29:00",
        "2024/03/11 09:29:00",
        "2024-02-30 10:00:00",
        "2024-03-11T09:29:00",
        "2024-03-11 09:29",
        "2024-03-11",
        "2024-03-11 24:00:00",
        "2024-03-11 09:29:60",
        "2024-03-11 09:29:00.5",
        "2024-03-11 09:29+08",  # 19 characters, but a time zone, not seconds
        "2024-03-11 09:29.00",
        "20240311 092900",
        "11/03/2024 09:29:00",
    ],
)
def test_datetime_format_rejected(value: str) -> None:
    payload = samples.lab()
    payload["labmaster"]["author_dtime"] = value
    problems = _run("lab", payload)
    assert _rules(problems) == [("labmaster.author_dtime", "datetime_format")]
    assert value in problems[0].message


def test_datetime_parsed() -> None:
    payload = samples.lab()
    payload["labmaster"]["author_dtime"] = " 2024-02-29 23:59:59 "
    report, problems = validate_report("lab", payload, max_pdf_bytes=MAX_PDF)
    assert problems == [] and report is not None
    assert report.master["author_dtime"] == datetime(2024, 2, 29, 23, 59, 59)
    assert report.master["author_dtime"].tzinfo is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1967-02-01", date(1967, 2, 1)), ("1967-02-01 13:45:00", date(1967, 2, 1)), ("2000-02-29", date(2000, 2, 29))],
)
def test_date_field_accepts_date_or_datetime(value: str, expected: date) -> None:
    payload = samples.exam()
    payload["exammaster"]["birth_date"] = value
    report, problems = validate_report("exam", payload, max_pdf_bytes=MAX_PDF)
    assert problems == [] and report is not None
    assert report.master["birth_date"] == expected
    assert type(report.master["birth_date"]) is date


@pytest.mark.parametrize(
    "value", ["1967-2-1", "1967/02/01", "1967-02-30", "19670201", "1967-02-01 25:00:00", "1967-02", "1900-02-29"]
)
def test_date_format_rejected(value: str) -> None:
    payload = samples.exam()
    payload["exammaster"]["birth_date"] = value
    assert _rules(_run("exam", payload)) == [("exammaster.birth_date", "date_format")]


# --- key spelling ---------------------------------------------------------------------------------


def test_keys_are_case_insensitive() -> None:
    payload = samples.lab()
    payload["labmaster"] = {k.upper(): v for k, v in payload["labmaster"].items()}
    payload["lab_subitem"] = [{k.title(): v for k, v in i.items()} for i in payload["lab_subitem"]]
    report, problems = validate_report("lab", payload, max_pdf_bytes=MAX_PDF)
    assert problems == [] and report is not None
    assert report.master["org_code"] == "457759922"
    assert report.master["retrieve_date"] == date(2024, 3, 11)
    assert report.items[0]["serial_no"] == 46530132
    assert report.pdf == samples.PDF_BYTES  # "PDF"


def test_patient_condition_descr_alias() -> None:
    payload = samples.exam()
    m = payload["exammaster"]
    assert "patient_condition_descr" in m and "patient_condition_desc" not in m  # as the seed spells it
    m["patient_condition_descr"] = "反复鼻塞"
    report, _ = validate_report("exam", payload, max_pdf_bytes=MAX_PDF)
    assert report is not None and report.master["patient_condition_desc"] == "反复鼻塞"

    m["PATIENT_CONDITION_DESCR"] = m.pop("patient_condition_descr")
    report, _ = validate_report("exam", payload, max_pdf_bytes=MAX_PDF)
    assert report is not None and report.master["patient_condition_desc"] == "反复鼻塞"

    m.pop("PATIENT_CONDITION_DESCR")
    assert _rules(_run("exam", payload)) == [("exammaster.patient_condition_desc", "required")]


def test_master_given_as_list_of_one() -> None:
    payload = samples.lab()
    payload["labmaster"] = [payload["labmaster"]]
    report, problems = validate_report("lab", payload, max_pdf_bytes=MAX_PDF)
    assert problems == [] and report is not None and report.master["patient_id"] == "1878"


# --- structure and consistency --------------------------------------------------------------------


@pytest.mark.parametrize("ref", sorted(REFS))
@pytest.mark.parametrize(("kind", "items"), [("lab", "lab_subitem"), ("exam", "exam_subitem")])
def test_item_inconsistent_with_master(kind: str, items: str, ref: str) -> None:
    payload = FACTORIES[kind]()
    payload[items][-1][ref] = "999999"
    report, problems = validate_report(kind, payload, max_pdf_bytes=MAX_PDF)
    assert report is None
    index = len(payload[items]) - 1
    assert _rules(problems) == [(f"{items}[{index}].{ref}", "consistency")]
    assert "999999" in problems[0].message


def test_duplicate_serial_no() -> None:
    payload = samples.lab()
    payload["lab_subitem"][1]["serial_no"] = 46530132  # same number as item 0, sent as a JSON number
    assert _rules(_run("lab", payload)) == [("lab_subitem[1].serial_no", "duplicate")]


def test_duplicate_exam_item_code() -> None:
    payload = samples.exam()
    payload["exam_subitem"].append(dict(payload["exam_subitem"][0]))
    assert _rules(_run("exam", payload)) == [("exam_subitem[1].exam_item_code", "duplicate")]
    payload["exam_subitem"][1]["exam_item_code"] = "116"
    report, problems = validate_report("exam", payload, max_pdf_bytes=MAX_PDF)
    assert problems == [] and report is not None and len(report.items) == 2


def test_duplicate_daily_department() -> None:
    payload = samples.daily()
    payload["lab_exam_report"][1]["dept_code"] = "1190000"
    rows, problems = validate_daily(payload)
    assert rows == []
    assert _rules(problems) == [("lab_exam_report[1].dept_code", "duplicate")]


@pytest.mark.parametrize(("kind", "items"), [("lab", "lab_subitem"), ("exam", "exam_subitem")])
@pytest.mark.parametrize("empty", [[], None, "x", {}])
def test_missing_or_empty_item_list(kind: str, items: str, empty: Any) -> None:
    payload = FACTORIES[kind]()
    payload[items] = empty
    report, problems = validate_report(kind, payload, max_pdf_bytes=MAX_PDF)
    assert report is None
    assert _rules(problems) == [(items, "node")]


def test_item_that_is_not_an_object() -> None:
    payload = samples.lab()
    payload["lab_subitem"].append("46530133")
    assert _rules(_run("lab", payload)) == [("lab_subitem[2]", "node")]


@pytest.mark.parametrize("master", [None, "x", [], [{}, {}]])
def test_missing_master(master: Any) -> None:
    payload = samples.lab()
    payload["labmaster"] = master
    report, problems = validate_report("lab", payload, max_pdf_bytes=MAX_PDF)
    assert report is None
    assert _rules(problems) == [("labmaster", "node")]


@pytest.mark.parametrize("payload", [None, [], "labmaster", 1, [samples.lab()]])
def test_non_dict_payload(payload: Any) -> None:
    for kind in ("lab", "exam"):
        report, problems = validate_report(kind, payload, max_pdf_bytes=MAX_PDF)
        assert report is None
        assert _rules(problems) == [("", "node")]
    rows, daily_problems = validate_daily(payload)
    assert rows == [] and _rules(daily_problems) == [("lab_exam_report", "node")]
    rec, problems = validate_void(payload)
    assert rec is None and _rules(problems) == [("", "node")]


def test_daily_empty_and_bad_rows() -> None:
    assert _rules(validate_daily({"lab_exam_report": []})[1]) == [("lab_exam_report", "node")]
    payload = samples.daily()
    payload["lab_exam_report"].append(7)
    assert _rules(validate_daily(payload)[1]) == [("lab_exam_report[2]", "node")]


def test_many_problems_returned_at_once() -> None:
    payload = samples.lab()
    m = payload["labmaster"]
    m["org_code"] = ""
    m["event_type"] = "x"
    m["id_no"] = samples.ID_NO[:17] + ("0" if samples.ID_NO[17] != "0" else "1")
    m["author_dtime"] = "2024-03-11"
    payload["lab_subitem"][1]["result_interpre"] = "Q"
    payload["lab_subitem"][1]["serial_no"] = "46530132"
    report, problems = validate_report("lab", payload, max_pdf_bytes=MAX_PDF)
    assert report is None
    assert _rules(problems) == [
        ("labmaster.org_code", "required"),
        ("labmaster.event_type", "integer"),
        ("labmaster.author_dtime", "datetime_format"),
        ("labmaster.id_no", "id_checksum"),
        ("lab_subitem[1].result_interpre", "dictionary"),
        ("lab_subitem[1].serial_no", "duplicate"),
    ]
    assert all(p.message for p in problems)
    assert problems[0].as_dict() == {"field": "labmaster.org_code", "rule": "required", "message": problems[0].message}


def test_id_checksum_only_for_resident_id_cards() -> None:
    payload = samples.lab()
    payload["labmaster"]["id_no"] = "E12345678"
    assert _rules(_run("lab", payload)) == [("labmaster.id_no", "id_checksum")]
    payload["labmaster"]["id_type_code"] = "03"  # passport
    assert _run("lab", payload) == []
    payload["labmaster"]["id_type_code"] = "01"
    payload["labmaster"]["id_no"] = idcard.make("110105", date(1949, 12, 31), 2).lower()  # ...002x
    assert _run("lab", payload) == []


# --- the PDF carried in the master ----------------------------------------------------------------


def test_pdf_base64_with_line_breaks() -> None:
    payload = samples.lab()
    b64 = samples.PDF_B64
    payload["labmaster"]["pdf"] = "\n".join(b64[i : i + 76] for i in range(0, len(b64), 76))
    report, problems = validate_report("lab", payload, max_pdf_bytes=MAX_PDF)
    assert problems == [] and report is not None and report.pdf == samples.PDF_BYTES


def test_pdf_absent_is_allowed() -> None:
    payload = samples.lab()
    del payload["labmaster"]["pdf"]
    report, problems = validate_report("lab", payload, max_pdf_bytes=MAX_PDF)
    assert problems == [] and report is not None and report.pdf is None


@pytest.mark.parametrize(
    ("pdf", "rule"),
    [
        ("not base64 at all!", "base64"),
        ("QUJ", "base64"),  # missing padding
        (12345, "base64"),
        (base64.b64encode(b"hello, not a pdf").decode(), "pdf_format"),
        (base64.b64encode(b"<html>%PDF-1.4</html>").decode(), "pdf_format"),
    ],
)
def test_pdf_rejected(pdf: Any, rule: str) -> None:
    payload = samples.lab()
    payload["labmaster"]["pdf"] = pdf
    assert _rules(_run("lab", payload)) == [("labmaster.pdf", rule)]


def test_pdf_size_limit() -> None:
    size = len(samples.PDF_BYTES)
    ok, problems = validate_report("lab", samples.lab(), max_pdf_bytes=size)
    assert problems == [] and ok is not None
    report, problems = validate_report("lab", samples.lab(), max_pdf_bytes=size - 1)
    assert report is None
    assert _rules(problems) == [("labmaster.pdf", "pdf_size")]
    # text far over the limit is refused before decoding
    payload = samples.lab()
    payload["labmaster"]["pdf"] = "A" * (4 * size)
    assert _rules(validate_report("lab", payload, max_pdf_bytes=size)[1]) == [("labmaster.pdf", "pdf_size")]


def test_pdf_after_leading_whitespace() -> None:
    payload = samples.lab()
    payload["labmaster"]["pdf"] = base64.b64encode(b"\r\n  " + samples.PDF_BYTES).decode()
    report, problems = validate_report("lab", payload, max_pdf_bytes=MAX_PDF)
    assert problems == [] and report is not None and report.pdf is not None
    assert report.pdf.lstrip().startswith(b"%PDF-")


# --- raw_key and check_record ---------------------------------------------------------------------


def test_raw_key_even_when_invalid() -> None:
    expected = ("457759922", "14437173", "1878", "1", "1878")
    assert raw_key("lab", samples.lab()) == expected
    payload = samples.lab()
    payload["labmaster"]["id_no"] = "bad"
    payload["labmaster"]["event_type"] = 1
    payload["lab_subitem"] = []
    assert validate_report("lab", payload, max_pdf_bytes=MAX_PDF)[0] is None
    assert raw_key("lab", payload) == expected
    payload["labmaster"] = [{k.upper(): v for k, v in payload["labmaster"].items()}]
    assert raw_key("lab", payload) == expected
    assert raw_key("exam", samples.exam()) == ("457759922", "71468573", "1658522", "1", "2022208962")


@pytest.mark.parametrize(
    "payload",
    [
        None,
        [],
        {"labmaster": None},
        {"labmaster": {"org_code": "1"}},
        {"labmaster": {**samples.lab()["labmaster"], "patient_id": ""}},
    ],
)
def test_raw_key_none_without_a_full_key(payload: Any) -> None:
    assert raw_key("lab", payload) is None


def test_raw_key_non_scalar_is_none() -> None:
    payload = samples.lab()
    payload["labmaster"]["event_no"] = ["1878"]
    assert raw_key("lab", payload) is None


def test_check_record_directly() -> None:
    problems: list[Problem] = []
    rec = check_record(
        {"ORG_CODE": " 457759922 ", "event_type": "2", "Event_No": "ZY1", "extra": "ignored"},
        VOID_FILTER,
        "f",
        problems,
    )
    assert rec == {
        "org_code": "457759922",
        "report_form_no": None,
        "patient_id": None,
        "event_type": 2,
        "event_no": "ZY1",
        "id_no": None,
        "id_type": None,
    }
    assert _rules(problems) == [
        ("f.report_form_no", "required"),
        ("f.patient_id", "required"),
        ("f.id_no", "required"),
        ("f.id_type", "required"),
    ]


# --- the dictionary files ---------------------------------------------------------------------------


def test_std_dept_full_list() -> None:
    dept = dictionaries.load("STD_DEPT")
    assert len(dept) == 174
    assert {"A01", "A32.05", "A69", "A03.01", "A30"} <= set(dept)
    assert dept["A01"] == "预防保健科"
    assert dept["A32.05"] == "超声诊断专业"
    assert dept["A69"] == "其他业务科室"


def test_specimen_determiner_full_list() -> None:
    codes = dictionaries.load("STD_SPECIMEN_DETERMINER")
    assert len(codes) == 54
    assert codes["BE"] == "耳"
    assert codes["RVG"] == "右股外侧"


def test_reject_reasons_one_to_ten() -> None:
    assert list(dictionaries.load("REJECT_REASON")) == [str(i) for i in range(1, 11)]


def test_modality_codes() -> None:
    assert {"CT", "MR", "DR", "US", "Pathology"} <= set(dictionaries.load("MODALITY"))


def test_every_dictionary_loads() -> None:
    assert set(dictionaries.TITLES) == set(dictionaries.NAMES)
    for name, codes in dictionaries.all_dictionaries().items():
        assert codes, name
        assert all(code and code == code.strip() and names for code, names in codes.items()), name
    assert set(dictionaries.load("STD_SEX")) >= {"0", "1", "2"}
    assert set(dictionaries.load("EXAM_STATE")) == {"0", "1", "2", "3", "4"}
    with pytest.raises(KeyError):
        dictionaries.load("NO_SUCH_DICTIONARY")


def test_pdf_key_is_case_insensitive_like_every_other_key() -> None:
    payload = samples.lab()
    payload["labmaster"]["pDf"] = payload["labmaster"].pop("pdf")
    report, problems = validate_report("lab", payload, max_pdf_bytes=10**6)
    assert problems == []
    assert report is not None and report.pdf == samples.PDF_BYTES


def test_negative_numbers_are_refused() -> None:
    payload = samples.daily()
    payload["lab_exam_report"][0]["lab_num"] = "-1"
    _, problems = validate_daily(payload)
    assert [(p.field, p.rule) for p in problems] == [("lab_exam_report[0].lab_num", "integer")]
