"""XC-E6 / XC-L9 (issue 10 §2.9): the abnormal-result queries filter. Each test holds normal and
abnormal results side by side, so it fails if the filter is dropped or widened (the earlier tests
held only abnormal results, or one normal item)."""

from __future__ import annotations

import copy
from typing import Any

from tests import samples
from tests.conftest import Api

WINDOW = {"id_type_code": "01", "id_no": samples.ID_NO, "start": "2024-01-01 00:00:00", "end": "2024-12-31 00:00:00"}


def _exam(form_no: str, is_abnormal: str) -> dict[str, Any]:
    p = samples.exam()
    p["exammaster"].update(report_form_no=form_no, is_abnormal=is_abnormal)
    for item in p["exam_subitem"]:
        item["report_form_no"] = form_no
    return p


def test_exam_abnormal_lists_only_reports_marked_abnormal(api_a: Api, api_b: Api) -> None:
    """Seed 002 exammaster.is_abnormal: 0 = 异常, 1 = 正常."""
    for form_no, flag in (("EX-ABN", "0"), ("EX-NORMAL", "1")):
        r = api_a.post("/api/v1/exam-reports", _exam(form_no, flag))
        assert r.status_code == 200, r.text
    assert api_b.post("/api/v1/query/exam-reports", WINDOW).json()["count"] == 2
    found = api_b.post("/api/v1/query/exam-abnormal", WINDOW).json()
    assert [x["exammaster"]["report_form_no"] for x in found["results"]] == ["EX-ABN"]


def test_lab_abnormal_lists_every_abnormal_interpretation_and_nothing_else(api_a: Api, api_b: Api) -> None:
    """STD_OBSERVATION_INTERPRET: H 高, L 低, P 阳性, WP 弱阳性 are abnormal; N 正常 is not."""
    p = samples.lab()
    template = p["lab_subitem"][0]
    p["lab_subitem"] = []
    for n, flag in enumerate(("N", "H", "L", "P", "WP", "N")):
        item = copy.deepcopy(template)
        item.update(serial_no=f"{1000 + n}", class_code=f"C{n}", class_name=f"项目{n}", result_interpre=flag)
        p["lab_subitem"].append(item)
    r = api_a.post("/api/v1/lab-reports", p)
    assert r.status_code == 200, r.text
    res = api_b.post("/api/v1/query/lab-abnormal", WINDOW).json()["results"]
    assert sorted((x["lab_subitem"]["serial_no"], x["lab_subitem"]["result_interpre"]) for x in res) == [
        ("1001", "H"), ("1002", "L"), ("1003", "P"), ("1004", "WP"),
    ]
