"""REST report registry on SQLite and PostgreSQL: register, resubmit, void, PDFs, bad input."""

from __future__ import annotations

import base64

from fastapi.testclient import TestClient

from huren.crypto.opaque import REF_LEN
from huren.services.container import Container
from tests import samples
from tests.conftest import ORG_A, Api


def _rejected(api: Api) -> list[dict]:
    r = api.get("/api/v1/quality/rejected")
    assert r.status_code == 200, r.text
    return r.json()["rejected"]


def later(payload: dict, kind: str = "lab", stamp: str = "2024-03-12 08:00:00") -> dict:
    """The payload as the hospital would resend a change: a newer last_update_dtime."""
    payload[f"{kind}master"]["last_update_dtime"] = stamp
    for item in payload[f"{kind}_subitem"]:
        item["last_update_dtime"] = stamp
    return payload


def _problem(resp, field: str, rule: str) -> dict:
    body = resp.json()
    assert {"code", "message", "problems"} <= set(body) <= {"code", "message", "problems", "rejected_id"}, body
    if "rejected_id" in body:  # a kept submission is named by a field and in the message
        rid = body["rejected_id"]
        assert isinstance(rid, str) and len(rid) == REF_LEN and f"#{rid}" in body["message"], body  # a ref, not a number
    hits = [p for p in body["problems"] if p["field"] == field and p["rule"] == rule]
    assert hits, body
    assert hits[0]["message"], hits
    return hits[0]


def test_register_lab_and_read_back(api_a: Api, api_b: Api) -> None:
    r = api_a.post("/api/v1/lab-reports", samples.lab())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["code"] == "ok" and body["version"] == 1 and body["created"] is True
    rid = body["report_id"]

    # another institution's doctor can read it (sharing), and its PDF
    got = api_b.get(f"/api/v1/lab-reports/{rid}")
    assert got.status_code == 200
    report = got.json()["report"]
    assert report["labmaster"]["report_form_no"] == "14437173"
    assert report["labmaster"]["authenticator_dtime"] == "2024-03-11 09:28:59"
    assert report["labmaster"]["retrieve_date"] == "2024-03-11"
    assert [i["serial_no"] for i in report["lab_subitem"]] == ["46530131", "46530132"]
    assert report["org_name"] == ORG_A[1]
    pdf = api_b.get(f"/api/v1/lab-reports/{rid}/pdf")
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content == samples.PDF_BYTES


def test_resubmit_replaces_items_and_keeps_history(api_a: Api) -> None:
    first = api_a.post("/api/v1/lab-reports", samples.lab()).json()
    payload = later(samples.lab())
    payload["lab_subitem"] = payload["lab_subitem"][1:]  # drop one item
    payload["lab_subitem"][0]["result_value"] = "47.0"
    second = api_a.post("/api/v1/lab-reports", payload)
    assert second.status_code == 200, second.text
    assert second.json()["report_id"] == first["report_id"]
    assert second.json()["version"] == 2 and second.json()["created"] is False

    rid = first["report_id"]
    items = api_a.get(f"/api/v1/lab-reports/{rid}").json()["report"]["lab_subitem"]
    assert [(i["serial_no"], i["result_value"]) for i in items] == [("46530131", "47.0")]
    hist = api_a.get(f"/api/v1/lab-reports/{rid}/history").json()["versions"]
    assert [h["version"] for h in hist] == [1]
    assert len(hist[0]["snapshot"]["items"]) == 2


