"""Which version of a report wins (issue 10 §1.2; huren.domain.versions), over REST and SOAP, on
SQLite and PostgreSQL: an older resubmission is refused with 409 / ``error:`` and kept naming both
times; the same time and content is an idempotent ok; the same time with other content is a
conflict; a void is a version too; a batch answers per report."""

from __future__ import annotations

import base64
import os
from typing import Any

import pytest
from fastapi.testclient import TestClient
from lxml import etree

from huren.crypto import b64, keyfiles, sm2, sm4
from huren.crypto.opaque import REF_LEN
from huren.domain.versions import verdict
from huren.services.container import Container
from huren.store import reports
from tests import samples
from tests.conftest import ORG_A, Api

T0 = "2024-03-11 09:29:00"  # the seed sample's last_update_dtime
T1 = "2024-03-12 08:00:00"
T2 = "2024-03-13 08:00:00"
LAB_KEY = ("457759922", "14437173", "1878", 1, "1878")


def stamped(kind: str, stamp: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    p = payload or (samples.lab() if kind == "lab" else samples.exam())
    p[f"{kind}master"]["last_update_dtime"] = stamp
    for item in p[f"{kind}_subitem"]:
        item["last_update_dtime"] = stamp
    return p


def changed(kind: str, stamp: str, value: str) -> dict[str, Any]:
    p = stamped(kind, stamp)
    if kind == "lab":
        p["lab_subitem"][0]["result_value"] = value
    else:
        p["exammaster"]["image_descr"] = value
    return p


def rejected(api: Api) -> list[dict[str, Any]]:
    r = api.get("/api/v1/quality/rejected")
    assert r.status_code == 200, r.text
    return list(r.json()["rejected"])


def the_problem(resp: Any, rule: str) -> dict[str, Any]:
    body = resp.json()
    assert body["code"] == "conflict" and isinstance(body["rejected_id"], str) and len(body["rejected_id"]) == REF_LEN, body
    [p] = body["problems"]
    assert p["rule"] == rule and p["field"].endswith("master.last_update_dtime"), p
    return dict(p)


# -- the rule itself ------------------------------------------------------------------------------
def test_verdict_table() -> None:
    from datetime import datetime

    a, b = datetime(2024, 1, 1, 8), datetime(2024, 1, 1, 9)
    assert verdict(b, a, stored_voided=False, same_content=False) == "replace"
    assert verdict(b, a, stored_voided=True, same_content=False) == "replace"
    assert verdict(a, b, stored_voided=False, same_content=True) == "stale"
    assert verdict(a, a, stored_voided=False, same_content=True) == "same"
    assert verdict(a, a, stored_voided=False, same_content=False) == "conflict"
    assert verdict(a, a, stored_voided=True, same_content=True) == "stale"


# -- REST -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["lab", "exam"])
def test_older_resubmission_is_refused_and_kept(api_a: Api, kind: str) -> None:
    first = api_a.post(f"/api/v1/{kind}-reports", stamped(kind, T0))
    assert first.status_code == 200, first.text
    rid = first.json()["report_id"]
    newer = api_a.post(f"/api/v1/{kind}-reports", changed(kind, T1, "47.0"))
    assert newer.status_code == 200 and newer.json()["version"] == 2, newer.text

    stale = api_a.post(f"/api/v1/{kind}-reports", stamped(kind, T0))  # the old version, replayed
    assert stale.status_code == 409, stale.text
    p = the_problem(stale, "stale_version")
    assert T0 in p["message"] and T1 in p["message"]
    assert f"#{stale.json()['rejected_id']}" in stale.json()["message"]

    # nothing was undone: the newer value stands, no history row was written for the stale one
    report = api_a.get(f"/api/v1/{kind}-reports/{rid}").json()["report"]
    if kind == "lab":
        assert "47.0" in [i["result_value"] for i in report["lab_subitem"]]
    else:
        assert report["exammaster"]["image_descr"] == "47.0"
    assert report[f"{kind}master"]["last_update_dtime"] == T1
    assert [h["version"] for h in api_a.get(f"/api/v1/{kind}-reports/{rid}/history").json()["versions"]] == [1]

    # kept as a rejected submission of that report naming both times, not fixed by itself
    [kept] = rejected(api_a)
    assert kept["id"] == stale.json()["rejected_id"] and kept["kind"] == kind and kept["fixed"] is False
    assert kept["report_key"].startswith(f"{kind}:457759922|")
    assert T0 in kept["problems"][0]["message"] and T1 in kept["problems"][0]["message"]


def test_same_time_same_content_is_an_idempotent_ok(api_a: Api, container: Container) -> None:
    first = api_a.post("/api/v1/lab-reports", samples.lab()).json()
    again = api_a.post("/api/v1/lab-reports", samples.lab())
    assert again.status_code == 200, again.text
    body = again.json()
    assert (body["report_id"], body["version"], body["created"], body["unchanged"]) == (first["report_id"], 1, False, True)
    # the same without its PDF (kept) is the same too
    no_pdf = samples.lab()
    del no_pdf["labmaster"]["pdf"]
    assert api_a.post("/api/v1/lab-reports", no_pdf).json()["unchanged"] is True
    assert api_a.get(f"/api/v1/lab-reports/{first['report_id']}/history").json()["versions"] == []
    assert rejected(api_a) == []
    with container.db.read() as conn:
        row = reports.find_by_key(conn, "lab", LAB_KEY)
    assert row is not None and row["version"] == 1


def test_same_time_other_content_is_a_conflict(api_a: Api) -> None:
    rid = api_a.post("/api/v1/lab-reports", samples.lab()).json()["report_id"]
    r = api_a.post("/api/v1/lab-reports", changed("lab", T0, "99.9"))
    assert r.status_code == 409, r.text
    assert T0 in the_problem(r, "version_conflict")["message"]
    items = api_a.get(f"/api/v1/lab-reports/{rid}").json()["report"]["lab_subitem"]
    assert "99.9" not in [i["result_value"] for i in items]
    # another PDF under the same time is other content as well
    other_pdf = samples.lab()
    other_pdf["labmaster"]["pdf"] = base64.b64encode(samples.PDF_BYTES.replace(b"595 842", b"842 595")).decode()
    assert api_a.post("/api/v1/lab-reports", other_pdf).status_code == 409


def test_a_void_is_a_version_too(api_a: Api) -> None:
    rid = api_a.post("/api/v1/lab-reports", samples.lab()).json()["report_id"]
    m = samples.lab()["labmaster"]
    filt = {k: m[k] for k in ("org_code", "report_form_no", "patient_id", "event_type", "event_no", "id_no")} | {"id_type": "01"}
    assert api_a.post("/api/v1/lab-reports/void", filt).status_code == 200

    for stamp in (T0, "2024-03-10 00:00:00"):  # the voided version, or an older one, may not come back
        r = api_a.post("/api/v1/lab-reports", stamped("lab", stamp))
        assert r.status_code == 409, r.text
        p = the_problem(r, "stale_version")
        assert T0 in p["message"]
    assert "作废" in rejected(api_a)[1]["problems"][0]["message"]
    assert api_a.get(f"/api/v1/lab-reports/{rid}").json()["report"]["voided"] is True

    again = api_a.post("/api/v1/lab-reports", stamped("lab", T1))
    assert again.status_code == 200 and again.json()["version"] == 2, again.text
    assert api_a.get(f"/api/v1/lab-reports/{rid}").json()["report"]["voided"] is False


def test_batch_answers_per_report(api_a: Api) -> None:
    assert api_a.post("/api/v1/lab-reports", stamped("lab", T1)).status_code == 200
    other = stamped("lab", T0)
    other["labmaster"]["report_form_no"] = "99999999"
    for item in other["lab_subitem"]:
        item["report_form_no"] = "99999999"
    batch = [
        stamped("lab", T0),  # older than the stored T1: refused
        stamped("lab", T1),  # as stored: unchanged
        other,  # a new key
        changed("lab", T2, "50.5"),  # newer: replaces
        stamped("lab", T1),  # now older than the T2 just registered in this batch: refused
    ]
    r = api_a.post("/api/v1/lab-reports/batch", {"reports": batch})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [x["code"] for x in body["results"]] == ["conflict", "ok", "ok", "ok", "conflict"]
    assert (body["accepted"], body["rejected"]) == (3, 2)
    assert body["results"][1]["unchanged"] is True and body["results"][2]["created"] is True
    assert body["results"][3]["version"] == 2
    for i, later in ((0, T1), (4, T2)):
        res = body["results"][i]
        assert isinstance(res["rejected_id"], str) and len(res["rejected_id"]) == REF_LEN
        assert res["problems"][0]["rule"] == "stale_version" and later in res["problems"][0]["message"]
    rid = body["results"][3]["report_id"]
    assert "50.5" in [i["result_value"] for i in api_a.get(f"/api/v1/lab-reports/{rid}").json()["report"]["lab_subitem"]]


# -- SOAP: the same service, a replayed envelope ----------------------------------------------------
CREDENTIAL = """<root> <org code="{code}">{name}</org> <visitor type="0" code="{user}" key="{password}"> </visitor> </root>"""
NS = "http://tempuri.org/"


@pytest.fixture
def platform(container: Container) -> sm2.Sm2Key:
    return keyfiles.init_platform_key(container.settings.key_dir)


def envelope(platform: sm2.Sm2Key, data: str, org: tuple[str, ...] = ORG_A) -> bytes:
    key = os.urandom(16)
    cred = CREDENTIAL.format(code=org[0], name=org[1], user=org[4], password=org[5])
    params = {
        "strReportInfo": b64.b64e(sm4.sm4_encrypt(key, data.encode())),
        "strCredential": b64.b64e(sm4.sm4_encrypt(key, cred.encode())),
        "strKey": b64.b64e(sm2.sm2_encrypt(platform.public, key)),
    }
    inner = "".join(f"<{k}>{v}</{k}>" for k, v in params.items())
    return (
        '<?xml version="1.0" encoding="utf-8"?><env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope">'
        f'<env:Body><t:ArchiveAutoReport xmlns:t="{NS}">{inner}</t:ArchiveAutoReport></env:Body></env:Envelope>'
    ).encode()


def post(client: TestClient, body: bytes) -> str:
    r = client.post("/Myhealth", content=body, headers={"Content-Type": "application/soap+xml; charset=utf-8"})
    assert r.status_code == 200, r.text
    el = etree.fromstring(r.content).find(f".//{{{NS}}}ArchiveAutoReportResponse/{{{NS}}}ArchiveAutoReportResult")
    assert el is not None, r.content
    return str(el.text or "")


def test_a_replayed_soap_envelope_cannot_undo_a_correction(client: TestClient, platform: sm2.Sm2Key, container: Container) -> None:
    old = envelope(platform, samples.LAB_XML)
    assert post(client, old) == "ok"
    assert post(client, old) == "ok"  # a retry of the same envelope: idempotent
    corrected = samples.LAB_XML.replace(f'last_update_dtime="{T0}"', f'last_update_dtime="{T1}"').replace(
        'result_value="', 'result_value="1', 1
    )
    assert post(client, envelope(platform, corrected)) == "ok"

    answer = post(client, old)  # the old envelope replayed, byte for byte
    assert answer.startswith("error:") and "last_update_dtime" in answer and T0 in answer and T1 in answer, answer
    assert "被拒提交 #" in answer
    with container.db.read() as conn:
        row = reports.find_by_key(conn, "lab", LAB_KEY)
    assert row is not None and row["version"] == 2 and row["last_update_dtime"].strftime("%Y-%m-%d %H:%M:%S") == T1
    # the same time with other content is refused over SOAP as well
    assert post(client, envelope(platform, corrected.replace('result_value="1', 'result_value="2', 1))).startswith("error:")
