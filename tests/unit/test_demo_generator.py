"""Demo data generator: determinism, seed-002 field tables, valid IDs and codes, PDFs, daily counts."""

from __future__ import annotations

import base64
import csv
import io
import random
import re
import time
from collections import Counter
from datetime import date, datetime, timedelta
from importlib import resources
from typing import Any

import pytest

from huren.demo import generator as g
from huren.demo import pdf
from huren.domain import dictionaries, idcard

# --- seed 002 §1.2.2 field tables, written out independently of the generator -----------------

LABMASTER = (
    "last_update_dtime", "org_code", "apply_form_no", "report_form_no", "patient_id", "event_type",
    "event_no", "id_no", "id_type_code", "card_no", "retrieve_date", "class_code", "class_name",
    "class_local_name", "report_title", "effective_dtime", "name", "sex_code", "sex_name", "author_id",
    "author_dtime", "author_name", "authenticator_id", "authenticator_dtime", "authenticator_name",
    "participant_id", "participant_dtime", "participant_name", "participant_dept_code",
    "participant_dept_name", "participant_dept_std_code", "participant_dept_std_name", "order_id",
    "order_priority", "order_priority_name", "specimen_id", "specimen_class_code",
    "specimen_determiner_code", "specimen_determiner_name", "performer_dept_code", "performer_dept_name",
    "performer_dept_std_code", "performer_dept_std_name", "performer_doctor", "performer_dtime",
    "playing_device", "data_status", "pdf",
)
LABMASTER_OPTIONAL = {
    "apply_form_no", "card_no", "effective_dtime", "order_id", "order_priority", "order_priority_name",
    "specimen_id", "specimen_class_code", "specimen_determiner_code", "specimen_determiner_name",
    "playing_device",
}
LAB_SUBITEM = (
    "last_update_dtime", "org_code", "event_no", "report_form_no", "serial_no", "class_code", "class_name",
    "class_local_name", "result_type", "result_type_descr", "result_value", "result_unit",
    "norm_lower_limit", "norm_upper_limit", "norm_value_notes", "result_interpre", "result_interpre_descr",
    "effective_dtime", "examine_way", "recognition",
)
LAB_SUBITEM_OPTIONAL = {
    "result_unit", "norm_lower_limit", "norm_upper_limit", "norm_value_notes", "result_interpre_descr",
    "examine_way",
}
EXAMMASTER = (
    "last_update_dtime", "org_code", "apply_form_no", "state", "report_form_no", "patient_id", "event_type",
    "event_no", "performer_dtime", "pacs_id", "study_instance_uid", "id_no", "id_type_code", "card_no",
    "checked_status", "class_code", "class_name", "retrieve_date", "report_title", "effective_dtime",
    "confidentiality", "name", "sex_code", "sex_name", "birth_date", "author_id", "author_dtime",
    "author_name", "authenticator_id", "authenticator_dtime", "authenticator_name",
    "authenticator_dept_code", "authenticator_dept_name", "authenticator_dept_std_code",
    "authenticator_dept_std_name", "participant_dept_code", "participant_dept_name",
    "participant_dept_std_code", "participant_dept_std_name", "participant_id", "participant_dtime",
    "participant_name", "order_id", "order_priority", "order_priority_name", "performer_dept_code",
    "performer_dept_name", "performer_dept_std_code", "performer_dept_std_name", "performer_doctor",
    "playing_device", "outpat_diag_name", "patient_condition_desc", "exam_purpose", "image_descr",
    "is_abnormal", "conclusion", "arrive_dtime", "data_status", "pacs_url", "pdf",
)
EXAMMASTER_OPTIONAL = {
    "apply_form_no", "state", "card_no", "checked_status", "effective_dtime", "confidentiality", "order_id",
    "order_priority", "order_priority_name", "playing_device", "exam_purpose",
}
EXAM_SUBITEM = (
    "last_update_dtime", "org_code", "event_no", "report_form_no", "exam_site_code", "body_part_name",
    "exam_item_code", "exam_item_name", "effective_dtime", "recognition",
)
LAB_EXAM_REPORT = (
    "last_update_dtime", "org_code", "date_t", "dept_code", "dept_name", "dept_std_code", "dept_std_name",
    "lab_num", "exam_num",
)
#: Sizes other than VARCHAR2(128); NUMBER(p) fields are checked as at most p digits.
SIZES = {
    "report_title": 256, "norm_value_notes": 4000, "examine_way": 512, "study_instance_uid": 512,
    "pacs_url": 512, "outpat_diag_name": 4000, "patient_condition_desc": 4000, "exam_purpose": 4000,
    "image_descr": 4000, "conclusion": 4000, "id_type_code": 2, "state": 10, "checked_status": 1,
}
NUMBERS = {"event_type": 2, "data_status": 1, "serial_no": 4, "recognition": 2, "lab_num": 4, "exam_num": 4}
DTIMES = {
    "last_update_dtime", "effective_dtime", "author_dtime", "authenticator_dtime", "participant_dtime",
    "performer_dtime", "arrive_dtime",
}
DATES = {"retrieve_date", "birth_date", "date_t"}

