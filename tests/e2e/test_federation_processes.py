"""Federation (issue 13) with every platform a real process: a city's feed synced to the region
by ``huren federation run`` — while the region is killed and started again and the runner is
SIGKILLed mid-run — arrives exactly once, report by report; a doctor of another city accepts at the
region a result registered in the city; three levels (city → region → cross-provincial); the
region on PostgreSQL."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from huren.demo.generator import demo_orgs
from tests.e2e.federation_procs import (
    COMMISSION,
    Platform,
    hospitals,
    lab_reports,
    newer,
    runner,
    void_filter,
    wait,
)

pytestmark = pytest.mark.e2e

CITY, REGION, CROSS, CHANGJI = "XJ-6501", "XJ", "XB", "XJ-6523"
CITY_SYNC, REGION_SYNC = COMMISSION[CITY][0], COMMISSION[REGION][0]
ADD_REGION = ["--name", "新疆维吾尔自治区平台", "--level", "region", "--division", "650000"]
ADD_CITY = ["--name", "乌鲁木齐市平台", "--level", "city", "--parent", REGION, "--division", "650100"]


def _commission(platform: str) -> tuple[str, str, str, str, str]:
    return (*COMMISSION[platform], "supervisor")


def _city(tmp: Path) -> Platform:
    a, b = hospitals()
    city = Platform(tmp, "city")
    city.setup(
        [(a.code, a.name, a.region_code, "3", "hospital"), (b.code, b.name, b.region_code, "3", "hospital"), _commission(CITY)],
        [CITY_SYNC],
        [[REGION, *ADD_REGION, "--remote"], [CITY, *ADD_CITY]],
    )
    return city


def _region(tmp: Path, url: str | None = None, *, cross: bool = False) -> Platform:
    changji = demo_orgs()[8]
    region = Platform(tmp, "region", url)
    above = [[CROSS, "--name", "西北跨省区域平台", "--level", "cross", "--remote"]] if cross else []
    region.setup(
        [_commission(CITY), _commission(REGION), (changji.code, changji.name, changji.region_code, "3", "hospital")],
        [CITY_SYNC, REGION_SYNC],
        [*above, [REGION, *ADD_REGION, *(["--parent", CROSS] if cross else [])], [CITY, *ADD_CITY, "--remote"],
         [CHANGJI, "--name", "昌吉州虚拟平台", "--level", "city", "--parent", REGION, "--division", "652300", "--virtual"]],
    )
    return region


def _register(city: Platform, reports: list[dict[str, Any]], per_batch: int = 60) -> None:
    org = reports[0]["labmaster"]["org_code"]
    with city.client(org) as c:
        for i in range(0, len(reports), per_batch):
            out = c.rest_call("POST", "/api/v1/lab-reports/batch", json={"reports": reports[i : i + per_batch]})
            assert all(r["code"] == "ok" for r in out["results"]), out


def _feed_total(p: Platform, feed: str) -> int:
    return int(p.sql("SELECT count(*) FROM feed_change WHERE feed = :f", f=feed)[0][0])


def _accept(report: dict[str, Any], event_no: str) -> dict[str, str]:
    m = report["labmaster"]
    return {
        "hr_org_code": m["org_code"], "hr_report_form_no": m["report_form_no"], "code": report["lab_subitem"][0]["class_code"],
        "id_no": m["id_no"], "id_type_code": m["id_type_code"], "record_time": "2026-11-20 13:19:04", "type": "2",
        "new_event_no": event_no, "new_event_type": "1", "is_accept": "1", "reason": "", "dept_code": "ZSBY-10",
        "dept_name": "急诊外科", "dept_std_code": "A50.16", "dept_std_name": "急诊科专业", "doc_code": "9050", "doc_name": "郑伟军",
    }


def _same(a: Platform, b: Platform) -> None:
    """Report by report: every key once at ``b``, with ``a``'s last_update_dtime, void state and items."""
    want, got = a.reports(), b.reports()
    assert want, "nothing registered"
    lost = sorted(set(want) - set(got))
    doubled = sorted(k for k, v in got.items() if v[0] != 1)
    wrong = sorted(k for k in want if k in got and got[k][1:] != want[k][1:])
    assert (lost, doubled, wrong) == ([], [], []), {"lost": lost[:5], "doubled": doubled[:5], "wrong": [(k, want[k], got.get(k)) for k in wrong[:5]]}


@pytest.fixture
def procs() -> Iterator[list[Any]]:
    started: list[Any] = []
    yield started
    for p in reversed(started):
        p.stop(signal.SIGKILL)


