"""Federation (issue 13): a city platform's feed applied on the region by the upstream runner —
reports, a resubmission, a void, PDFs, decisions and daily counts arrive once, a replayed batch
changes nothing, a gap is refused naming where to read again, and supervisors are scoped by the
platform tree (two virtual cities on one deployment never see each other)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from huren.api.app import create_app
from huren.bootstrap import build
from huren.client import HurenClient
from huren.context import Clock
from huren.errors import PlatformRefused
from huren.federation.config import Endpoint, FederationConfig
from huren.federation.runner import Runner
from huren.services.container import Container
from huren.settings import Settings
from tests import samples
from tests.conftest import HASH_N, ORG_A, ORG_B, SECRET, SUPERVISOR, login

CITY, REGION, CHANGJI = "XJ-6501", "XJ", "XJ-6523"
SYNC = (SUPERVISOR[0], SUPERVISOR[1], "", "", "sync", "sync-password")  # the city platform's account (its health commission)
ORG_C = ("652301001", "昌吉州人民医院", "652301", "3甲", "his", "password-c")
SUP_C = ("652300000", "昌吉州卫生健康委员会", "652300", "3", "sup", "password-sc")
SUP_R = ("650000000", "自治区卫生健康委员会", "650000", "3", "sup", "password-sr")


def _container(tpl: Path, tmp: Path, name: str) -> Container:
    (tmp / name).mkdir()
    shutil.copy(tpl, tmp / name / "huren.db")
    settings = Settings(
        data_dir=tmp / name / "data", database_url=f"sqlite:///{tmp / name / 'huren.db'}", secret_key=SECRET,
        max_pdf_bytes=64 * 1024, password_hash_n=HASH_N,
    )
    return build(settings, clock=Clock())


@pytest.fixture
def sides(sqlite_template: Path, tmp_path: Path) -> Iterator[dict[str, Any]]:
    city, region = _container(sqlite_template, tmp_path, "city"), _container(sqlite_template, tmp_path, "region")
    # the city: its own platform, the region above it known by name
    city.federation.add_platform(REGION, "新疆维吾尔自治区平台", "region", division="650000", local=False)
    city.federation.add_platform(CITY, "乌鲁木齐市平台", "city", parent=REGION, division="650100")
    # the region: itself, the real city (its own deployment), a virtual city it hosts
    region.federation.add_platform(REGION, "新疆维吾尔自治区平台", "region", division="650000")
    region.federation.add_platform(CITY, "乌鲁木齐市平台", "city", parent=REGION, division="650100", local=False)
    region.federation.add_platform(CHANGJI, "昌吉州虚拟平台", "city", parent=REGION, division="652300", virtual=True)
    for c in (city, region):
        c.directory.add_credential(SUPERVISOR[0], SYNC[4], SYNC[5], role="platform")
    region.directory.add_org(*ORG_C[:4], user=ORG_C[4], password=ORG_C[5])
    region.directory.add_org(*SUP_C[:4], user=SUP_C[4], password=SUP_C[5], role="supervisor")
    region.directory.add_org(*SUP_R[:4], user=SUP_R[4], password=SUP_R[5], role="supervisor")
    with TestClient(create_app(city)) as tc, TestClient(create_app(region)) as tr:
        yield {"city": city, "region": region, "tc": tc, "tr": tr}
    city.close()
    region.close()


def _runner(s: dict[str, Any]) -> Runner:
    ep = Endpoint("http://x", SYNC[0], SYNC[4], SYNC[5])
    cfg = FederationConfig(platform=CITY, source=ep, target=ep, batch=3, wait_seconds=0.0)
    source = HurenClient("http://city", SYNC[0], SYNC[4], SYNC[5], http=s["tc"])
    target = HurenClient("http://region", SYNC[0], SYNC[4], SYNC[5], http=s["tr"])
    return Runner(cfg, source=source, target=target)


def _void(payload: dict[str, Any]) -> dict[str, Any]:
    m = payload["labmaster"]
    return {k: m[k] for k in ("org_code", "report_form_no", "patient_id", "event_type", "event_no", "id_no")} | {"id_type": "01"}


def test_a_city_feed_reaches_the_region_once(sides: dict[str, Any]) -> None:
    city, region = sides["city"], sides["region"]
    a, b = login(sides["tc"], ORG_A), login(sides["tc"], ORG_B)
    assert {o["code"]: o["platform"] for o in city.directory.list_orgs()}[ORG_A[0]] == CITY
    lab = samples.lab()
    assert a.post("/api/v1/lab-reports", lab).status_code == 200
    assert a.post("/api/v1/exam-reports", samples.exam()).status_code == 200
    second = samples.lab()
    second["labmaster"]["report_form_no"] = "F-2"
    assert b.post("/api/v1/lab-reports", {**second, "labmaster": {**second["labmaster"], "org_code": ORG_B[0]}}).status_code in (200, 422)
    newer = samples.lab()
    newer["labmaster"]["last_update_dtime"] = "2024-03-12 10:00:00"
    newer["lab_subitem"][0]["result"] = "99"
    r = a.post("/api/v1/lab-reports", newer)
    assert r.status_code == 200 and r.json()["version"] == 2, r.text
    assert a.post("/api/v1/daily-counts", samples.daily()).status_code == 200

    runner = _runner(sides)
    assert runner.run(until_idle=True) > 0
    ra = login(sides["tr"], ORG_B)  # a doctor's institution of the city, reading at the region
    with region.db.read() as conn:
        from huren.store import reports

        got = reports.find_by_key(conn, "lab", [ORG_A[0], "14437173", lab["labmaster"]["patient_id"], 1, lab["labmaster"]["event_no"]])
    # the region holds the city's latest version (its own version count: it never saw the first)
    assert got is not None and str(got["last_update_dtime"]) == "2024-03-12 10:00:00" and got["platform"] == CITY
    assert got["pdf_sha256"] and region.blobs.get(got["pdf_sha256"]) == samples.PDF_BYTES
    q = {"id_type_code": "01", "id_no": samples.ID_NO, "start": "2024-01-01 00:00:00", "end": "2024-12-31 00:00:00"}
    assert ra.post("/api/v1/query/lab-reports", q).json()["count"] >= 1

    # a void at the city arrives; running again with nothing new applies nothing
    assert a.post("/api/v1/lab-reports/void", _void(lab)).status_code == 200
    assert runner.run(until_idle=True) > 0
    with region.db.read() as conn:
        from huren.store import reports

        got2 = reports.find_by_key(conn, "lab", [ORG_A[0], "14437173", lab["labmaster"]["patient_id"], 1, lab["labmaster"]["event_no"]])
    assert got2 is not None and got2["voided"] and str(got2["last_update_dtime"]) == "2024-03-12 10:00:00"
    assert runner.run(until_idle=True) == 0

    # every read of the feed is in the city's access log (one row per batch: platform, range, count)
    with city.db.read() as conn:
        from huren.store import audit as audit_store

        logged = [r for r in audit_store.list_access(conn, city.keys.fields(), limit=1000) if r["action"] == "feed_read"]
    assert logged and all(str(r["target"]).startswith(f"feed:{CITY}:") and r["username"] == SYNC[4] for r in logged)
    # a replayed batch changes nothing; a batch past the watermark is a gap
    feed = runner.source.feed(CITY, 0, 1000)
    mark = runner.target.watermark(CITY)["applied_seq"]
    assert mark == feed["last_seq"]
    again = runner.target.apply_batch(CITY, {"from_seq": 1, "to_seq": feed["changes"][-1]["seq"], "last_seq": feed["last_seq"], "changes": feed["changes"]})
    assert again["applied"] == 0 and again["applied_seq"] == mark
    with pytest.raises(PlatformRefused) as exc:
        runner.target.apply_batch(CITY, {"changes": [{"seq": mark + 5, "kind": "org", "org_code": ORG_A[0]}]})
    assert exc.value.status == 409
    # the region's own feed holds what it applied: the next level up can read it
    status = login(sides["tr"], SUP_R).get("/api/v1/federation/status").json()
    feeds = {f["platform"]: f["last_seq"] for f in status["feeds"]}
    assert feeds[REGION] > 0 and {p["platform"] for p in status["peers"]} == {CITY}
    runner.close()


def test_supervisors_are_scoped_by_the_platform_tree(sides: dict[str, Any]) -> None:
    tr = sides["tr"]
    c = login(tr, ORG_C)
    r = c.post("/api/v1/lab-reports", _moved(samples.lab(), ORG_C[0]))
    assert r.status_code == 200, r.text
    sup_c, sup_city, sup_r = login(tr, SUP_C), login(tr, SUPERVISOR), login(tr, SUP_R)
    q = {"org_code": ORG_C[0]}
    assert sup_c.get("/api/v1/org-reports", params=q).status_code == 200
    assert sup_r.get("/api/v1/org-reports", params=q).status_code == 200
    refused = sup_city.get("/api/v1/org-reports", params=q)
    assert refused.status_code == 403 and refused.json()["problems"][0]["rule"] == "region"
    # the feed of a platform: its own platform account may read, another's may not
    assert login(tr, SYNC).get(f"/api/v1/platforms/{CHANGJI}/changes").status_code == 403
    assert sup_c.get(f"/api/v1/platforms/{CHANGJI}/changes").status_code == 200


def _moved(payload: dict[str, Any], org: str) -> dict[str, Any]:
    import json

    return json.loads(json.dumps(payload, ensure_ascii=False).replace(ORG_A[0], org))


def test_platform_rules_are_named(sides: dict[str, Any]) -> None:
    from huren.errors import Conflict, InvalidInput

    region = sides["region"]
    with pytest.raises(Conflict):
        region.federation.add_platform(CITY, "重复", "city", parent=REGION, division="650100")
    with pytest.raises(InvalidInput) as exc:
        region.federation.add_platform("XJ-X", "虚拟省", "region", parent=REGION, division="650000", virtual=True)
    named = {(p.field, p.rule) for p in exc.value.problems}
    # a region under a region, and a virtual platform that is not a city: both named, in Chinese
    assert named == {("parent", "level"), ("virtual", "level")}, named
    assert all(not p.message.isascii() for p in exc.value.problems)
    with pytest.raises(InvalidInput) as exc:
        region.federation.add_platform("XJ-Y", "昌吉州另一平台", "city", parent="XJ-NONE", division="659900")
    assert ("parent", "not_found") in {(p.field, p.rule) for p in exc.value.problems}


REGION_SYNC = ("650000000", "自治区卫生健康委员会", "650000", "3", "region", "region-password")  # the region's account at a city
CHANGJI_SYNC = (SUP_C[0], SUP_C[1], "", "", "sync", "sync-password-c")


def _runner_between(source: TestClient, target: TestClient, platform: str, src: tuple[str, ...], dst: tuple[str, ...]) -> Runner:
    ep = Endpoint("http://x", src[0], src[4], src[5])
    cfg = FederationConfig(platform=platform, source=ep, target=ep, batch=50, wait_seconds=0.0)
    return Runner(cfg, source=HurenClient("http://s", src[0], src[4], src[5], http=source), target=HurenClient("http://t", dst[0], dst[4], dst[5], http=target))


@pytest.fixture
def three(sqlite_template: Path, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """City A (乌鲁木齐, its own deployment), city B (昌吉, its own deployment) and the region."""
    a, b, r = (_container(sqlite_template, tmp_path, n) for n in ("a", "b", "r"))
    for c, local in ((a, CITY), (b, CHANGJI)):
        c.federation.add_platform(REGION, "新疆维吾尔自治区平台", "region", division="650000", local=False)
        division = "650100" if local == CITY else "652300"
        c.federation.add_platform(local, "乌鲁木齐市平台" if local == CITY else "昌吉州平台", "city", parent=REGION, division=division)
        c.directory.add_org(*REGION_SYNC[:4], user=REGION_SYNC[4], password=REGION_SYNC[5], role="platform", platform=REGION)
    r.federation.add_platform(REGION, "新疆维吾尔自治区平台", "region", division="650000")
    r.federation.add_platform(CITY, "乌鲁木齐市平台", "city", parent=REGION, division="650100", local=False)
    r.federation.add_platform(CHANGJI, "昌吉州平台", "city", parent=REGION, division="652300", local=False)
    for c in (a, r):
        c.directory.add_credential(SUPERVISOR[0], SYNC[4], SYNC[5], role="platform")
    for c in (b, r):
        c.directory.add_org(*SUP_C[:4], user=SUP_C[4], password=SUP_C[5], role="supervisor")
        c.directory.add_credential(SUP_C[0], CHANGJI_SYNC[4], CHANGJI_SYNC[5], role="platform")
    b.directory.add_org(*ORG_C[:4], user=ORG_C[4], password=ORG_C[5])
    b.directory.add_credential(ORG_C[0], "doc", "doctor-password-c", role="doctor")
    with TestClient(create_app(a)) as ta, TestClient(create_app(b)) as tb, TestClient(create_app(r)) as trr:
        runners = {
            "a_up": _runner_between(ta, trr, CITY, SYNC, SYNC),
            "b_up": _runner_between(tb, trr, CHANGJI, CHANGJI_SYNC, CHANGJI_SYNC),
            "a_down": _runner_between(trr, ta, REGION, SYNC, REGION_SYNC),
            "b_down": _runner_between(trr, tb, REGION, CHANGJI_SYNC, REGION_SYNC),
        }
        yield {"a": a, "b": b, "r": r, "ta": ta, "tb": tb, "tr": trr, "runners": runners}
        for x in runners.values():
            x.close()
    for c in (a, b, r):
        c.close()


def _sync(three: dict[str, Any]) -> None:
    for name in ("a_up", "b_up", "a_down", "b_down"):
        three["runners"][name].run(until_idle=True)


def test_a_doctor_in_another_city_accepts_a_result_synced_through_the_region(three: dict[str, Any]) -> None:
    a_api = login(three["ta"], ORG_A)
    lab = samples.lab()
    assert a_api.post("/api/v1/lab-reports", lab).status_code == 200
    _sync(three)
    # city B now holds city A's report (through the region): its doctor finds it and accepts it
    doc = login(three["tb"], (ORG_C[0], ORG_C[1], "", "", "doc", "doctor-password-c"))
    q = {"id_type_code": "01", "id_no": samples.ID_NO, "start": "2024-01-01 00:00:00", "end": "2024-12-31 00:00:00"}
    found = doc.post("/api/v1/query/lab-reports", q)
    assert found.status_code == 200 and found.json()["count"] == 1, found.text
    item = lab["lab_subitem"][0]
    accept = {"hr_org_code": ORG_A[0], "hr_report_form_no": lab["labmaster"]["report_form_no"], "code": item["class_code"],
              "id_no": samples.ID_NO, "id_type_code": "01", "record_time": "2026-11-20 13:19:04", "type": "2",
              "new_event_no": "C-5036612", "new_event_type": "1", "is_accept": "1", "reason": "", "new_event_time": "",
              "dept_code": "NK", "dept_name": "内科", "dept_std_code": "A03", "dept_std_name": "内科", "doc_code": "C9", "doc_name": "王医生"}
    r = doc.post("/api/v1/recognition/accept", {"sehr_accept_record": [accept]})
    assert r.status_code == 200, r.text
    _sync(three)
    # the decision reached the region and city A (whose result was recognized elsewhere), once
    from sqlalchemy import func, select

    from huren.store.tables import accept_record, lab_report

    for side in ("r", "a"):
        with three[side].db.read() as conn:
            rows = conn.execute(select(accept_record.c.org_code, accept_record.c.report_id, accept_record.c.platform)).all()
        assert len(rows) == 1 and rows[0][0] == ORG_C[0] and rows[0][1] is not None, (side, rows)
    # nothing echoes: a second round applies nothing anywhere, and every report exists once per platform
    for name in ("a_up", "b_up", "a_down", "b_down"):
        assert three["runners"][name].run(until_idle=True) == 0, name
    for side in ("a", "b", "r"):
        with three[side].db.read() as conn:
            assert conn.execute(select(func.count()).select_from(lab_report)).scalar_one() == 1, side
    # city A's own report came back from the region as numbers only: its feed did not grow from the mirror
    with three["a"].db.read() as conn:
        from huren.store import changes

        assert changes.last_seq(conn, REGION) == 0


def test_two_virtual_cities_on_one_deployment_do_not_see_each_other(sides: dict[str, Any]) -> None:
    region, tr = sides["region"], sides["tr"]
    region.federation.add_platform("XJ-6502", "克拉玛依市虚拟平台", "city", parent=REGION, division="650200", virtual=True)
    karamay = ("650203001", "克拉玛依市中心医院", "650203", "3甲", "his", "password-k")
    sup_k = ("650200000", "克拉玛依市卫生健康委员会", "650200", "3", "sup", "password-sk")
    region.directory.add_org(*karamay[:4], user=karamay[4], password=karamay[5])
    region.directory.add_org(*sup_k[:4], user=sup_k[4], password=sup_k[5], role="supervisor")
    orgs = {o["code"]: o["platform"] for o in region.directory.list_orgs()}
    assert orgs[karamay[0]] == "XJ-6502" and orgs[ORG_C[0]] == CHANGJI
    for org in (karamay, ORG_C):
        assert login(tr, org).post("/api/v1/lab-reports", _moved(samples.lab(), org[0])).status_code == 200
    k, c, r = login(tr, sup_k), login(tr, SUP_C), login(tr, SUP_R)
    for who, mine, theirs in ((k, karamay[0], ORG_C[0]), (c, ORG_C[0], karamay[0])):
        assert who.get("/api/v1/org-reports", params={"org_code": mine}).status_code == 200
        assert who.get("/api/v1/org-reports", params={"org_code": theirs}).status_code == 403
    for org in (karamay[0], ORG_C[0]):
        assert r.get("/api/v1/org-reports", params={"org_code": org}).status_code == 200
    # each virtual city has its own feed, and the region's holds both
    status = r.get("/api/v1/federation/status").json()
    feeds = {f["platform"]: f["last_seq"] for f in status["feeds"]}
    assert feeds["XJ-6502"] > 0 and feeds[CHANGJI] > 0 and feeds[REGION] >= feeds["XJ-6502"] + feeds[CHANGJI]
    own = k.get("/api/v1/federation/status").json()
    assert {f["platform"] for f in own["feeds"]} == {"XJ-6502"}


def test_supervision_pickers_and_statistics_follow_the_tree(sides: dict[str, Any]) -> None:
    """The institution picker of the supervision pages lists what the caller may open (its platform
    subtree within its division), and the statistics group by city platform over REST too."""
    region, tr = sides["region"], sides["tr"]
    sup_c = login(tr, SUP_C)
    token = sup_c.headers["Authorization"].split()[1]
    page = tr.get("/ui/quality/completeness", params={"token": token})
    assert page.status_code == 200, page.text[:300]
    assert ORG_C[0] in page.text and ORG_A[0] not in page.text
    picks = {o["code"] for o in region.directory.orgs_within(_principal(SUP_C), "quality.read")}
    assert picks == {ORG_C[0], SUP_C[0]}
    r = login(tr, SUP_R).get("/api/v1/statistics/recognition", params={"by": "platform"})
    assert r.status_code == 200, r.text


def _principal(org: tuple[str, ...]) -> Any:
    from huren.context import Principal

    return Principal(org[0], org[4], "supervisor")


def test_a_malformed_batch_is_refused_naming_the_field(sides: dict[str, Any]) -> None:
    """Bad input to the apply endpoint is a 422 naming the field, never a 500; a gap is recorded in
    the words the supervisor reads."""
    api = login(sides["tr"], SYNC)
    for body, field in (
        ({"changes": "x"}, "changes"),
        ({"changes": [{"seq": "1"}]}, "changes[0].seq"),
        ({"changes": [{"seq": 1}, {"seq": 3}]}, "changes"),
        ({"changes": [], "last_seq": "9"}, "last_seq"),
    ):
        r = api.post(f"/api/v1/platforms/{CITY}/changes", body)
        assert r.status_code == 422 and r.json()["problems"][0]["field"] == field, (body, r.text)
    odd = {"changes": [{"seq": 1, "kind": "lab", "org_code": ORG_A[0], "report_kind": "lab", "report": {"labmaster": {}},
                        "pdf_sha256": "x" * 64, "pdf_size": "big"}]}
    r = api.post(f"/api/v1/platforms/{CITY}/changes", odd)
    assert r.status_code == 200 and r.json()["refused"], r.text  # kept as a rejected submission, watermark moved on
    r = api.post(f"/api/v1/platforms/{CITY}/changes", {"changes": [{"seq": 9, "kind": "org", "org_code": ORG_A[0]}]})
    assert r.status_code == 409
    peer = api.get(f"/api/v1/platforms/{CITY}/watermark").json()
    assert peer["last_error"] == "变更序号不连续：应从 2 开始，收到 9" and peer["gaps"] == 1
