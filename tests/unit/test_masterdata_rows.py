"""Pure validation of directory master data uploads: departments, staff, patients, instruments,
QC records — every problem at once, each named ``{node}[i].{field}``."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest

from huren.domain import idcard
from huren.domain.masterdata import BY_PATH, KINDS, Kind, check_org, validate_rows
from huren.errors import Problem

ID_NO = idcard.make("650102", date(1980, 5, 17), 11)

VALID: dict[str, dict[str, Any]] = {
    "dept": {"dept_code": "0101", "dept_name": "呼吸内科", "dept_std_code": "A03.01", "dept_std_name": "呼吸内科专业",
             "campus": "本部", "active": "1"},
    "staff": {"staff_code": "S001", "name": "王医生", "dept_code": "0101", "title": "主任医师", "licence_no": "110650100000001",
              "active": 1},
    "patient": {"patient_id": "P001", "id_type_code": "01", "id_no": ID_NO, "name": "张三", "sex_code": "1",
                "birth_date": "1980-05-17", "card_no": "K001", "phone": "13800000000", "registered_at": "2024-03-01 08:00:00"},
    "device": {"device_code": "D1", "name": "全自动生化分析仪", "model": "AU5800", "manufacturer": "贝克曼", "dept_code": "0301",
               "active": "0"},
    "qc_record": {"device_code": "D1", "item_code": "GLU", "item_name": "葡萄糖", "qc_date": "2024-03-11", "qc_level": "L1",
                  "target_value": "5.6", "measured_value": "5.7", "in_control": "1"},
}

REQUIRED = {
    "dept": {"dept_code", "dept_name", "dept_std_code"},
    "staff": {"staff_code", "name"},
    "patient": {"patient_id", "id_type_code", "id_no", "name", "sex_code"},
    "device": {"device_code", "name"},
    "qc_record": {"device_code", "item_code", "qc_date", "measured_value", "in_control"},
}


def _fields(problems: list[Problem]) -> set[tuple[str, str]]:
    return {(p.field, p.rule) for p in problems}


def _kind(node: str) -> Kind:
    return KINDS[node]


def test_kinds_and_paths() -> None:
    assert set(KINDS) == {"dept", "staff", "patient", "device", "qc_record"}
    assert {k: v.node for k, v in BY_PATH.items()} == {
        "depts": "dept", "staff": "staff", "patients": "patient", "devices": "device", "qc-records": "qc_record",
    }
    assert [k.ids for k in KINDS.values()] == [("HZ-2",), ("HZ-3",), ("HZ-1",), ("XC-L1",), ("XC-L4",)]
    assert [k.node for k in KINDS.values() if k.patient_data] == ["patient"]


@pytest.mark.parametrize("node", list(KINDS))
def test_valid_row_is_normalised(node: str) -> None:
    rows, problems = validate_rows(_kind(node), {node: [VALID[node]]})
    assert problems == []
    assert len(rows) == 1
    row = rows[0]
    assert row["org_code"] is None  # not sent: the service sets the caller's
    assert set(row) == {"org_code", *_kind(node).columns}


def test_normalised_values() -> None:
    dept = validate_rows(_kind("dept"), {"dept": [VALID["dept"]]})[0][0]
    assert dept["active"] is True
    device = validate_rows(_kind("device"), {"device": [VALID["device"]]})[0][0]
    assert device["active"] is False
    patient = validate_rows(_kind("patient"), {"patient": [VALID["patient"]]})[0][0]
    assert patient["birth_date"] == date(1980, 5, 17)
    assert patient["registered_at"] == datetime(2024, 3, 1, 8, 0, 0)
    qc = validate_rows(_kind("qc_record"), {"qc_record": [VALID["qc_record"]]})[0][0]
    assert qc["qc_date"] == date(2024, 3, 11) and qc["in_control"] is True
    staff = validate_rows(_kind("staff"), {"staff": [VALID["staff"]]})[0][0]
    assert staff["active"] is True


@pytest.mark.parametrize("node", list(KINDS))
def test_optional_fields_default(node: str) -> None:
    row = {k: v for k, v in VALID[node].items() if k in REQUIRED[node]}
    rows, problems = validate_rows(_kind(node), {node: [row]})
    assert problems == [], problems
    rec = rows[0]
    for f in _kind(node).spec:
        if f.required or f.name == "org_code":
            continue
        if f.name == "active":
            assert rec[f.name] is True  # active unless said otherwise
        elif f.name == "dept_std_name":
            assert rec[f.name] == "呼吸内科专业"  # from STD_DEPT
        elif f.kind == "str":
            assert rec[f.name] == ""  # the columns are NOT NULL, default ""
        else:
            assert rec[f.name] is None


@pytest.mark.parametrize("node", list(KINDS))
def test_every_required_field_reported_at_once(node: str) -> None:
    row = {k: v for k, v in VALID[node].items() if k not in REQUIRED[node]}
    rows, problems = validate_rows(_kind(node), {node: [VALID[node], row]})
    assert rows == []
    assert _fields(problems) >= {(f"{node}[1].{f}", "required") for f in REQUIRED[node]}
    assert all(p.message for p in problems)
    assert not [p for p in problems if p.field.startswith(f"{node}[0]")]


@pytest.mark.parametrize(
    ("node", "field", "value", "dictionary"),
    [
        ("dept", "dept_std_code", "1411", "STD_DEPT"),
        ("patient", "id_type_code", "77", "STD_ID_TYPE"),
        ("patient", "sex_code", "3", "STD_SEX"),
    ],
)
def test_dictionary_codes(node: str, field: str, value: str, dictionary: str) -> None:
    _, problems = validate_rows(_kind(node), {node: [VALID[node] | {field: value}]})
    hits = [p for p in problems if (p.field, p.rule) == (f"{node}[0].{field}", "dictionary")]
    assert hits and dictionary in hits[0].message and value in hits[0].message


def test_id_checksum_only_for_resident_ids() -> None:
    bad = ID_NO[:-1] + ("0" if ID_NO[-1] != "0" else "1")
    _, problems = validate_rows(_kind("patient"), {"patient": [VALID["patient"] | {"id_no": bad}]})
    assert _fields(problems) == {("patient[0].id_no", "id_checksum")}
    assert "校验位" in problems[0].message
    # a passport number is not checked against GB 11643
    rows, problems = validate_rows(
        _kind("patient"), {"patient": [VALID["patient"] | {"id_type_code": "03", "id_no": "E12345678"}]}
    )
    assert problems == [] and rows[0]["id_no"] == "E12345678"


def test_birth_date_must_match_resident_id() -> None:
    _, problems = validate_rows(_kind("patient"), {"patient": [VALID["patient"] | {"birth_date": "1980-05-18"}]})
    assert _fields(problems) == {("patient[0].birth_date", "consistency")}
    # a bad ID number is reported once, not again as an inconsistent birth date
    bad = ID_NO[:-1] + ("0" if ID_NO[-1] != "0" else "1")
    _, problems = validate_rows(
        _kind("patient"), {"patient": [VALID["patient"] | {"id_no": bad, "birth_date": "1980-05-18"}]}
    )
    assert _fields(problems) == {("patient[0].id_no", "id_checksum")}


@pytest.mark.parametrize(("node", "field"), [("dept", "active"), ("device", "active"), ("qc_record", "in_control")])
@pytest.mark.parametrize("value", ["2", "9"])
def test_flags_are_one_or_zero(node: str, field: str, value: str) -> None:
    _, problems = validate_rows(_kind(node), {node: [VALID[node] | {field: value}]})
    assert _fields(problems) == {(f"{node}[0].{field}", "boolean")}


def test_flag_not_a_number() -> None:
    _, problems = validate_rows(_kind("qc_record"), {"qc_record": [VALID["qc_record"] | {"in_control": "是"}]})
    assert _fields(problems) == {("qc_record[0].in_control", "integer")}


def test_json_booleans_accepted_as_flags() -> None:
    rows, problems = validate_rows(_kind("qc_record"), {"qc_record": [VALID["qc_record"] | {"in_control": False}]})
    assert problems == [] and rows[0]["in_control"] is False


def test_formats_and_lengths() -> None:
    row = VALID["patient"] | {"birth_date": "1980/05/17", "registered_at": "2024-03-01", "phone": "1" * 33, "name": "名" * 129}
    _, problems = validate_rows(_kind("patient"), {"patient": [row]})
    assert _fields(problems) == {
        ("patient[0].birth_date", "date_format"),
        ("patient[0].registered_at", "datetime_format"),
        ("patient[0].phone", "max_length"),
        ("patient[0].name", "max_length"),
    }


def test_qc_date_accepts_a_full_time() -> None:
    rows, problems = validate_rows(_kind("qc_record"), {"qc_record": [VALID["qc_record"] | {"qc_date": "2024-03-11 10:00:00"}]})
    assert problems == [] and rows[0]["qc_date"] == date(2024, 3, 11)


@pytest.mark.parametrize(
    ("node", "changed"),
    [
        ("dept", {"dept_name": "另一个名字"}),
        ("patient", {"name": "李四"}),
        ("qc_record", {"measured_value": "9.9"}),
    ],
)
def test_duplicate_key_in_one_upload(node: str, changed: dict[str, str]) -> None:
    _, problems = validate_rows(_kind(node), {node: [VALID[node], VALID[node] | changed]})
    key0 = _kind(node).key[0]
    assert _fields(problems) == {(f"{node}[1].{key0}", "duplicate")}
    assert f"{node}[0]" in problems[0].message


def test_qc_records_differing_in_level_are_not_duplicates() -> None:
    rows, problems = validate_rows(
        _kind("qc_record"),
        {"qc_record": [VALID["qc_record"], VALID["qc_record"] | {"qc_level": "L2"}, VALID["qc_record"] | {"qc_level": ""}]},
    )
    assert problems == [] and [r["qc_level"] for r in rows] == ["L1", "L2", ""]


@pytest.mark.parametrize("payload", [None, [], {}, {"dept": []}, {"dept": "x"}, {"depts": [VALID["dept"]]}])
def test_missing_node(payload: Any) -> None:
    rows, problems = validate_rows(_kind("dept"), payload)
    assert rows == [] and _fields(problems) == {("dept", "node")}


def test_node_name_case_insensitive_and_single_object() -> None:
    rows, problems = validate_rows(_kind("dept"), {"DEPT": VALID["dept"]})
    assert problems == [] and len(rows) == 1
    rows, problems = validate_rows(_kind("dept"), {"dept": [{k.upper(): v for k, v in VALID["dept"].items()}]})
    assert problems == [] and rows[0]["dept_code"] == "0101"


def test_row_not_an_object() -> None:
    _, problems = validate_rows(_kind("staff"), {"staff": [VALID["staff"], "S002"]})
    assert _fields(problems) == {("staff[1]", "node")}


def test_field_of_wrong_type() -> None:
    _, problems = validate_rows(_kind("staff"), {"staff": [VALID["staff"] | {"name": ["王"]}]})
    assert _fields(problems) == {("staff[0].name", "type")}


def test_ownership() -> None:
    kind = _kind("device")
    rows, problems = validate_rows(kind, {"device": [VALID["device"] | {"org_code": "457759922"}, VALID["device"] | {
        "device_code": "D2", "org_code": "457759933"}, VALID["device"] | {"device_code": "D3"}]})
    assert problems == []
    own = check_org(kind, rows, "457759922")
    assert _fields(own) == {("device[1].org_code", "ownership")}
    assert "457759933" in own[0].message
