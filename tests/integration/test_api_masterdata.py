"""REST directory master data on SQLite and PostgreSQL: departments (HZ-2), staff (HZ-3),
patients (HZ-1), lab instruments (XC-L1), lab QC records (XC-L4)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from huren.context import Principal
from huren.domain import idcard
from huren.services.container import Container
from huren.store import audit
from tests.conftest import ORG_A, ORG_B, SUPERVISOR, Api

BASE = "/api/v1/directory"
PATHS = {"dept": "depts", "staff": "staff", "patient": "patients", "device": "devices", "qc_record": "qc-records"}
KINDS = list(PATHS)
IDS = {"dept": ["HZ-2"], "staff": ["HZ-3"], "patient": ["HZ-1"], "device": ["XC-L1"], "qc_record": ["XC-L4"]}


def id_no(i: int) -> str:
    return idcard.make("650102", date(1980, 1, 1 + i), i)


def row(node: str, i: int, **over: Any) -> dict[str, Any]:
    """A valid row of ``node``; ``i`` varies its key."""
    rows: dict[str, dict[str, Any]] = {
        "dept": {"dept_code": f"D{i:02d}", "dept_name": f"科室{i}", "dept_std_code": "A03.01", "dept_std_name": "呼吸内科专业",
                 "campus": "本部", "active": "1"},
        "staff": {"staff_code": f"S{i:02d}", "name": f"医生{i}", "dept_code": "D01" if i % 2 else "D02", "title": "主治医师",
                  "licence_no": f"L{i:05d}", "active": "1"},
        "patient": {"patient_id": f"P{i:02d}", "id_type_code": "01", "id_no": id_no(i), "name": f"患者{i}",
                    "sex_code": "1" if i % 2 else "2", "birth_date": f"1980-01-{1 + i:02d}", "card_no": f"K{i}",
                    "phone": "13800000000", "registered_at": "2024-03-01 08:00:00"},
        "device": {"device_code": f"M{i:02d}", "name": f"分析仪{i}", "model": "AU5800", "manufacturer": "贝克曼",
                   "dept_code": "D01" if i % 2 else "D02", "active": "1"},
        "qc_record": {"device_code": "M01", "item_code": f"I{i:02d}", "item_name": f"项目{i}", "qc_date": "2024-03-11",
                      "qc_level": "L1", "target_value": "5.6", "measured_value": "5.7", "in_control": "1"},
    }
    return rows[node] | over


KEY = {"dept": "dept_code", "staff": "staff_code", "patient": "patient_id", "device": "device_code", "qc_record": "item_code"}


def key_of(node: str, r: dict[str, Any]) -> str:
    return str(r[KEY[node]])


def prepare(api: Api, node: str) -> None:
    """QC records need the instrument registered first."""
    if node == "qc_record":
        r = upload(api, "device", [row("device", 1)])
        assert r.status_code == 200, r.text


def upload(api: Api, node: str, rows: list[dict[str, Any]]) -> Any:
    return api.post(f"{BASE}/{PATHS[node]}", {node: rows})


def read(api: Api, node: str, **params: Any) -> Any:
    return api.get(f"{BASE}/{PATHS[node]}", params=params)


def rows_of(api: Api, node: str, **params: Any) -> list[dict[str, str]]:
    r = read(api, node, **params)
    assert r.status_code == 200, r.text
    return list(r.json()[node])


def rejected(api: Api) -> list[dict[str, Any]]:
    r = api.get("/api/v1/quality/rejected")
    assert r.status_code == 200, r.text
    return list(r.json()["rejected"])


def problem(resp: Any, field: str, rule: str) -> dict[str, str]:
    body = resp.json()
    assert {"code", "message", "problems"} <= set(body) <= {"code", "message", "problems", "rejected_id"}, body
    hits = [p for p in body["problems"] if p["field"] == field and p["rule"] == rule]
    assert hits, body
    assert hits[0]["message"]
    return dict(hits[0])


# -- every kind --------------------------------------------------------------------------------

@pytest.mark.parametrize("node", KINDS)
def test_upload_and_read_back(api_a: Api, node: str) -> None:
    prepare(api_a, node)
    sent = [row(node, 2), row(node, 1)]
    r = upload(api_a, node, sent)
    assert r.status_code == 200, r.text
    assert r.json() == {"code": "ok", "message": "ok", "rows": 2}
    body = read(api_a, node).json()
    assert body["code"] == "ok" and body["total"] == 2 and body["count"] == 2
    got = body[node]
    assert [key_of(node, g) for g in got] == [key_of(node, sent[1]), key_of(node, sent[0])]  # key order
    for g, s in zip(got, reversed(sent), strict=True):
        assert g["org_code"] == ORG_A[0] and g["updated_at"]
        assert {k: g[k] for k in s} == {k: str(v) for k, v in s.items()}  # as sent, as text


@pytest.mark.parametrize("node", KINDS)
def test_reupload_replaces_the_row(api_a: Api, node: str) -> None:
    prepare(api_a, node)
    assert upload(api_a, node, [row(node, 1), row(node, 2)]).status_code == 200
    change = {"dept": {"dept_name": "新名字", "active": "0"}, "staff": {"title": "主任医师", "dept_code": "D09"},
              "patient": {"name": "改名", "phone": ""}, "device": {"model": "AU680", "active": "0"},
              "qc_record": {"measured_value": "7.1", "in_control": "0"}}[node]
    r = upload(api_a, node, [row(node, 1, **change)])
    assert r.status_code == 200, r.text
    got = {key_of(node, g): g for g in rows_of(api_a, node)}
    assert len(got) == 2  # upsert by key: row 2 untouched, row 1 replaced
    one = got[key_of(node, row(node, 1))]
    assert {k: one[k] for k in change} == change
    two = got[key_of(node, row(node, 2))]
    assert {k: two[k] for k in row(node, 2)} == {k: str(v) for k, v in row(node, 2).items()}


@pytest.mark.parametrize("node", KINDS)
def test_paging(api_a: Api, node: str) -> None:
    prepare(api_a, node)
    assert upload(api_a, node, [row(node, i) for i in range(1, 6)]).status_code == 200
    body = read(api_a, node, limit=2, offset=2).json()
    assert body["total"] == 5 and body["count"] == 2 and body["limit"] == 2 and body["offset"] == 2
    assert [key_of(node, g) for g in body[node]] == [key_of(node, row(node, i)) for i in (3, 4)]
    assert read(api_a, node, limit=2, offset=4).json()["count"] == 1
    assert read(api_a, node, limit=2, offset=10).json()[node] == []
    bad = read(api_a, node, limit=0)
    assert bad.status_code == 422
    assert read(api_a, node, limit=1001).status_code == 422


@pytest.mark.parametrize("node", KINDS)
def test_other_institution_cannot_read_supervisor_can(api_a: Api, api_b: Api, api_sup: Api, node: str) -> None:
    prepare(api_a, node)
    assert upload(api_a, node, [row(node, 1)]).status_code == 200
    r = read(api_b, node, org_code=ORG_A[0])
    assert r.status_code == 403
    problem(r, "org_code", "ownership")
    assert read(api_b, node).json()["total"] == 0  # its own rows: none
    assert read(api_a, node, org_code=ORG_A[0]).json()["total"] == 1  # its own org_code named: fine
    sup = rows_of(api_sup, node, org_code=ORG_A[0])
    assert [g["org_code"] for g in sup] == [ORG_A[0]]
    assert rows_of(api_sup, node, org_code=ORG_B[0]) == []
    assert len(rows_of(api_sup, node)) == 1  # every institution


@pytest.mark.parametrize("node", KINDS)
def test_row_of_another_institution_is_403_and_kept(api_a: Api, node: str) -> None:
    prepare(api_a, node)
    r = upload(api_a, node, [row(node, 1, org_code=ORG_A[0]), row(node, 2, org_code=ORG_B[0])])
    assert r.status_code == 403
    problem(r, f"{node}[1].org_code", "ownership")
    assert rows_of(api_a, node) == []  # nothing written, not even the own row
    kept = rejected(api_a)
    assert kept[0]["kind"] == node and kept[0]["problems"][0]["rule"] == "ownership"


REQUIRED = {"dept": "dept_std_code", "staff": "name", "patient": "id_no", "device": "name", "qc_record": "measured_value"}


@pytest.mark.parametrize("node", KINDS)
def test_missing_required_field(api_a: Api, node: str) -> None:
    prepare(api_a, node)
    bad = row(node, 2)
    del bad[REQUIRED[node]]
    key = {"dept": "dept_code", "staff": "staff_code", "patient": "patient_id", "device": "device_code",
           "qc_record": "device_code"}[node]
    r = upload(api_a, node, [row(node, 1), bad, row(node, 3, **{key: ""})])
    assert r.status_code == 422
    problem(r, f"{node}[1].{REQUIRED[node]}", "required")
    problem(r, f"{node}[2].{key}", "required")  # every problem at once
    assert "#" in r.json()["message"]
    assert rows_of(api_a, node) == []  # nothing written
    kept = rejected(api_a)
    assert len(kept) == 1 and kept[0]["kind"] == node
    assert {p["field"] for p in kept[0]["problems"]} == {f"{node}[1].{REQUIRED[node]}", f"{node}[2].{key}"}
    payload = api_a.get(f"/api/v1/quality/rejected/{kept[0]['id']}/payload")
    assert payload.status_code == 200 and key_of(node, row(node, 1)).encode() in payload.content  # the exact bytes


@pytest.mark.parametrize("node", KINDS)
def test_missing_node_and_malformed_json(api_a: Api, node: str) -> None:
    r = api_a.post(f"{BASE}/{PATHS[node]}", {"rows": [row(node, 1)]})
    assert r.status_code == 422
    problem(r, node, "node")
    r = api_a.post(f"{BASE}/{PATHS[node]}", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    problem(r, "body", "json")
    assert [k["kind"] for k in rejected(api_a)] == [node, node]


def test_interface_ids_in_openapi(api_a: Api) -> None:
    spec = api_a.client.get("/openapi.json").json()["paths"]
    for node, path in PATHS.items():
        ops = spec[f"{BASE}/{path}"]
        extra = ["HZ-20"] if node in ("dept", "staff", "patient") else []
        assert ops["post"]["x-interface-ids"] == IDS[node] + extra
        assert ops["get"]["x-interface-ids"] == IDS[node]
        assert node in ops["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]


def test_unauthenticated_is_401(api_a: Api) -> None:
    for path in PATHS.values():
        assert api_a.client.get(f"{BASE}/{path}").status_code == 401
        assert api_a.client.post(f"{BASE}/{path}", json={}).status_code == 401


# -- departments ---------------------------------------------------------------------------------

def test_bad_dictionary_code(api_a: Api) -> None:
    r = upload(api_a, "dept", [row("dept", 1), row("dept", 2, dept_std_code="1411")])
    assert r.status_code == 422
    p = problem(r, "dept[1].dept_std_code", "dictionary")
    assert "STD_DEPT" in p["message"] and "1411" in p["message"]
    assert rows_of(api_a, "dept") == []
    assert rejected(api_a)[0]["kind"] == "dept"


def test_dept_std_name_from_dictionary_and_filters(api_a: Api) -> None:
    d2 = row("dept", 2, dept_std_code="A07")
    del d2["dept_std_name"]
    assert upload(api_a, "dept", [row("dept", 1), d2]).status_code == 200
    got = rows_of(api_a, "dept", dept_code="D02")
    assert [(g["dept_std_code"], g["dept_std_name"]) for g in got] == [("A07", "儿科")]
    assert [g["dept_code"] for g in rows_of(api_a, "dept", dept_std_code="A03.01")] == ["D01"]


def test_dept_std_for_other_services(api_a: Api, container: Container) -> None:
    assert upload(api_a, "dept", [row("dept", 1)]).status_code == 200
    assert container.masterdata.dept_std(ORG_A[0], "D01") == ("A03.01", "呼吸内科专业")
    assert container.masterdata.dept_std(ORG_B[0], "D01") is None
    assert container.masterdata.dept_std(ORG_A[0], "D99") is None


# -- staff, devices: filter by department --------------------------------------------------------

@pytest.mark.parametrize("node", ["staff", "device"])
def test_filter_by_dept(api_a: Api, node: str) -> None:
    assert upload(api_a, node, [row(node, i) for i in range(1, 5)]).status_code == 200
    assert [key_of(node, g) for g in rows_of(api_a, node, dept_code="D01")] == [
        key_of(node, row(node, 1)), key_of(node, row(node, 3))
    ]
    assert read(api_a, node, dept_code="D01", limit=1).json()["total"] == 2


# -- patients --------------------------------------------------------------------------------------

def test_bad_id_checksum(api_a: Api) -> None:
    good = id_no(2)
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    r = upload(api_a, "patient", [row("patient", 1), row("patient", 2, id_no=bad)])
    assert r.status_code == 422
    assert "校验位" in problem(r, "patient[1].id_no", "id_checksum")["message"]
    assert rows_of(api_a, "patient") == []
    kept = rejected(api_a)
    assert kept[0]["kind"] == "patient" and kept[0]["problems"][0]["rule"] == "id_checksum"


def test_patient_dictionaries_and_birth_date(api_a: Api) -> None:
    r = upload(api_a, "patient", [row("patient", 1, sex_code="5", id_type_code="88"), row("patient", 2, birth_date="1999-01-01")])
    assert r.status_code == 422
    problem(r, "patient[0].sex_code", "dictionary")
    problem(r, "patient[0].id_type_code", "dictionary")
    problem(r, "patient[1].birth_date", "consistency")


def test_patient_reads_are_audited(api_a: Api, api_sup: Api, container: Container) -> None:
    assert upload(api_a, "patient", [row("patient", i) for i in range(1, 4)]).status_code == 200
    with container.db.read() as conn:
        assert audit.list_access(conn, container.keys.fields(), id_no=id_no(1)) == []  # uploading is not reading
    assert len(rows_of(api_a, "patient", limit=2)) == 2
    assert [g["patient_id"] for g in rows_of(api_sup, "patient", org_code=ORG_A[0], patient_id="P01")] == ["P01"]
    with container.db.read() as conn:
        one = audit.list_access(conn, container.keys.fields(), id_type_code="01", id_no=id_no(1))
        two = audit.list_access(conn, container.keys.fields(), id_no=id_no(2))
        three = audit.list_access(conn, container.keys.fields(), id_no=id_no(3))
    assert [(x["org_code"], x["username"], x["action"]) for x in one] == [
        (SUPERVISOR[0], SUPERVISOR[4], "read_patient"),
        (ORG_A[0], ORG_A[4], "read_patient"),
    ]
    assert one[0]["target"] == f"patient:{ORG_A[0]}|P01" and one[0]["remote_addr"]
    assert len(two) == 1  # on the first page only
    assert three == []  # never returned, never logged
    # reading other kinds is not patient data
    upload(api_a, "dept", [row("dept", 1)])
    rows_of(api_a, "dept")
    with container.db.read() as conn:
        assert len(audit.list_access(conn, container.keys.fields())) == 3


def test_patient_filter_by_id_not_in_url(api_a: Api) -> None:
    assert upload(api_a, "patient", [row("patient", 1)]).status_code == 200
    r = read(api_a, "patient", id_no=id_no(1))  # unknown query parameters are ignored, not filters
    assert r.json()["total"] == 1
    spec = api_a.client.get("/openapi.json").json()["paths"][f"{BASE}/patients"]["get"]
    assert "id_no" not in {p["name"] for p in spec["parameters"]}


# -- instruments and QC records --------------------------------------------------------------------

def test_unknown_device_for_qc_record(api_a: Api, api_b: Api) -> None:
    assert upload(api_a, "device", [row("device", 1)]).status_code == 200
    assert upload(api_b, "device", [row("device", 7)]).status_code == 200
    r = upload(api_a, "qc_record", [row("qc_record", 1), row("qc_record", 2, device_code="M07"),
                                     row("qc_record", 3, device_code="NOPE")])
    assert r.status_code == 422
    p = problem(r, "qc_record[1].device_code", "reference")  # another institution's instrument does not count
    assert "M07" in p["message"]
    problem(r, "qc_record[2].device_code", "reference")
    assert len(r.json()["problems"]) == 2
    assert rows_of(api_a, "qc_record") == []
    kept = rejected(api_a)
    assert kept[0]["kind"] == "qc_record" and {x["rule"] for x in kept[0]["problems"]} == {"reference"}


def test_qc_date_range_and_filters(api_a: Api) -> None:
    assert upload(api_a, "device", [row("device", 1), row("device", 2)]).status_code == 200
    recs = [
        row("qc_record", 1, qc_date="2024-03-10"),
        row("qc_record", 1, qc_date="2024-03-11"),
        row("qc_record", 1, qc_date="2024-03-11", qc_level="L2", in_control="0"),
        row("qc_record", 1, qc_date="2024-03-12", device_code="M02"),
        row("qc_record", 2, qc_date="2024-03-13"),
    ]
    assert upload(api_a, "qc_record", recs).json()["rows"] == 5
    got = rows_of(api_a, "qc_record", day_from="2024-03-11", day_to="2024-03-12")
    assert [(g["qc_date"], g["device_code"], g["qc_level"]) for g in got] == [
        ("2024-03-11", "M01", "L1"), ("2024-03-11", "M01", "L2"), ("2024-03-12", "M02", "L1"),
    ]
    assert len(rows_of(api_a, "qc_record", day_from="2024-03-12")) == 2
    assert len(rows_of(api_a, "qc_record", day_to="2024-03-10")) == 1
    assert [g["qc_level"] for g in rows_of(api_a, "qc_record", in_control="0")] == ["L2"]
    assert len(rows_of(api_a, "qc_record", device_code="M02")) == 1
    assert len(rows_of(api_a, "qc_record", item_code="I02")) == 1
    r = read(api_a, "qc_record", day_from="2024-03-12", day_to="2024-03-11")
    assert r.status_code == 422
    problem(r, "day_from", "range")
    assert read(api_a, "qc_record", day_from="2024/03/12").status_code == 422


def test_qc_level_may_be_empty_and_reupload_keeps_one_row(api_a: Api) -> None:
    prepare(api_a, "qc_record")
    rec = row("qc_record", 1)
    del rec["qc_level"]
    assert upload(api_a, "qc_record", [rec]).status_code == 200
    assert upload(api_a, "qc_record", [rec | {"measured_value": "6.0"}]).status_code == 200
    got = rows_of(api_a, "qc_record")
    assert [(g["qc_level"], g["measured_value"]) for g in got] == [("", "6.0")]


def test_same_keys_in_two_institutions_are_separate(api_a: Api, api_b: Api) -> None:
    for api in (api_a, api_b):
        prepare(api, "qc_record")
        assert upload(api, "qc_record", [row("qc_record", 1)]).status_code == 200
        assert upload(api, "dept", [row("dept", 1, dept_name=api.headers["Authorization"][-6:])]).status_code == 200
    assert len(rows_of(api_a, "qc_record")) == 1 and len(rows_of(api_b, "qc_record")) == 1
    assert rows_of(api_a, "dept")[0]["dept_name"] != rows_of(api_b, "dept")[0]["dept_name"]


# -- service-level ---------------------------------------------------------------------------------

def test_service_rejects_unknown_filters(container: Container) -> None:
    from huren.errors import InvalidInput, NotFound

    who = Principal(ORG_A[0], ORG_A[4])
    with pytest.raises(InvalidInput) as exc:
        container.masterdata.read("patient", who, filters={"name": "x"})
    assert exc.value.problems[0].rule == "filter"
    with pytest.raises(InvalidInput):
        container.masterdata.read("dept", who, day_from=date(2024, 1, 1))
    with pytest.raises(NotFound):
        container.masterdata.read("nurse", who)
    with pytest.raises(NotFound):
        container.masterdata.upload("nurse", {}, who)