def test_void_keeps_row_and_hides_from_queries(api_a: Api, api_b: Api, container: Container) -> None:
    rid = api_a.post("/api/v1/lab-reports", samples.lab()).json()["report_id"]
    m = samples.lab()["labmaster"]
    filt = {k: m[k] for k in ("org_code", "report_form_no", "patient_id", "event_type", "event_no", "id_no")}
    filt["id_type"] = "01"
    q = {"id_type_code": "01", "id_no": samples.ID_NO, "start": "2024-01-01 00:00:00", "end": "2024-12-31 00:00:00"}
    assert api_b.post("/api/v1/query/lab-reports", q).json()["count"] == 1

    # another institution may not void it: 403, and the attempt is kept for that institution
    r = api_b.post("/api/v1/lab-reports/void", filt)
    assert r.status_code == 403
    _problem(r, "filter.org_code", "ownership")
    assert any(x["kind"] == "void_lab" for x in _rejected(api_b))

    r = api_a.post("/api/v1/lab-reports/void", filt)
    assert r.status_code == 200, r.text
    assert r.json()["report_id"] == rid
    report = api_a.get(f"/api/v1/lab-reports/{rid}").json()["report"]
    assert report["voided"] is True and report["voided_at"]
    assert api_b.post("/api/v1/query/lab-reports", q).json()["count"] == 0

    # resubmitting the same key with a newer last_update_dtime registers it again (void, then
    # resubmit — seed §1.2.2.2); the voided version itself may not come back (tests/integration/test_versions.py)
    again = api_a.post("/api/v1/lab-reports", later(samples.lab())).json()
    assert again["report_id"] == rid and again["version"] == 2
    assert api_b.post("/api/v1/query/lab-reports", q).json()["count"] == 1


def test_void_unknown_report_is_404_and_kept(api_a: Api) -> None:
    filt = {"org_code": ORG_A[0], "report_form_no": "nope", "patient_id": "1", "event_type": "1", "event_no": "1",
            "id_no": samples.ID_NO, "id_type": "01"}
    r = api_a.post("/api/v1/exam-reports/void", filt)
    assert r.status_code == 404
    assert _rejected(api_a)[0]["kind"] == "void_exam"


def test_cross_institution_write_refused_and_kept(api_b: Api) -> None:
    r = api_b.post("/api/v1/lab-reports", samples.lab())  # org_code is ORG_A's
    assert r.status_code == 403
    _problem(r, "labmaster.org_code", "ownership")
    kept = _rejected(api_b)
    assert kept and kept[0]["kind"] == "lab" and kept[0]["report_key"].startswith("lab:457759922|14437173")


def test_register_exam_and_abnormal(api_a: Api, api_b: Api) -> None:
    r = api_a.post("/api/v1/exam-reports", samples.exam())
    assert r.status_code == 200, r.text
    rid = r.json()["report_id"]
    exam = api_b.get(f"/api/v1/exam-reports/{rid}").json()["report"]
    assert exam["exammaster"]["patient_condition_desc"] == "无"  # the sample's *_descr spelling accepted
    assert exam["exammaster"]["id_type_code"] == "01"  # the sample's Id_Type_Code spelling accepted
    assert exam["exam_subitem"][0]["exam_item_code"] == "115"
    pdf = api_b.get(f"/api/v1/exam-reports/{rid}/pdf")
    assert pdf.status_code == 200 and pdf.content == samples.PDF_BYTES
    q = {"id_type_code": "01", "id_no": samples.ID_NO, "start": "2024-01-01 00:00:00", "end": "2024-12-31 00:00:00"}
    ab = api_b.post("/api/v1/query/exam-abnormal", q).json()
    assert ab["count"] == 1  # is_abnormal="0" means 异常 in seed 002
    assert api_b.post("/api/v1/query/exam-reports", q).json()["count"] == 1


def test_lab_abnormal_lists_only_flagged_items(api_a: Api, api_b: Api) -> None:
    payload = samples.lab()
    payload["lab_subitem"][1]["result_interpre"] = "H"
    payload["lab_subitem"][1]["result_value"] = "60.1"
    assert api_a.post("/api/v1/lab-reports", payload).status_code == 200
    q = {"id_type_code": "01", "id_no": samples.ID_NO, "start": "2024-01-01 00:00:00", "end": "2024-12-31 00:00:00"}
    res = api_b.post("/api/v1/query/lab-abnormal", q).json()["results"]
    assert [(x["lab_subitem"]["serial_no"], x["lab_subitem"]["result_interpre"]) for x in res] == [("46530131", "H")]


