"""Issue 11 item 11: one catalog item edited in the page (and by REST) with an audit entry (who,
when, old → new), refused for a non-supervisor; the unit column in Chinese; the fee column
imported, exported and shown; a hospital admin sees its unmapped local codes."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from huren.services.container import Container
from tests import samples
from tests.conftest import ORG_A, SUPERVISOR, Api
from tests.web.test_login import web_login

ADMIN_A = (ORG_A[0], ORG_A[1], ORG_A[2], ORG_A[3], "admin", "password-admin-a")
CATALOG = (
    "kind,code,name,unit,validity_days,收费标准\n"
    "lab,250301002,血清白蛋白测定,g/L,30,12.5\n"
    "lab,250102035,尿液分析,qualitative,3,\n"
    "exam,115,CT平扫,,90,300\n"
).encode()


@pytest.fixture
def admin(container: Container) -> None:
    container.directory.add_credential(ORG_A[0], ADMIN_A[4], ADMIN_A[5], role="admin")


def _import(api_sup: Api) -> None:
    r = api_sup.put("/api/v1/catalog/file?filename=c.csv", content=CATALOG)
    assert r.status_code == 200, r.text


def _patch(api: Api, path: str, body: object) -> Any:
    return api.client.patch(path, json=body, headers=api.headers)


def _edit_form(html: str) -> str:
    m = re.search(r'<form class="edit-item panel".*?</form>', html, re.S)
    assert m, "no edit form"
    return m.group(0)


def test_edit_in_the_page_saves_and_audits(client: TestClient, api_sup: Api, container: Container) -> None:
    _import(api_sup)
    csrf = web_login(client, SUPERVISOR, next_url="/ui/catalog")
    page = client.get("/ui/catalog").text
    assert "12.50" in page and "定性" in page and "qualitative" not in page  # fee shown, unit in Chinese
    form = _edit_form(client.get("/ui/catalog", params={"edit": "lab:250301002"}).text)
    assert 'name="validity_days"' in form and 'value="30"' in form and 'value="12.50"' in form
    r = client.post("/ui/catalog/item", data={
        "csrf_token": csrf, "kind": "lab", "code": "250301002", "validity_days": "14", "recognizable": "1",
        "min_level": "3", "region_scope": "6501", "fee": "15",
    })
    assert r.status_code == 200, r.text
    assert "已保存项目 250301002" in r.text and "有效天数 30 → 14" in r.text and "已记入操作日志" in r.text
    [item] = container.catalog.list("lab", ["250301002"])
    assert (item["validity_days"], item["min_level"], item["region_scope"], item["fee"]) == (14, 3, "6501", 15.0)
    log = [e for e in container.audit.history() if e["action"] == "catalog_edit"]
    assert len(log) == 1 and log[0]["username"] == SUPERVISOR[4] and log[0]["at"]
    assert "validity_days 30→14" in log[0]["target"] and "fee 12.50→15.00" in log[0]["target"]
    assert "min_level 2→3" in log[0]["target"] and "recognizable" not in log[0]["target"]  # only what changed
    # a bad value: refused in Chinese, nothing saved, no developer identifier shown
    r = client.post("/ui/catalog/item", data={
        "csrf_token": csrf, "kind": "lab", "code": "250301002", "validity_days": "0", "min_level": "3",
        "region_scope": "", "fee": "abc",
    })
    assert r.status_code == 422 and "有效天数" in r.text and "收费标准" in r.text
    assert "validity_days" not in re.sub(r'name="[a-z_]+"', "", r.text.split('<form class="edit-item')[0])
    assert container.catalog.list("lab", ["250301002"])[0]["validity_days"] == 14
    # export carries the fee, and importing the export gives it back
    csv = client.get("/ui/catalog/download", params={"format": "csv", "kind": "lab"}).text
    assert csv.splitlines()[0].endswith(",fee") and "15.00" in csv


def test_edit_is_refused_for_a_non_supervisor(client: TestClient, api_sup: Api, api_a: Api, admin: None,
                                               container: Container) -> None:
    _import(api_sup)
    csrf = web_login(client, ADMIN_A, next_url="/ui/catalog")
    assert 'class="edit-item' not in client.get("/ui/catalog", params={"edit": "lab:250301002"}).text
    r = client.post("/ui/catalog/item", data={"csrf_token": csrf, "kind": "lab", "code": "250301002",
                                              "validity_days": "1", "min_level": "2", "region_scope": "", "fee": ""})
    assert r.status_code == 403
    assert _patch(api_a, "/api/v1/catalog/items/lab/250301002", {"validity_days": 1}).status_code == 403
    assert container.catalog.list("lab", ["250301002"])[0]["validity_days"] == 30
    assert not [e for e in container.audit.history() if e["action"] == "catalog_edit"]
    # REST, as the supervisor: saved, audited; an unknown field is refused
    r = _patch(api_sup, "/api/v1/catalog/items/lab/250301002", {"fee": None, "recognizable": 0})
    assert r.status_code == 200, r.text
    assert r.json()["changed"] == {"recognizable": [True, False], "fee": [12.5, None]}
    assert _patch(api_sup, "/api/v1/catalog/items/lab/250301002", {"name": "x"}).status_code == 422
    assert _patch(api_sup, "/api/v1/catalog/items/lab/NOPE", {"fee": 1}).status_code == 404


def test_admin_sees_its_unmapped_local_codes(client: TestClient, api_sup: Api, api_a: Api, admin: None) -> None:
    _import(api_sup)
    assert api_a.post("/api/v1/lab-reports", samples.lab()).status_code == 200  # items 250301002 and AG (阴离子间隙)
    r = api_a.get("/api/v1/code-map/unmapped")
    assert r.status_code == 200
    codes = {u["local_code"]: u for u in r.json()["unmapped"]}
    assert "AG" in codes and codes["AG"]["local_name"] == "阴离子间隙" and "250301002" not in codes
    web_login(client, ADMIN_A, next_url="/ui/catalog")
    html = client.get("/ui/catalog").text
    m = re.search(r'<table class="grid sortable" id="unmapped">.*?</table>', html, re.S)
    assert m and 'data-code="AG"' in m.group(0) and "阴离子间隙" in m.group(0)
    # once mapped, it is no longer listed
    good = "kind,local_code,local_name,std_code\nlab,AG,阴离子间隙,250102035\n".encode()
    assert api_a.put("/api/v1/code-map/file?filename=m.csv", content=good).status_code == 200
    assert "AG" not in {u["local_code"] for u in api_a.get("/api/v1/code-map/unmapped").json()["unmapped"]}