DAY = date(2024, 5, 23)


def _catalog() -> dict[str, tuple[str, str]]:
    text = resources.files("huren.demo").joinpath("data/catalog-demo.csv").read_text("utf-8")
    return {row["code"]: (row["kind"], row["name"]) for row in csv.DictReader(io.StringIO(text))}


def _corpus(seed: int, n: int, *, with_pdf: bool) -> tuple[list[g.DemoPatient], list[dict[str, Any]]]:
    rng = random.Random(seed)
    orgs = g.demo_orgs()
    patients = g.make_patients(rng, max(n // 3, 1))
    reports: list[dict[str, Any]] = []
    for i in range(n):
        org, patient = rng.choice(orgs), rng.choice(patients)
        when = datetime.combine(DAY, datetime.min.time()) + timedelta(seconds=rng.randrange(60, 86_340))
        maker = g.make_lab_report if i % 2 == 0 else g.make_exam_report
        reports.append(maker(rng, org, patient, when, with_pdf=with_pdf))
    return patients, reports


@pytest.fixture(scope="module")
def corpus() -> list[dict[str, Any]]:
    return _corpus(2024, 600, with_pdf=False)[1]


def _labs(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in reports if "labmaster" in r]


def _exams(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in reports if "exammaster" in r]


def _check_row(row: dict[str, str], fields: tuple[str, ...], optional: set[str], where: str) -> None:
    assert tuple(row) == fields, f"{where}: field names/order differ from seed 002"
    for name, value in row.items():
        assert isinstance(value, str), f"{where}.{name} is not a string"
        if name not in optional:
            assert value.strip(), f"{where}.{name} is required but empty"
        if name == "pdf" or not value:
            continue
        if name in NUMBERS:
            assert value.isdigit() and len(value) <= NUMBERS[name], f"{where}.{name}={value!r}"
        elif name in DTIMES:
            assert datetime.strptime(value, "%Y-%m-%d %H:%M:%S"), f"{where}.{name}={value!r}"
        elif name in DATES:
            assert len(value) == 10 and date.fromisoformat(value), f"{where}.{name}={value!r}"
        else:  # VARCHAR2 byte semantics (UTF-8), the stricter reading
            assert len(value.encode("utf-8")) <= SIZES.get(name, 128), f"{where}.{name} too long"


# --- institutions and patients ---------------------------------------------------------------


def test_demo_orgs_are_fixed_and_plausible() -> None:
    orgs = g.demo_orgs()
    assert orgs == g.demo_orgs()
    assert 6 <= len(orgs) <= 12
    assert len({o.code for o in orgs}) == len(orgs)
    weights = (3, 7, 9, 10, 5, 8, 4, 2)
    for org in orgs:
        assert re.fullmatch(r"\d{8}[\dX]", org.code), org.code
        check = 11 - sum(int(c) * w for c, w in zip(org.code[:8], weights, strict=True)) % 11
        assert org.code[8] == {10: "X", 11: "0"}.get(check, str(check)), f"GB 11714 check of {org.code}"
        assert re.fullmatch(r"65\d{4}", org.region_code)
        assert org.level in (1, 2, 3)
        assert org.grade in ("甲", "乙", "")
        assert org.grade == "" or org.level > 1
        assert org.name.endswith(("医院", "卫生服务中心"))
        assert org.user and org.password
    assert {o.level for o in orgs} == {1, 2, 3}
    assert 3 <= len({o.region_code for o in orgs}) <= 5


def test_patients_have_valid_distinct_ids() -> None:
    patients = g.make_patients(random.Random(5), 400)
    assert len(patients) == 400
    assert len({(p.id_type_code, p.id_no) for p in patients}) == 400
    kinds = Counter(p.id_type_code for p in patients)
    assert set(kinds) == {"01", "03"}
    assert 0 < kinds["03"] < 40
    for p in patients:
        assert (p.sex_code, p.sex_name) in (("1", "男性"), ("2", "女性"))
        assert p.birth_date < date(2023, 1, 1)
        assert p.name and len(p.name) <= 20
        if p.id_type_code == "01":
            assert idcard.problem(p.id_no) is None, p.id_no
            assert p.id_no[6:14] == f"{p.birth_date:%Y%m%d}"
            assert int(p.id_no[16]) % 2 == (1 if p.sex_code == "1" else 0)
        else:
            assert re.fullmatch(r"[EN]\d{8}", p.id_no)
    assert any("·" in p.name for p in patients), "expected Uyghur/Kazakh-style names"
    assert sum(len(p.name) <= 3 for p in patients) > 200, "expected mostly Han names"


def test_make_patients_zero_and_negative() -> None:
    assert g.make_patients(random.Random(1), 0) == []
    with pytest.raises(ValueError):
        g.make_patients(random.Random(1), -1)


# --- determinism -----------------------------------------------------------------------------


def test_same_seed_same_payloads_including_pdf() -> None:
    first = _corpus(77, 12, with_pdf=True)
    second = _corpus(77, 12, with_pdf=True)
    assert first == second
    other = _corpus(78, 12, with_pdf=True)
    assert other != first


def test_pdf_rendering_is_deterministic() -> None:
    report = _corpus(3, 1, with_pdf=False)[1][0]
    one = pdf.render_lab_pdf(report["labmaster"], report["lab_subitem"], org_name="演示医院")
    two = pdf.render_lab_pdf(report["labmaster"], report["lab_subitem"], org_name="演示医院")
    assert one == two


# --- lab payloads ----------------------------------------------------------------------------


def test_lab_payload_matches_seed_tables(corpus: list[dict[str, Any]]) -> None:
    labs = _labs(corpus)
    assert len(labs) == 300
    for n, report in enumerate(labs):
        assert set(report) == {"labmaster", "lab_subitem"}
        master, items = report["labmaster"], report["lab_subitem"]
        _check_row(master, LABMASTER, LABMASTER_OPTIONAL | {"pdf"}, f"labmaster#{n}")
        assert items
        serials = [item["serial_no"] for item in items]
        assert len(set(serials)) == len(serials)
        for i, item in enumerate(items):
            _check_row(item, LAB_SUBITEM, LAB_SUBITEM_OPTIONAL, f"lab_subitem#{n}[{i}]")
            for ref in ("org_code", "event_no", "report_form_no", "last_update_dtime"):
                assert item[ref] == master[ref]
            assert item["effective_dtime"] == master["authenticator_dtime"]


def test_lab_codes_come_from_dictionaries(corpus: list[dict[str, Any]]) -> None:
    dept = dictionaries.load("STD_DEPT")
    for report in _labs(corpus):
        m = report["labmaster"]
        assert m["participant_dept_std_code"] in dept
        assert m["performer_dept_std_code"] in dept
        assert dept[m["performer_dept_std_code"]] == m["performer_dept_std_name"]
        assert dept[m["participant_dept_std_code"]] == m["participant_dept_std_name"]
        assert m["event_type"] in ("1", "2")
        assert m["id_type_code"] in dictionaries.load("STD_ID_TYPE")
        assert dictionaries.load("STD_SEX")[m["sex_code"]] == m["sex_name"]
        assert m["order_priority"] in {"", *dictionaries.load("STD_PRIORITY")}
        if m["order_priority"]:
            assert m["order_priority_name"] == dictionaries.load("STD_PRIORITY")[m["order_priority"]]
        determiners = dictionaries.load("STD_SPECIMEN_DETERMINER")
        assert m["specimen_determiner_code"] in {"", *determiners}
        if m["specimen_determiner_code"]:
            assert m["specimen_determiner_name"] == determiners[m["specimen_determiner_code"]]
        assert m["data_status"] == "1"
        for item in report["lab_subitem"]:
            assert (item["result_type"], item["result_type_descr"]) in (("PQ", "数值型"), ("CD", "文本型"))
            interpret = dictionaries.load("STD_OBSERVATION_INTERPRET")
            assert interpret[item["result_interpre"]] == item["result_interpre_descr"]


def test_lab_times_are_ordered(corpus: list[dict[str, Any]]) -> None:
    for report in _labs(corpus):
        m = report["labmaster"]
        assert m["participant_dtime"] < m["performer_dtime"] < m["author_dtime"]
        assert m["author_dtime"] <= m["authenticator_dtime"] <= m["last_update_dtime"]
        assert m["retrieve_date"] == m["authenticator_dtime"][:10]


def test_lab_interpretation_agrees_with_limits(corpus: list[dict[str, Any]]) -> None:
    flags: Counter[str] = Counter()
    for report in _labs(corpus):
        for item in report["lab_subitem"]:
            flag = item["result_interpre"]
            flags[flag] += 1
            if item["result_type"] == "CD":
                assert flag in ("N", "WP", "P")
                continue
            value = float(item["result_value"])
            low, high = item["norm_lower_limit"], item["norm_upper_limit"]
            expected = "H" if high and value > float(high) else "L" if low and value < float(low) else "N"
            assert flag == expected, item
            assert low or high or item["norm_value_notes"]
    assert flags["N"] > 10 * (flags["H"] + flags["L"]) / 2, "results should be mostly normal"
    assert flags["H"] > 0 and flags["L"] > 0 and flags["P"] > 0


def test_lab_recognition_follows_catalog(corpus: list[dict[str, Any]]) -> None:
    catalog = _catalog()
    used: set[str] = set()
    titles: set[str] = set()
    for report in _labs(corpus):
        titles.add(report["labmaster"]["report_title"])
        for item in report["lab_subitem"]:
            in_catalog = catalog.get(item["class_code"], ("", ""))[0] == "lab"
            assert item["recognition"] == ("1" if in_catalog else "0"), item["class_code"]
            if in_catalog:
                used.add(item["class_code"])
    assert len(used) >= 30, "most lab catalog codes should appear"
    assert {"血常规", "肝功能", "肾功能", "血脂", "尿常规"} <= titles


# --- exam payloads ---------------------------------------------------------------------------


def test_exam_payload_matches_seed_tables(corpus: list[dict[str, Any]]) -> None:
    exams = _exams(corpus)
    assert len(exams) == 300
    for n, report in enumerate(exams):
        assert set(report) == {"exammaster", "exam_subitem"}
        master, items = report["exammaster"], report["exam_subitem"]
        _check_row(master, EXAMMASTER, EXAMMASTER_OPTIONAL | {"pdf"}, f"exammaster#{n}")
        assert items
        codes = [item["exam_item_code"] for item in items]
        assert len(set(codes)) == len(codes), "exam_item_code is part of the exam_subitem key"
        for i, item in enumerate(items):
            _check_row(item, EXAM_SUBITEM, set(), f"exam_subitem#{n}[{i}]")
            for ref in ("org_code", "event_no", "report_form_no"):
                assert item[ref] == master[ref]
            assert item["effective_dtime"] == master["authenticator_dtime"]


def test_exam_values(corpus: list[dict[str, Any]]) -> None:
    dept = dictionaries.load("STD_DEPT")
    modality = dictionaries.load("MODALITY")
    abnormal: Counter[str] = Counter()
    for report in _exams(corpus):
        m = report["exammaster"]
        assert m["class_code"] in modality and m["class_name"] == m["class_code"]
        assert (m["state"], m["checked_status"], m["data_status"]) == ("3", "1", "1")
        assert m["is_abnormal"] in ("0", "1")  # seed: 1 = 正常, 0 = 异常
        abnormal[m["is_abnormal"]] += 1
        for key in ("participant_dept_std_code", "performer_dept_std_code", "authenticator_dept_std_code"):
            assert m[key] in dept, (key, m[key])
        uid = m["study_instance_uid"]
        assert len(uid) <= 64 and re.fullmatch(r"(0|[1-9]\d*)(\.(0|[1-9]\d*))+", uid), uid
        assert m["pacs_url"] == f"https://pacs.example.invalid/viewer?study={uid}"
        assert m["participant_dtime"] < m["arrive_dtime"] < m["performer_dtime"] < m["author_dtime"]
        assert m["author_dtime"] <= m["authenticator_dtime"] <= m["last_update_dtime"]
        assert m["retrieve_date"] == m["authenticator_dtime"][:10]
        assert m["birth_date"] < m["retrieve_date"]
    assert abnormal["1"] > abnormal["0"] > 0


def test_exam_items_follow_catalog(corpus: list[dict[str, Any]]) -> None:
    catalog = _catalog()
    seen: Counter[str] = Counter()
    for report in _exams(corpus):
        for item in report["exam_subitem"]:
            kind, name = catalog.get(item["exam_item_code"], ("", ""))
            assert item["recognition"] == ("1" if kind == "exam" else "0")
            if kind == "exam":
                assert item["exam_item_name"] == name
            seen[item["recognition"]] += 1
    assert seen["1"] > seen["0"] > 0


def test_levels_limit_what_an_institution_offers(corpus: list[dict[str, Any]]) -> None:
    level = {o.code: o.level for o in g.demo_orgs()}
    for report in _exams(corpus):
        m = report["exammaster"]
        if level[m["org_code"]] == 1:
            assert m["class_code"] in ("DR", "US", "ECG")
            assert m["event_type"] == "1"
        if level[m["org_code"]] < 3:
            assert m["class_code"] != "MR"


def test_exams_suit_the_patients_age() -> None:
    rng = random.Random(17)
    children = [p for p in g.make_patients(rng, 300) if p.birth_date > date(2013, 1, 1)]
    assert children
    adult_only = {"心脏彩超", "颈部血管彩超", "颅脑CT平扫", "胸部CT平扫", "腰椎正侧位(DR)", "常规心电图"}
    for i in range(200):
        child = children[i % len(children)]
        exam = g.make_exam_report(rng, g.demo_orgs()[i % 8], child, datetime(2024, 5, 23, 10), with_pdf=False)
        assert exam["exammaster"]["report_title"] not in adult_only
        assert exam["exammaster"]["participant_dept_std_code"] not in ("A05.01", "A05.02", "A03.07")


def test_same_day_same_org_is_one_visit() -> None:
    rng = random.Random(9)
    org = g.demo_orgs()[0]
    patient = g.make_patients(rng, 1)[0]
    morning = datetime(2024, 5, 23, 9, 0)
    lab = g.make_lab_report(rng, org, patient, morning, with_pdf=False)["labmaster"]
    exam = g.make_exam_report(rng, org, patient, morning + timedelta(hours=3), with_pdf=False)["exammaster"]
    for key in ("patient_id", "event_no", "event_type", "participant_dept_code", "participant_id"):
        assert lab[key] == exam[key], key
    assert lab["report_form_no"] != exam["report_form_no"]
    other = g.make_lab_report(rng, g.demo_orgs()[1], patient, morning, with_pdf=False)["labmaster"]
    assert other["patient_id"] != lab["patient_id"]


# --- PDFs ------------------------------------------------------------------------------------


def test_pdfs_are_real_one_page_documents() -> None:
    _, reports = _corpus(11, 20, with_pdf=True)
    for report in reports:
        master = report.get("labmaster") or report["exammaster"]
        data = base64.b64decode(master["pdf"], validate=True)
        assert data.startswith(b"%PDF-")
        assert data.rstrip().endswith(b"%%EOF")
        assert len(re.findall(rb"/Type /Page\b(?!s)", data)) == 1
        assert b"STSong-Light" in data
        assert 1_000 < len(data) < 50_000


def test_with_pdf_false_leaves_pdf_empty() -> None:
    _, reports = _corpus(11, 4, with_pdf=False)
    assert all((r.get("labmaster") or r["exammaster"])["pdf"] == "" for r in reports)


def test_pdf_renders_without_org_name_and_with_sparse_rows() -> None:
    sparse = {"report_title": "血常规", "org_code": "456002186", "name": "阿依古丽·买买提"}
    assert pdf.render_lab_pdf(sparse, [{"class_local_name": "白细胞", "result_value": "5.1"}]).startswith(b"%PDF-")
    assert pdf.render_exam_pdf({"class_code": "CT", "image_descr": "所见" * 400}, []).startswith(b"%PDF-")


def test_pdf_is_fast() -> None:
    _, reports = _corpus(13, 40, with_pdf=False)
    pdf.render_lab_pdf(reports[0]["labmaster"], reports[0]["lab_subitem"])  # font registration
    start = time.perf_counter()
    for report in reports:
        if "labmaster" in report:
            pdf.render_lab_pdf(report["labmaster"], report["lab_subitem"])
        else:
            pdf.render_exam_pdf(report["exammaster"], report["exam_subitem"])
    per_pdf_ms = (time.perf_counter() - start) * 1000 / len(reports)
    assert per_pdf_ms < 40, f"{per_pdf_ms:.1f} ms per PDF (target < 15 ms)"


# --- daily counts ----------------------------------------------------------------------------


def test_daily_counts_sum_and_group(corpus: list[dict[str, Any]]) -> None:
    dept = dictionaries.load("STD_DEPT")
    noise = _corpus(99, 40, with_pdf=False)[1]  # same day, other report numbers: still counted
    later = [g.make_lab_report(random.Random(1), g.demo_orgs()[0], g.make_patients(random.Random(1), 1)[0],
                               datetime(2024, 5, 24, 10, 0), with_pdf=False)]
    reports = corpus + noise + later
    total = 0
    for org in g.demo_orgs():
        mine = [r for r in reports if (r.get("labmaster") or r["exammaster"])["org_code"] == org.code
                and (r.get("labmaster") or r["exammaster"])["authenticator_dtime"].startswith(DAY.isoformat())]
        rows = g.make_daily_counts(org, DAY, reports)["lab_exam_report"]
        assert [tuple(row) for row in rows] == [LAB_EXAM_REPORT] * len(rows)
        for i, row in enumerate(rows):
            _check_row(row, LAB_EXAM_REPORT, set(), f"lab_exam_report[{i}]")
            assert row["org_code"] == org.code and row["date_t"] == "2024-05-23"
            assert row["last_update_dtime"].startswith("2024-05-24 03:00:")
            assert dept[row["dept_std_code"]] == row["dept_std_name"]
        assert len({row["dept_code"] for row in rows}) == len(rows), "one row per ordering department"
        by_dept_lab = Counter(r["labmaster"]["participant_dept_code"] for r in mine if "labmaster" in r)
        by_dept_exam = Counter(r["exammaster"]["participant_dept_code"] for r in mine if "exammaster" in r)
        assert {row["dept_code"]: int(row["lab_num"]) for row in rows if row["lab_num"] != "0"} == +by_dept_lab
        assert {row["dept_code"]: int(row["exam_num"]) for row in rows if row["exam_num"] != "0"} == +by_dept_exam
        counted = sum(int(row["lab_num"]) + int(row["exam_num"]) for row in rows)
        assert counted == len(mine)
        total += counted
    assert total == len(corpus) + len(noise)


def test_daily_counts_empty_and_bad_input() -> None:
    org = g.demo_orgs()[0]
    assert g.make_daily_counts(org, DAY, []) == {"lab_exam_report": []}
    with pytest.raises(ValueError):
        g.make_daily_counts(org, DAY, [{"something": {}}])


# --- the platform's own validator accepts the payloads ---------------------------------------


def test_platform_validator_accepts_demo_payloads() -> None:
    validation = pytest.importorskip("huren.domain.validation")
    _, reports = _corpus(21, 60, with_pdf=True)
    for report in reports:
        kind = "lab" if "labmaster" in report else "exam"
        accepted, problems = validation.validate_report(kind, report, max_pdf_bytes=5_000_000)
        assert problems == [], problems[:3]
        assert accepted is not None and accepted.pdf is not None
    for org in g.demo_orgs():
        daily = g.make_daily_counts(org, DAY, reports)
        if daily["lab_exam_report"]:
            _rows, problems = validation.validate_daily(daily)
            assert problems == [], problems[:3]