def test_missing_required_field(api_a: Api) -> None:
    p = samples.lab()
    del p["labmaster"]["report_title"]
    p["lab_subitem"][0]["result_value"] = ""
    r = api_a.post("/api/v1/lab-reports", p)
    assert r.status_code == 422
    _problem(r, "labmaster.report_title", "required")
    _problem(r, "lab_subitem[0].result_value", "required")  # every problem at once
    kept = _rejected(api_a)
    assert len(kept) == 1 and {x["field"] for x in kept[0]["problems"]} >= {"labmaster.report_title"}
    assert "#" in r.json()["message"]


def test_unknown_dictionary_code(api_a: Api) -> None:
    p = samples.lab()
    p["labmaster"]["sex_code"] = "7"
    p["lab_subitem"][0]["result_interpre"] = "X"
    r = api_a.post("/api/v1/lab-reports", p)
    assert r.status_code == 422
    assert "STD_SEX" in _problem(r, "labmaster.sex_code", "dictionary")["message"]
    _problem(r, "lab_subitem[0].result_interpre", "dictionary")
    assert _rejected(api_a)


def test_bad_id_checksum(api_a: Api) -> None:
    p = samples.lab()
    good = p["labmaster"]["id_no"]
    p["labmaster"]["id_no"] = good[:17] + ("0" if good[17] != "0" else "1")
    r = api_a.post("/api/v1/lab-reports", p)
    assert r.status_code == 422
    assert "校验位" in _problem(r, "labmaster.id_no", "id_checksum")["message"]
    kept = _rejected(api_a)
    assert kept[0]["problems"][0]["field"] == "labmaster.id_no" and kept[0]["fixed"] is False
    # a passport number (id_type 03) is not checked against GB 11643
    p["labmaster"]["id_type_code"] = "03"
    assert api_a.post("/api/v1/lab-reports", p).status_code == 200


