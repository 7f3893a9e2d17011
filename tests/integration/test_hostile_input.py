"""No input answers 500 (issue 10 §1.12, §1.13): every REST operation of /openapi.json walked with
hostile values, the pages' date and id inputs, and the SOAP profile, on SQLite and PostgreSQL.

Hostile values: integers at and past the signed 64-bit range (2^63, -1, -2^63-1), the calendar's
ends (0001-01-01, 9999-12-31), 200-character text, NUL and a bidi override. Each must be refused
(4xx naming the field) or ignored, never a 500; the length and range rules are the domain's, so
the SOAP profile refuses the same values as the REST models.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from huren.crypto import b64, keyfiles, sm2, sm4
from huren.errors import Conflict, InvalidInput
from huren.services.container import Container
from huren.store.tables import reminder_log
from tests import samples
from tests.conftest import ORG_A, SUPERVISOR, Api, login
from tests.integration.test_soap_golden import CREDENTIAL

BIG = 2**63
LONG = "x" * 200
HOSTILE_INT = [BIG, -1, -(2**63) - 1, 2**64]
HOSTILE_DAY = ["0001-01-01", "9999-12-31"]
HOSTILE_TIME = ["0001-01-01T00:00:00", "9999-12-31T23:59:59"]
HOSTILE_TEXT = [LONG, "a\x00b", "a\u202eb", "0001-01-01"]


def hostile(schema: dict[str, Any] | None) -> list[Any]:
    schema = schema or {}
    if "anyOf" in schema:
        return [v for s in schema["anyOf"] for v in hostile(s)]
    kind, fmt = schema.get("type"), schema.get("format")
    if kind == "integer":
        return HOSTILE_INT
    if kind == "number":
        return [BIG, -1]
    if kind == "string" and fmt == "date":
        return HOSTILE_DAY
    if kind == "string" and fmt == "date-time":
        return HOSTILE_TIME
    if kind == "string" and fmt != "binary":
        return HOSTILE_TEXT
    return []


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m.upper(), p, op) for p, ops in spec["paths"].items() for m, op in ops.items()]


def _path(path: str, params: list[dict[str, Any]], name: str | None = None, value: Any = None) -> str:
    for p in params:
        if p["in"] == "path":
            v = value if p["name"] == name else 1
            path = path.replace("{" + p["name"] + "}", urllib.parse.quote(str(v), safe=""))
    return re.sub(r"\{[^}]+\}", "1", path)


def _body_schema(spec: dict[str, Any], op: dict[str, Any]) -> dict[str, Any] | None:
    schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    if not schema or "$ref" not in schema:
        return None
    return dict(spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]])


def test_every_rest_operation_refuses_hostile_values_without_a_500(client: TestClient, api_a: Api, api_sup: Api) -> None:
    spec = client.get("/openapi.json").json()
    callers = [api_a.headers, api_sup.headers]
    failures: list[str] = []
    refused_ints = 0
    tried = 0

    def send(method: str, path: str, what: str, **kw: Any) -> None:
        nonlocal tried, refused_ints
        for headers in callers:
            tried += 1
            r = client.request(method, path, headers=headers, **kw)
            if r.status_code >= 500:
                failures.append(f"{method} {path} {what}: {r.status_code} {r.text[:120]}")
            elif r.status_code == 422 and "range" in r.text + "less_than" + "greater_than":
                refused_ints += 1

    for method, path, op in operations(spec):
        params = op.get("parameters", [])
        for p in params:
            for v in hostile(p.get("schema")):
                query = {p["name"]: str(v)} if p["in"] == "query" else {}
                body = {} if method in ("POST", "PUT") else None
                send(method, _path(path, params, p["name"], v), f"{p['name']}={v!r:.30}", params=query, json=body)
        schema = _body_schema(spec, op)
        for name, prop in (schema or {}).get("properties", {}).items():
            for v in hostile(prop):
                send(method, _path(path, params), f"body.{name}={v!r:.30}", json={name: v})
    assert tried > 300  # the walk did reach the operations
    assert failures == []


@pytest.mark.parametrize(
    ("path", "field"),
    [
        # a report or rejected-submission path holds a ref, not a number: /lab-reports/{BIG} and
        # /quality/rejected/{BIG}/payload are 404s (tests/integration/test_opaque_refs.py, test_rejected_refs.py)
        (f"/api/v1/quality/rejected?offset={BIG}", "offset"),
        (f"/api/v1/directory/depts?offset={BIG}", "offset"),
        ("/api/v1/quality/completeness?day_to=0001-01-01", "day_to"),
        ("/api/v1/quality/timeliness?day_to=9999-12-31", "day_to"),
        ("/api/v1/statistics/recognition?day_from=0001-01-01", "day_from"),
    ],
)
def test_out_of_range_values_are_422_naming_the_field(api_sup: Api, path: str, field: str) -> None:
    r = api_sup.get(path)
    assert r.status_code == 422, r.text
    assert field in [p["field"] for p in r.json()["problems"]]


def test_recognition_bodies_refuse_control_and_bidi_characters(api_a: Api) -> None:
    r = api_a.post("/api/v1/recognition/recent", {"id_no": samples.ID_NO, "doc_name": "张\u202e三"})
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "doc_name", r.text
    assert "U+202E" in r.json()["problems"][0]["message"]
    r = api_a.post("/api/v1/recognition/exists", {"id_no": samples.ID_NO, "lab": ["A\x00"]})
    assert r.status_code == 422 and r.json()["problems"][0]["field"].startswith("lab"), r.text
    r = api_a.post("/api/v1/recognition/recent", {"id_no": 650102199001011234})  # a number is not text
    assert r.status_code == 422 and r.json()["problems"][0]["rule"] == "string_type", r.text


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("name", "张\x00三", "text"),
        ("name", "张\u202e三", "text"),
        ("author_name", "李\u2066四", "text"),
        ("patient_id", 1878, "type"),
        ("card_no", True, "type"),
        ("author_dtime", "0001-01-01 00:00:00", "date_range"),
        ("retrieve_date", "9999-12-31", "date_range"),
    ],
)
def test_reports_refuse_unclean_text_numbers_booleans_and_far_dates(api_a: Api, field: str, value: Any, rule: str) -> None:
    payload = samples.lab()
    payload["labmaster"][field] = value
    r = api_a.post("/api/v1/lab-reports", payload)
    assert r.status_code == 422, r.text
    assert [(p["field"], p["rule"]) for p in r.json()["problems"]] == [(f"labmaster.{field}", rule)]


# -- pages ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    [
        "/ui/quality/completeness?day_to=0001-01-01",
        "/ui/quality/completeness?day_from=9999-12-31",
        "/ui/quality/timeliness?day_to=0001-01-01",
        "/ui/stats?day_from=0001-01-01",
        "/ui/stats?day_to=9999-12-31",
        f"/ui/quality/rejected/{BIG}/payload",
        f"/ui/quality/rejected?page={BIG}",
    ],
)
def test_page_inputs_out_of_range_are_refused_not_500(client: TestClient, path: str) -> None:
    token = login(client, SUPERVISOR).headers["Authorization"].split()[1]
    r = client.get(path + ("&" if "?" in path else "?") + f"token={token}")
    assert 400 <= r.status_code < 500, r.text[:300]


@pytest.mark.parametrize("path", [f"/ui/report/lab/{BIG}", f"/ui/report/exam/{BIG}/pdf"])
def test_doctor_page_ids_out_of_range_are_refused_not_500(client: TestClient, path: str) -> None:
    token = login(client, ORG_A).headers["Authorization"].split()[1]
    r = client.get(f"{path}?token={token}")
    assert 400 <= r.status_code < 500, r.text[:300]


# -- SOAP ------------------------------------------------------------------------------------------------------
def _soap(client: TestClient, platform: sm2.Sm2Key, method: str, param: str, data: str) -> str:
    key = os.urandom(16)
    cred = CREDENTIAL.format(code=ORG_A[0], name=ORG_A[1], user=ORG_A[4], password=ORG_A[5])
    fields = {
        param: b64.b64e(sm4.sm4_encrypt(key, data.encode())),
        "strCredential": b64.b64e(sm4.sm4_encrypt(key, cred.encode())),
        "strKey": b64.b64e(sm2.sm2_encrypt(platform.public, key)),
    }
    inner = "".join(f"<t:{k}>{v}</t:{k}>" for k, v in fields.items())
    body = (
        '<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
        f'<soap:Body><t:{method} xmlns:t="http://tempuri.org/">{inner}</t:{method}></soap:Body></soap:Envelope>'
    )
    r = client.post("/Myhealth", content=body.encode(), headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f"http://tempuri.org/{method}"})
    assert r.status_code == 200, r.text
    m = re.search(rf"<{method}Result>(.*?)</{method}Result>", r.text, re.S)
    assert m is not None, r.text
    return m.group(1)


@pytest.mark.parametrize(
    ("attrs", "field"),
    [
        ({"event_no": LONG}, "event_no"),
        ({"doc_name": "x" * 129}, "doc_name"),
        ({"dept_code": "A&#x202E;B"}, "dept_code"),
    ],
)
def test_soap_exists_refuses_a_visit_over_the_domain_rules(
    client: TestClient, container: Container, attrs: dict[str, str], field: str
) -> None:
    """ExistsReCureInfo with a 200-character event_no answered ``error:服务器内部错误`` on
    PostgreSQL and was stored unchecked on SQLite: the ≤ 128 rule lived only in the REST model."""
    platform = keyfiles.init_platform_key(container.settings.key_dir)
    extra = " ".join(f'{k}="{v}"' for k, v in attrs.items())
    data = f'<root id_no="{samples.ID_NO}" id_type="01" {extra}><check><item>115</item></check><lab/></root>'
    answer = _soap(client, platform, "ExistsReCureInfo", "strFilter", data)
    assert answer.startswith("error:") and field in answer and "服务器内部错误" not in answer, answer
    with container.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(reminder_log)).scalar() == 0


# -- the store's edge ------------------------------------------------------------------------------------------
def test_the_store_translates_database_refusals(container: Container) -> None:
    """A value the rules missed reaches the database: a range error is InvalidInput (422), a unique
    key a Conflict (409) — translated once, in huren.store.database, never a 500."""
    from huren.store import reports

    with pytest.raises(InvalidInput) as bad, container.db.read() as conn:
        reports.get_master(conn, "lab", BIG)
    assert bad.value.problems and bad.value.problems[0].rule == "range"
    with pytest.raises(Conflict):
        container.directory.add_org(ORG_A[0], "重复", "650102", "3甲")


@pytest.mark.parametrize("method", ["GetCheckLabList", "GetCheckLabInfo", "GetLabInfo", "GetExamInfo"])
@pytest.mark.parametrize(
    ("id_no", "id_type", "field"),
    [("9" * 200, "02", "id_no"), ("A\u202eB", "02", "id_no"), ("A&#x7f;B", "02", "id_no"), ("123", "x" * 50, "id_type_code")],
)
def test_soap_queries_refuse_a_patient_over_the_domain_rules(
    client: TestClient, container: Container, method: str, id_no: str, id_type: str, field: str
) -> None:
    """GetLabInfo with a 200-character id_no answered ``error:服务器内部错误`` on PostgreSQL (the access
    log's VARCHAR(128), written straight on the driver's cursor): the rule is the domain's now."""
    platform = keyfiles.init_platform_key(container.settings.key_dir)
    data = f"<root><id_no>{id_no}</id_no><id_type>{id_type}</id_type></root>"
    answer = _soap(client, platform, method, "strFilter", data)
    assert answer.startswith("error:") and field in answer and "服务器内部错误" not in answer, answer