def test_city_to_region_exactly_once_through_a_region_outage_and_a_killed_runner(tmp_path: Path, procs: list[Any]) -> None:
    a, b = hospitals()
    city, region = _city(tmp_path), _region(tmp_path)
    procs += [city, region]
    city.start()
    region.start()
    reports = lab_reports(a, 240, "FA", pdfs=4)
    _register(city, reports)
    _register(city, [newer(p) for p in reports[::24]])  # 10 resubmissions, newer
    with city.client(a.code) as c:
        for p in reports[5::40]:
            c.rest_void("lab", void_filter(p))
    with city.client(b.code) as c:
        c.rest_call("POST", "/api/v1/recognition/accept", json={"sehr_accept_record": [_accept(p, f"MZ{i}") for i, p in enumerate(reports[:5])]})
    total = _feed_total(city, CITY)

    run = runner(tmp_path, "runner", CITY, city, region, CITY_SYNC, batch=15)
    procs.append(run)
    run.start()
    logs = (run.log, region.log, city.log)
    wait("a third applied", lambda: region.applied(CITY) >= total // 3, 60, logs)
    region.stop(signal.SIGKILL)  # the region down while the runner runs
    time.sleep(1.5)
    assert run.alive()
    region.start()
    mark = region.applied(CITY)
    wait("the next batches", lambda: region.applied(CITY) >= min(total, mark + 45), 60, logs)
    run.stop(signal.SIGKILL)  # mid-run (a batch is being read, sent or applied nearly all the time)
    run.start()
    wait("the whole feed applied", lambda: region.applied(CITY) == total, 90, logs)

    _same(city, region)
    assert region.sql("SELECT count(*) FROM accept_record")[0][0] == city.sql("SELECT count(*) FROM accept_record")[0][0] == 5
    pdfs = region.sql("SELECT count(*) FROM lab_report WHERE pdf_sha256 IS NOT NULL")[0][0]
    assert pdfs == city.sql("SELECT count(*) FROM lab_report WHERE pdf_sha256 IS NOT NULL")[0][0] == 4
    peer = region.sql("SELECT gaps, applied_total FROM federation_peer WHERE platform = :p", p=CITY)[0]
    assert peer[1] >= total  # replays after the faults are counted, never stored twice

    # a doctor of another city (a hospital of the virtual city 昌吉州, at the region) accepts a result of city A
    changji = demo_orgs()[8]
    with region.client(changji.code) as doc:
        q = {"id_type_code": "01", "id_no": reports[1]["labmaster"]["id_no"], "start": "2026-01-01 00:00:00", "end": "2026-12-31 00:00:00"}
        found = doc.rest_call("POST", "/api/v1/query/lab-reports", json=q)
        assert any(r["labmaster"]["report_form_no"] == reports[1]["labmaster"]["report_form_no"] for r in found["reports"]), found
        out = doc.rest_call("POST", "/api/v1/recognition/accept", json={"sehr_accept_record": [_accept(reports[1], "CJ-1")]})
        assert out["rows"] == 1
    rows = region.sql("SELECT org_code, hr_org_code, report_id FROM accept_record WHERE new_event_no = 'CJ-1'")
    assert [(r[0], r[1]) for r in rows] == [(changji.code, a.code)] and rows[0][2] is not None


def test_three_levels_city_region_cross(tmp_path: Path, procs: list[Any]) -> None:
    a, _ = hospitals()
    city, region = _city(tmp_path), _region(tmp_path, cross=True)
    cross = Platform(tmp_path, "cross")
    cross.setup([_commission(REGION)], [REGION_SYNC], [[CROSS, "--name", "西北跨省区域平台", "--level", "cross"], [REGION, *ADD_REGION, "--parent", CROSS, "--remote"]])
    procs += [city, region, cross]
    for p in (city, region, cross):
        p.start()
    reports = lab_reports(a, 30, "TL", pdfs=1)
    _register(city, reports)
    with city.client(a.code) as c:
        c.rest_void("lab", void_filter(reports[3]))
    _register(city, [newer(reports[7])])
    up1 = runner(tmp_path, "runner-city", CITY, city, region, CITY_SYNC, batch=10)
    up2 = runner(tmp_path, "runner-region", REGION, region, cross, REGION_SYNC, batch=10)
    procs += [up1, up2]
    up1.start()
    up2.start()
    logs = (up1.log, up2.log, region.log, cross.log)
    wait("the city's feed at the region", lambda: region.applied(CITY) == _feed_total(city, CITY), 60, logs)
    wait("the region's feed at the cross platform", lambda: cross.applied(REGION) == _feed_total(region, REGION) > 0, 60, logs)
    _same(city, region)
    _same(city, cross)
    got = cross.reports()
    assert sum(1 for v in got.values() if v[2]) == 1 and len(got) == 30
    assert cross.sql("SELECT count(*) FROM lab_report WHERE pdf_sha256 IS NOT NULL")[0][0] == 1


@pytest.fixture
def region_pg(pg_databases: Any) -> Iterator[str]:
    name = f"huren_fed_{uuid.uuid4().hex[:10]}"
    with pg_databases.admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield pg_databases.url(name)
    with pg_databases.admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_region_on_postgresql(tmp_path: Path, procs: list[Any], region_pg: str) -> None:
    a, _ = hospitals()
    city, region = _city(tmp_path), _region(tmp_path, region_pg)
    procs += [city, region]
    city.start()
    region.start()
    reports = lab_reports(a, 120, "PG", pdfs=2)
    _register(city, reports)
    with city.client(a.code) as c:
        for p in reports[::30]:
            c.rest_void("lab", void_filter(p))
    _register(city, [newer(p) for p in reports[1::30]])
    total = _feed_total(city, CITY)
    run = runner(tmp_path, "runner", CITY, city, region, CITY_SYNC, batch=20)
    procs.append(run)
    run.start()
    wait("some applied", lambda: region.applied(CITY) >= 40, 60, (run.log, region.log))
    run.stop(signal.SIGKILL)
    run.start()
    wait("the whole feed applied", lambda: region.applied(CITY) == total, 60, (run.log, region.log))
    _same(city, region)