def test_malformed_json_is_kept(api_a: Api) -> None:
    raw = b'{"labmaster": {"org_code": "457759922",'
    r = api_a.post("/api/v1/lab-reports", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    _problem(r, "body", "json")
    kept = _rejected(api_a)
    assert kept[0]["payload_size"] == len(raw)
    back = api_a.get(f"/api/v1/quality/rejected/{kept[0]['id']}/payload")
    assert back.content == raw


def test_non_pdf_and_oversized_pdf(api_a: Api, container: Container) -> None:
    p = samples.lab()
    p["labmaster"]["pdf"] = base64.b64encode(b"GIF89a not a pdf").decode()
    r = api_a.post("/api/v1/lab-reports", p)
    assert r.status_code == 422
    _problem(r, "labmaster.pdf", "pdf_format")

    p["labmaster"]["pdf"] = "%%%not base64%%%"
    _problem(api_a.post("/api/v1/lab-reports", p), "labmaster.pdf", "base64")

    big = samples.PDF_BYTES + b"0" * (container.settings.max_pdf_bytes + 1)
    p["labmaster"]["pdf"] = base64.b64encode(big).decode()
    _problem(api_a.post("/api/v1/lab-reports", p), "labmaster.pdf", "pdf_size")
    assert len(_rejected(api_a)) == 3

    # the PDF uploaded on its own is checked the same way
    del p["labmaster"]["pdf"]
    rid = api_a.post("/api/v1/lab-reports", p).json()["report_id"]
    assert api_a.get(f"/api/v1/lab-reports/{rid}/pdf").status_code == 404
    bad = api_a.put(f"/api/v1/lab-reports/{rid}/pdf", content=b"<html>", headers={"Content-Type": "application/pdf"})
    assert bad.status_code == 422
    _problem(bad, "pdf", "pdf_format")
    ok = api_a.put(f"/api/v1/lab-reports/{rid}/pdf", content=samples.PDF_BYTES, headers={"Content-Type": "application/pdf"})
    assert ok.status_code == 200, ok.text
    assert api_a.get(f"/api/v1/lab-reports/{rid}/pdf").content == samples.PDF_BYTES


def test_pdf_upload_to_another_institutions_report_refused(api_a: Api, api_b: Api) -> None:
    rid = api_a.post("/api/v1/exam-reports", samples.exam()).json()["report_id"]
    r = api_b.put(f"/api/v1/exam-reports/{rid}/pdf", content=samples.PDF_BYTES)
    assert r.status_code == 403


def test_wrong_date_format(api_a: Api) -> None:
    p = samples.exam()
    p["exammaster"]["authenticator_dtime"] = "2024/05/11 08:58:48"
    p["exammaster"]["birth_date"] = "19670201"
    r = api_a.post("/api/v1/exam-reports", p)
    assert r.status_code == 422
    _problem(r, "exammaster.authenticator_dtime", "datetime_format")
    _problem(r, "exammaster.birth_date", "date_format")
    assert _rejected(api_a)[0]["kind"] == "exam"


def test_item_must_match_master_and_be_unique(api_a: Api) -> None:
    p = samples.lab()
    p["lab_subitem"][0]["report_form_no"] = "other"
    p["lab_subitem"][1]["serial_no"] = p["lab_subitem"][0]["serial_no"]
    r = api_a.post("/api/v1/lab-reports", p)
    _problem(r, "lab_subitem[0].report_form_no", "consistency")
    _problem(r, "lab_subitem[1].serial_no", "duplicate")


def test_fixed_rejection_is_marked(api_a: Api) -> None:
    p = samples.lab()
    p["labmaster"]["sex_code"] = "7"
    api_a.post("/api/v1/lab-reports", p)
    assert _rejected(api_a)[0]["fixed"] is False
    assert api_a.post("/api/v1/lab-reports", samples.lab()).status_code == 200
    assert _rejected(api_a)[0]["fixed"] is True


def test_batch_register(api_a: Api) -> None:
    good = samples.lab()
    other = samples.lab()
    other["labmaster"]["report_form_no"] = other["labmaster"]["report_form_no"] + "9"
    for item in other["lab_subitem"]:
        item["report_form_no"] = other["labmaster"]["report_form_no"]
    bad = samples.lab()
    bad["labmaster"]["name"] = ""
    r = api_a.post("/api/v1/lab-reports/batch", {"reports": [good, bad, other]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["accepted"], body["rejected"]) == (2, 1)
    assert body["results"][1]["problems"][0]["field"] == "labmaster.name"
    assert body["results"][1]["rejected_id"]


def test_body_too_large(client: TestClient, api_a: Api, container: Container) -> None:
    container.settings.max_request_bytes = 1000
    r = api_a.post("/api/v1/lab-reports", samples.lab())
    assert r.status_code == 413
    assert r.json()["code"] == "too_large"


def test_lowercase_x_is_stored_upper_case(api_a: Api, api_b: Api) -> None:
    from datetime import date

    from huren.domain import idcard

    # find a valid number ending in X, submit it with a lower-case x, find it with either case
    n = next(idcard.make("650102", date(1980, 1, 1), s) for s in range(1000) if idcard.make("650102", date(1980, 1, 1), s).endswith("X"))
    p = samples.lab()
    p["labmaster"]["id_no"] = n.lower()
    assert api_a.post("/api/v1/lab-reports", p).status_code == 200
    for asked in (n, n.lower()):
        q = {"id_type_code": "01", "id_no": asked, "start": "2024-01-01 00:00:00", "end": "2024-12-31 00:00:00"}
        assert api_b.post("/api/v1/query/lab-reports", q).json()["count"] == 1