def test_the_direct_cursor_path_translates_too(container: Container) -> None:
    """Statements run straight on the driver's cursor (huren.store.direct) get the same translation."""
    from huren.store import audit as audit_store

    row = {"at": container.clock.now(), "org_code": ORG_A[0], "username": "his", "action": "read",
           "id_type_code": "01", "id_no": "1", "target": "t", "remote_addr": None}
    bad = [{"id_no": "\ud800"}] + ([] if container.db.is_sqlite else [{"id_no": "9" * 800}, {"target": "a\x00b"}])
    for change in bad:
        with pytest.raises(InvalidInput), container.db.write() as conn:
            audit_store.log_access_many(conn, [row | change])


def _values(xml: str) -> list[tuple[int, int]]:
    """Where each text value and attribute value of a sample lies."""
    spans = [m.span(1) for m in re.finditer(r'="([^"]*)"', xml)]
    spans += [m.span(1) for m in re.finditer(r">([^<>\s][^<>]*)<", xml)]
    return sorted(spans)


SOAP_HOSTILE = ["9" * 200, "9999-12-31 23:59:59", "A\u202eB", str(BIG)]


def test_every_soap_method_answers_hostile_values_without_a_server_error(client: TestClient, container: Container) -> None:
    """Each value of each seed sample (report, daily counts, void, queries, decisions) replaced in
    turn by a hostile one: every answer is ``ok`` or ``error:`` with a reason, never the server's."""
    from tests.integration import test_soap_golden as golden

    platform = keyfiles.init_platform_key(container.settings.key_dir)
    cases = [
        ("ArchiveAutoReport", "strReportInfo", samples.LAB_XML),
        ("ArchiveAutoReport", "strReportInfo", samples.DAILY_XML),
        ("DeleteLabInfo", "strFilter", golden.VOID_LAB),
        ("GetCheckLabList", "strFilter", golden.LIST_FILTER),
        ("GetCheckLabInfo", "strFilter", golden.DETAIL_FILTER),
        ("ExistsReCureInfo", "strFilter", golden.EXISTS_FILTER.replace(".....", "")),
        ("SubmitAccept", "strReportInfo", golden.ACCEPT_XML),
        ("GetLabInfo", "strFilter", golden.INFO_FILTER),
    ]
    failures, tried = [], 0
    for method, param, xml in cases:
        spans = _values(xml)
        for start, end in spans[:: max(1, len(spans) // 12)]:  # about 12 fields a sample: the suite stays fast
            for value in SOAP_HOSTILE:
                tried += 1
                answer = _soap(client, platform, method, param, xml[:start] + value + xml[end:])
                if "服务器内部错误" in answer or not answer:
                    failures.append(f"{method} {xml[start - 30:start]}…={value[:20]}: {answer[:80]}")
    assert tried > 150
    assert failures == []


PAGE_PARAMS = {
    "/ui/doctor": ["id_no", "id_type_code", "event_no", "doc_name", "dept_code"],
    "/ui/widget": ["id_no", "id_type_code", "event_no", "days"],
    "/ui/panel": ["id_no", "id_type_code", "days", "doc_code"],
    "/ui/decide": ["id_no", "id_type_code", "check", "lab", "event_no", "event_type"],
    "/ui/report/lab/1": ["event_no", "id_no"],
    "/ui/quality/completeness": ["org_code", "day_from", "day_to"],
    "/ui/quality/timeliness": ["org_code", "day_from", "day_to", "late_hours"],
    "/ui/quality/rejected": ["org_code", "only_open", "page"],
    "/ui/stats": ["by", "org_code", "day_from", "day_to"],
    "/ui/catalog": ["kind", "q"],
    "/ui/catalog/download": ["kind", "format"],
}
PAGE_HOSTILE = [str(BIG), "-1", "0001-01-01", "9999-12-31", LONG, "a\x00b", "a\u202eb", "1e999", "NaN"]


@pytest.mark.parametrize("org", [ORG_A, SUPERVISOR], ids=["doctor", "supervisor"])
def test_every_page_input_answers_hostile_values_without_a_500(client: TestClient, org: tuple[str, ...]) -> None:
    token = login(client, org).headers["Authorization"].split()[1]
    base = {"id_type_code": "01", "id_no": samples.ID_NO, "token": token}
    failures = []
    for path, names in PAGE_PARAMS.items():
        for name in names:
            for value in PAGE_HOSTILE:
                r = client.get(path, params=base | {name: value})
                if r.status_code >= 500:
                    failures.append(f"{path}?{name}={value[:20]!r}: {r.status_code}")
    assert failures == []


@pytest.mark.parametrize(("check", "lab", "field"), [("C" * 300, "250301002", "check[0]"), ("115", "A\u202eB", "lab[0]")])
def test_soap_exists_refuses_ordered_codes_over_the_domain_rules(
    client: TestClient, container: Container, check: str, lab: str, field: str
) -> None:
    """REST refused a 300-character ordered code (its model) while SOAP answered it: the rule is
    the domain's (huren.domain.answers.check_orders), for the gateway's cache too."""
    platform = keyfiles.init_platform_key(container.settings.key_dir)
    data = f'<root id_no="{samples.ID_NO}" id_type="01"><check><item>{check}</item></check><lab><item>{lab}</item></lab></root>'
    answer = _soap(client, platform, "ExistsReCureInfo", "strFilter", data)
    assert answer.startswith("error:") and field in answer, answer
