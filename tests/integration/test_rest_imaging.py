"""REST imaging (XC-E7 … XC-E11, BJ-1.1 commit, YB-4.3 film link, YB-4.5 deletions, YB-4.4.3.2):
keys issued by the viewing side, verified by the viewed side, expiring and revocable; on SQLite and
PostgreSQL, through the HTTP API."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

from huren.services.container import Container
from huren.services.imaging import Sender
from tests import samples
from tests.conftest import ORG_A, ORG_B, Api
from tests.integration.test_imaging_store import make

EXAM = samples.exam()["exammaster"]
STUDY = EXAM["study_instance_uid"]


def _held_exam(api_a: Api, container: Container, tmp: Path, n: int = 2) -> list[Path]:
    """Hospital A's exam report and its study: ``n`` instances pushed by A's front-end machine."""
    r = api_a.post("/api/v1/exam-reports", samples.exam())
    assert r.status_code == 200, r.text
    sender = Sender(ORG_A[0], "gateway:test", "gateway")
    paths = []
    for i in range(n):
        path, _ = make(tmp, study=STUDY, name="张三", accession=EXAM["pacs_id"], number=i + 1)
        container.imaging.store_instance(sender, path)
        paths.append(path)
    return paths


def _exam_ref() -> dict[str, str]:
    return {"org_code": EXAM["org_code"], "report_form_no": EXAM["report_form_no"]}


def test_viewer_key_issued_by_the_viewer_verified_by_the_viewed_side(api_a: Api, api_b: Api, container: Container, tmp_path: Path) -> None:
    _held_exam(api_a, container, tmp_path)
    got = api_b.post("/api/v1/imaging/viewer-key", _exam_ref())
    assert got.status_code == 200, got.text
    key = got.json()["viewerKey"]
    assert len(key) == 22 and got.json()["study_instance_uid"] == STUDY
    assert got.json()["viewer_url"].endswith(f"/ui/imaging/{STUDY}")  # the platform's viewer page

    ok = api_a.post("/api/v1/imaging/viewer-key/verify", {"viewerKey": key}).json()
    assert ok["valid"] is True and ok["viewer_org_code"] == ORG_B[0] and ok["study_instance_uid"] == STUDY, ok
    assert ok["exam"]["report_form_no"] == EXAM["report_form_no"]

    # B is not the viewed side: to B a key to A's study is as unknown
    other = api_b.post("/api/v1/imaging/viewer-key/verify", {"viewerKey": key}).json()
    assert other["valid"] is False and other["study_instance_uid"] is None, other

    # a download key is not a viewer key
    dl = api_b.post("/api/v1/imaging/download-address", _exam_ref()).json()["downloadKey"]
    wrong = api_a.post("/api/v1/imaging/viewer-key/verify", {"viewerKey": dl}).json()
    assert wrong["valid"] is False and wrong["reason"], wrong

    assert api_b.post("/api/v1/imaging/keys/revoke", {"key": key}).status_code == 200
    gone = api_a.post("/api/v1/imaging/viewer-key/verify", {"viewerKey": key}).json()
    assert gone["valid"] is False and "撤销" in gone["reason"], gone

    unknown = api_a.post("/api/v1/imaging/viewer-key/verify", {"viewerKey": "A" * 22}).json()
    assert unknown["valid"] is False and unknown["reason"]

    listed = api_a.get(f"/api/v1/imaging/studies/{STUDY}/keys").json()
    assert listed["count"] >= 2 and all("key" not in k for k in listed["keys"]), listed


def test_download_address_uids_and_wado_with_the_key(api_a: Api, api_b: Api, container: Container, tmp_path: Path) -> None:
    paths = _held_exam(api_a, container, tmp_path)
    addr = api_b.post("/api/v1/imaging/download-address", _exam_ref()).json()
    assert addr["wado_uri_url"].endswith("/wado") and addr["uid_query_url"].endswith("/api/v1/imaging/uids"), addr
    key = addr["downloadKey"]
    assert api_a.post("/api/v1/imaging/download-key/verify", {"downloadKey": key}).json()["valid"] is True

    tree = api_b.client.get("/api/v1/imaging/uids", params={"downloadKey": key})
    assert tree.status_code == 200, tree.text
    body = tree.json()
    assert body["study_instance_uid"] == STUDY and len(body["series"]) == 2
    sent = {hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}
    got = set()
    for s in body["series"]:
        for sop in s["sop_instance_uids"]:
            r = api_b.client.get("/wado", params={
                "requestType": "WADO", "studyUID": STUDY, "seriesUID": s["series_instance_uid"], "objectUID": sop,
                "contentType": "application/dicom", "key": key,
            })
            assert r.status_code == 200, r.text
            got.add(hashlib.sha256(r.content).hexdigest())
    assert got == sent  # byte-exact

    assert api_b.client.get("/api/v1/imaging/uids", params={"downloadKey": "B" * 22}).status_code == 401


def test_expired_key_is_refused(api_a: Api, api_b: Api, container: Container, tmp_path: Path) -> None:
    _held_exam(api_a, container, tmp_path, n=1)
    key = api_b.post("/api/v1/imaging/download-address", _exam_ref()).json()["downloadKey"]
    clock = container.clock
    real = clock.now
    later = real() + timedelta(seconds=container.settings.download_key_ttl_seconds + 5)
    container.imaging._clock.now = lambda: later  # type: ignore[method-assign]
    try:
        r = api_b.client.get("/api/v1/imaging/uids", params={"downloadKey": key})
        assert r.status_code == 410, r.text
        check = api_a.post("/api/v1/imaging/download-key/verify", {"downloadKey": key}).json()
        assert check["valid"] is False and "过期" in check["reason"]
    finally:
        container.imaging._clock.now = real  # type: ignore[method-assign]


def test_gateway_commit_with_sha256(api_a: Api, api_b: Api, container: Container, tmp_path: Path) -> None:
    paths = _held_exam(api_a, container, tmp_path)
    uids = api_a.get(f"/api/v1/imaging/studies/{STUDY}/keys")  # the study is A's
    assert uids.status_code == 200
    from pydicom import dcmread

    listed = [{"SOPInstanceUID": dcmread(p).SOPInstanceUID, "sha256": hashlib.sha256(p.read_bytes()).hexdigest()} for p in paths]
    bad = [listed[0], {"SOPInstanceUID": listed[1]["SOPInstanceUID"], "sha256": "0" * 64}, {"SOPInstanceUID": "1.2.3.4.5"}]
    r = api_a.post(f"/api/v1/imaging/studies/{STUDY}/commit", {"instances": bad})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["state"] == "receiving"
    assert {f["SOPInstanceUID"]: f["reason"] for f in got["failed"]} == {listed[1]["SOPInstanceUID"]: "sha256", "1.2.3.4.5": "missing"}

    r = api_a.post(f"/api/v1/imaging/studies/{STUDY}/commit", {"instances": listed})
    assert r.json()["state"] == "complete" and sorted(r.json()["committed"]) == sorted(i["SOPInstanceUID"] for i in listed)

    # another institution cannot commit A's study (to B it holds none of them); a bad UID is named
    other = api_b.post(f"/api/v1/imaging/studies/{STUDY}/commit", {"instances": listed}).json()
    assert other["committed"] == [] and {f["reason"] for f in other["failed"]} == {"missing"}, other
    r = api_a.post(f"/api/v1/imaging/studies/{STUDY}/commit", {"instances": [{"SOPInstanceUID": "1.2.x"}]})
    assert r.status_code == 422 and r.json()["problems"][0]["rule"] == "uid", r.text
    r = api_a.post("/api/v1/imaging/studies/not-a-uid/commit", {"instances": listed})
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "study_uid", r.text


def test_film_url_for_own_study_and_deletion_hides_it(api_a: Api, api_b: Api, container: Container, tmp_path: Path) -> None:
    _held_exam(api_a, container, tmp_path)
    body = {"accessNumber": EXAM["pacs_id"], "modality": "CT", "hospitalId": ORG_A[0]}
    r = api_a.post("/api/v1/imaging/film-url", body)
    assert r.status_code == 200, r.text
    assert r.json()["url"].endswith(r.json()["key"]) and "/film/" in r.json()["url"]
    # only the study's own hospital prints its film link
    assert api_b.post("/api/v1/imaging/film-url", body | {"hospitalId": ORG_A[0]}).status_code == 403
    assert api_a.post("/api/v1/imaging/film-url", body | {"accessNumber": "NOPE"}).status_code == 404

    # B's doctor is told A has images for the patient (YB-4.4.3.2)
    exams = api_b.post("/api/v1/imaging/patient-exams", {"id_type_code": "01", "id_no": EXAM["id_no"]}).json()
    assert exams["count"] == 1 and exams["exams"][0]["study_instance_uid"] == STUDY, exams

    notice = {"patientName": "张三", "accessionNo": EXAM["pacs_id"], "hospitalId": ORG_A[0], "operateDoctorName": "李医生",
              "operateDateTime": "2024-05-12T10:00:00"}
    assert api_b.post("/api/v1/imaging/deletions", notice).status_code == 403
    r = api_a.post("/api/v1/imaging/deletions", notice)
    assert r.status_code == 200 and r.json()["hidden"] == 2, r.text
    assert api_b.post("/api/v1/imaging/viewer-key", _exam_ref()).status_code == 404
    gone = api_b.post("/api/v1/imaging/patient-exams", {"id_type_code": "01", "id_no": EXAM["id_no"]}).json()
    assert gone["count"] == 0, gone


def test_bad_bodies_name_the_field(api_a: Api) -> None:
    r = api_a.post("/api/v1/imaging/viewer-key", {})
    assert r.status_code == 422 and "study_instance_uid" in r.json()["problems"][0]["message"], r.text
    r = api_a.post("/api/v1/imaging/viewer-key", {"study_instance_uid": "1.2.abc"})
    assert r.status_code == 422 and r.json()["problems"][0]["rule"] == "uid", r.text
    r = api_a.post("/api/v1/imaging/viewer-key", {"study_instance_uid": "1.2.3.4"})
    assert r.status_code == 404, r.text
    r = api_a.post("/api/v1/imaging/patient-exams", {"id_no": "123"})
    assert r.status_code in (400, 422) and r.json()["problems"][0]["field"] == "id_no", r.text
    r = api_a.client.post("/api/v1/imaging/viewer-key", json={"study_instance_uid": "1.2.3"})
    assert r.status_code == 401
