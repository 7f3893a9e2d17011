"""Standard item catalog and code mapping on SQLite and PostgreSQL: REST, service, CLI, demo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from huren.bootstrap import Container, build
from huren.context import Principal
from huren.errors import Forbidden, InvalidInput
from huren.services.catalog import CatalogService
from huren.settings import Settings
from huren.wire import tabular
from tests.conftest import ORG_A, ORG_B, SUPERVISOR, Api

ROOT = Path(__file__).resolve().parents[2]
DEMO = resources.files("huren.demo").joinpath("data/catalog-demo.csv").read_bytes()
SUP = Principal(SUPERVISOR[0], SUPERVISOR[4], "supervisor")
HOSPITAL_A = Principal(ORG_A[0], ORG_A[4], "hospital")


def _problems(resp: Any, status: int) -> set[tuple[str, str]]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert {"code", "message", "problems"} <= set(body) <= {"code", "message", "problems", "rejected_id"}, body
    assert all(p["message"] for p in body["problems"]), body
    return {(p["field"], p["rule"]) for p in body["problems"]}


def _put_file(api: Api, path: str, data: bytes, content_type: str, **params: str) -> Any:
    return api.put(path, content=data, headers={"Content-Type": content_type}, params=params)


def _import_demo(api: Api) -> Any:
    return _put_file(api, "/api/v1/catalog/file", DEMO, "text/csv", filename="catalog-demo.csv")


def _catalog(api: Api, **params: str) -> list[dict[str, Any]]:
    r = api.get("/api/v1/catalog", params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == len(body["items"])
    return list(body["items"])


def _without_time(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in i.items() if k != "updated_at"} for i in items]


# -- the catalog ------------------------------------------------------------------------------


def test_import_demo_csv(api_sup: Api, api_a: Api) -> None:
    r = _import_demo(api_sup)
    assert r.status_code == 200, r.text
    assert r.json() | {} == {"code": "ok", "message": "ok", "imported": 72, "created": 72, "replaced": 0, "lab": 53, "exam": 19}

    items = _catalog(api_a)  # any institution may read it (XC-P6)
    assert len(items) == 72
    by = {(i["kind"], i["code"]): i for i in items}
    alb = by["lab", "250301002"]
    assert (alb["name"], alb["unit"], alb["validity_days"]) == ("血清白蛋白测定", "g/L", 30)
    assert (alb["recognizable"], alb["min_level"], alb["region_scope"]) == (True, 2, "")
    assert "鄂卫通〔2023〕56号" in alb["source_note"] and alb["updated_at"]
    cbc = by["lab", "250101015"]
    assert cbc["unit"] == (
        "panel: WBC/NEUT/LYMPH/MONO/EO/BASO 10^9/L & %, RBC 10^12/L, HGB g/L, HCT %, MCV fL, MCH pg, MCHC g/L, PLT 10^9/L"
    )
    assert by["lab", "250304001"]["validity_days"] == 7
    assert by["exam", "210300001"]["name"] == "X线计算机体层(CT)扫描" and by["exam", "210300001"]["validity_days"] == 90
    assert by["exam", "230200055"]["validity_days"] == 180
    assert len(_catalog(api_a, kind="lab")) == 53
    assert [i["code"] for i in _catalog(api_a, kind="exam", codes="210300001, 250301002")] == ["210300001"]


def test_reimport_replaces_the_same_kind_and_code(api_sup: Api, container: Container) -> None:
    assert _import_demo(api_sup).json()["created"] == 72
    # with a BOM this time, as Excel writes it: the same 72 rows, replaced
    r = _put_file(api_sup, "/api/v1/catalog/file", b"\xef\xbb\xbf" + DEMO, "text/csv")
    assert r.status_code == 200, r.text
    assert (r.json()["created"], r.json()["replaced"]) == (0, 72)
    r = api_sup.post(
        "/api/v1/catalog",
        {"rows": [{"kind": "lab", "code": "250301002", "name": "白蛋白", "unit": "g/L", "validity_days": 14, "recognizable": "否"},
                  {"kind": "lab", "code": "LOCAL-NEW", "name": "新项目", "validity_days": "7", "min_level": 3, "region_scope": "650100"}]},
    )  # fmt: skip
    assert r.status_code == 200, r.text
    assert (r.json()["created"], r.json()["replaced"]) == (1, 1)
    items = {i["code"]: i for i in container.catalog.list("lab")}
    assert len(items) == 54
    assert (items["250301002"]["name"], items["250301002"]["validity_days"], items["250301002"]["recognizable"]) == ("白蛋白", 14, False)
    assert items["250301002"]["source_note"] == ""  # replaced as a whole row
    assert (items["LOCAL-NEW"]["min_level"], items["LOCAL-NEW"]["region_scope"]) == (3, "650100")


def test_xlsx_round_trip(api_sup: Api, api_a: Api) -> None:
    assert _import_demo(api_sup).status_code == 200
    api_sup.post(
        "/api/v1/catalog",
        [{"kind": "exam", "code": "X-1", "name": "=HYPERLINK(\"x\")", "validity_days": 5, "recognizable": 0,
          "min_level": "一级", "region_scope": "65;6501", "source_note": "逗号, 引号\" 换行\n结束"}],
    )  # fmt: skip
    before = _without_time(_catalog(api_a))
    assert len(before) == 73

    r = api_a.get("/api/v1/catalog", params={"format": "xlsx"})
    assert r.status_code == 200
    assert r.headers["content-type"] == tabular.XLSX_TYPE
    assert 'filename="catalog.xlsx"' in r.headers["content-disposition"]
    exported = r.content
    assert exported.startswith(b"PK\x03\x04")

    # change the catalog, then import the export: the catalog is the exported one again
    api_sup.post("/api/v1/catalog", [{"kind": "lab", "code": "250301002", "name": "改过", "validity_days": 1}])
    assert _without_time(_catalog(api_a)) != before
    r = _put_file(api_sup, "/api/v1/catalog/file", exported, tabular.XLSX_TYPE)  # no file name: the content tells
    assert r.status_code == 200, r.text
    assert (r.json()["imported"], r.json()["replaced"]) == (73, 73)
    assert _without_time(_catalog(api_a)) == before


def test_csv_download_round_trip(api_sup: Api, api_a: Api) -> None:
    assert _import_demo(api_sup).status_code == 200
    before = _without_time(_catalog(api_a))
    r = api_a.get("/api/v1/catalog", params={"format": "csv", "kind": "lab"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert 'filename="catalog-lab.csv"' in r.headers["content-disposition"]
    assert r.content.startswith(b"\xef\xbb\xbfkind,code,name,unit,validity_days,recognizable,min_level,region_scope,source_note,fee\r\n")
    assert r.content.count(b"\r\nlab,") == 53
    r = _put_file(api_sup, "/api/v1/catalog/file", r.content, "application/octet-stream", filename="catalog-lab.csv")
    assert r.status_code == 200, r.text
    assert r.json()["replaced"] == 53
    assert _without_time(_catalog(api_a)) == before


def test_chinese_headers_file(api_sup: Api, container: Container) -> None:
    data = (
        "类型,项目编码,项目名称,单位,有效天数,是否互认,最低机构等级,适用区域,来源\n"
        "检验,250304001,钾测定,mmol/L,7,是,三级,65,湖北\n"
        '检查,220600004,心脏彩色多普勒超声,,90,否,1,"6501, 6523",\n'
    ).encode()
    r = _put_file(api_sup, "/api/v1/catalog/file", data, "text/csv", filename="目录.csv")
    assert r.status_code == 200, r.text
    assert r.json()["imported"] == 2
    k = container.catalog.entries("lab", ["250304001", "nope"])
    assert list(k) == ["250304001"]
    assert (k["250304001"]["recognizable"], k["250304001"]["min_level"], k["250304001"]["region_scope"]) == (True, 3, "65")
    echo = container.catalog.entries("exam", ["220600004"])["220600004"]
    assert (echo["recognizable"], echo["min_level"], echo["region_scope"], echo["unit"]) == (False, 1, "6501,6523", "")


def test_xlsx_upload_with_chinese_headers_and_kind(api_sup: Api, container: Container) -> None:
    data = tabular.write_xlsx(["项目编码", "项目名称", "有效天数"], [["250304001", "钾测定", 7], [250304002, "钠测定", "7"]])
    r = _put_file(api_sup, "/api/v1/catalog/file", data, tabular.XLSX_TYPE, filename="lab.xlsx", kind="lab")
    assert r.status_code == 200, r.text
    assert [(i["kind"], i["code"], i["validity_days"]) for i in container.catalog.list()] == [
        ("lab", "250304001", 7),
        ("lab", "250304002", 7),
    ]
    # without a kind column and without ?kind=, every row would be a guess: refused
    assert ("header.kind", "required") in _problems(_put_file(api_sup, "/api/v1/catalog/file", data, tabular.XLSX_TYPE), 422)


def test_bad_rows_import_nothing(api_sup: Api, container: Container) -> None:
    data = (
        "kind,code,name,unit,validity_days,source_note\n"
        "lab,250301001,血清总蛋白测定,g/L,30,ok\n"
        "blood,250301002,血清白蛋白测定,g/L,30,\n"
        "lab,250302001,葡萄糖测定,mmol/L,0,\n"
        "lab,250303001,血清总胆固醇测定,mmol/L,abc,\n"
        "exam,,CT,,90,\n"
    ).encode()
    r = _put_file(api_sup, "/api/v1/catalog/file", data, "text/csv", filename="bad.csv")
    assert _problems(r, 422) == {
        ("row[3].kind", "dictionary"),
        ("row[4].validity_days", "positive"),
        ("row[5].validity_days", "integer"),
        ("row[6].code", "required"),
    }
    assert r.json()["code"] == "invalid_input"
    assert container.catalog.list() == []  # not even the good first row

    r = api_sup.post("/api/v1/catalog", {"rows": [{"kind": "lab", "code": "1", "name": "x", "validity_days": 1}, {"kind": "lab", "name": "y", "validity_days": -1}]})
    assert _problems(r, 422) == {("row[1].code", "required"), ("row[1].validity_days", "positive")}
    assert container.catalog.list() == []


def test_unreadable_bodies(api_sup: Api) -> None:
    assert _problems(_put_file(api_sup, "/api/v1/catalog/file", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(64), "application/vnd.ms-excel"), 422) == {("file", "format")}
    assert _problems(_put_file(api_sup, "/api/v1/catalog/file", b"junk", tabular.XLSX_TYPE), 422) == {("file", "format")}
    assert _problems(_put_file(api_sup, "/api/v1/catalog/file", DEMO, "text/csv", filename="catalog.pdf"), 422) == {("file", "format")}
    assert _problems(api_sup.post("/api/v1/catalog", content=b"{", headers={"Content-Type": "application/json"}), 400) == {("body", "json")}
    assert ("kind", "literal_error") in _problems(api_sup.get("/api/v1/catalog", params={"kind": "blood"}), 422)
    assert ("format", "literal_error") in _problems(api_sup.get("/api/v1/catalog", params={"format": "pdf"}), 422)


def test_only_a_supervisor_imports(api_a: Api, container: Container, client: Any) -> None:
    assert _problems(_import_demo(api_a), 403) == {("role", "access")}  # the one access policy names the role
    r = api_a.post("/api/v1/catalog", [{"kind": "lab", "code": "1", "name": "x", "validity_days": 1}])
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    assert container.catalog.list() == []
    with pytest.raises(Forbidden):
        container.catalog.import_file(DEMO, "catalog-demo.csv", Principal(ORG_A[0], "admin", "admin"))
    assert client.get("/api/v1/catalog").status_code == 401


# -- mapping --------------------------------------------------------------------------------------


def test_mapping_upload_and_list(api_sup: Api, api_a: Api, api_b: Api) -> None:
    assert _import_demo(api_sup).status_code == 200
    good = [
        {"kind": "lab", "local_code": "ALB", "local_name": "白蛋白(溴甲酚绿法)", "std_code": "250301002"},
        {"kind": "exam", "local_code": "CT-HEAD", "local_name": "颅脑CT平扫", "std_code": "210300001"},
    ]
    # an unknown standard code, and a lab code given as an exam one: nothing saved
    r = api_a.post(
        "/api/v1/code-map",
        {"mappings": [*good, {"kind": "lab", "local_code": "XX", "std_code": "999999999"}, {"kind": "exam", "local_code": "K", "std_code": "250304001"}]},
    )
    assert _problems(r, 422) == {("row[2].std_code", "not_in_catalog"), ("row[3].std_code", "not_in_catalog")}
    assert api_a.get("/api/v1/code-map").json()["count"] == 0

    r = api_a.post("/api/v1/code-map", {"mappings": good})
    assert r.status_code == 200, r.text
    assert (r.json()["mapped"], r.json()["lab"], r.json()["exam"]) == (2, 1, 1)
    body = api_a.get("/api/v1/code-map").json()
    assert body["org_code"] == ORG_A[0]
    assert [(m["kind"], m["local_code"], m["std_code"], m["std_name"]) for m in body["mappings"]] == [
        ("exam", "CT-HEAD", "210300001", "X线计算机体层(CT)扫描"),
        ("lab", "ALB", "250301002", "血清白蛋白测定"),
    ]
    assert [m["local_code"] for m in api_a.get("/api/v1/code-map", params={"kind": "lab"}).json()["mappings"]] == ["ALB"]
    assert api_b.get("/api/v1/code-map").json()["count"] == 0  # each institution sees its own

    # remapping a local code replaces it
    r = api_a.post("/api/v1/code-map", [{"kind": "lab", "local_code": "ALB", "local_name": "白蛋白", "std_code": "250301001"}])
    assert r.status_code == 200, r.text
    labs = api_a.get("/api/v1/code-map", params={"kind": "lab"}).json()["mappings"]
    assert [(m["local_code"], m["local_name"], m["std_code"]) for m in labs] == [("ALB", "白蛋白", "250301001")]


def test_mapping_of_another_institution_refused(api_sup: Api, api_a: Api) -> None:
    assert _import_demo(api_sup).status_code == 200
    r = api_a.post("/api/v1/code-map", [{"org_code": ORG_B[0], "kind": "lab", "local_code": "ALB", "std_code": "250301002"}])
    assert _problems(r, 403) == {("row[0].org_code", "ownership")}
    r = api_a.post("/api/v1/code-map", [{"org_code": ORG_A[0], "kind": "lab", "local_code": "ALB", "std_code": "250301002"}])
    assert r.status_code == 200, r.text


def test_mapping_file_round_trip(api_sup: Api, api_a: Api) -> None:
    assert _import_demo(api_sup).status_code == 200
    rows = [{"kind": "lab", "local_code": f"L{i}", "local_name": f"本地{i}", "std_code": "250304001"} for i in range(3)]
    assert api_a.post("/api/v1/code-map", rows).status_code == 200
    for fmt in ("csv", "xlsx"):
        r = api_a.get("/api/v1/code-map", params={"format": fmt})
        assert r.status_code == 200
        assert r.headers["content-type"].startswith(tabular.MEDIA_TYPES[fmt])
        assert f'filename="code-map-{ORG_A[0]}.{fmt}"' in r.headers["content-disposition"]
        up = _put_file(api_a, "/api/v1/code-map/file", r.content, tabular.MEDIA_TYPES[fmt], filename=f"map.{fmt}")
        assert up.status_code == 200, up.text
        assert up.json()["mapped"] == 3
    # Chinese headers, and a bad row names its spreadsheet row
    data = "类型,本地编码,本地名称,标准编码\n检验,ALB,白蛋白,250301002\n检验,GLU,血糖,250302999\n".encode()
    r = _put_file(api_a, "/api/v1/code-map/file", data, "text/csv")
    assert _problems(r, 422) == {("row[3].std_code", "not_in_catalog")}
    assert len(api_a.get("/api/v1/code-map").json()["mappings"]) == 3


def test_resolve(container: Container) -> None:
    container.catalog.import_file(DEMO, "catalog-demo.csv", SUP)
    container.catalog.upload_mappings(
        [
            {"kind": "lab", "local_code": "ALB", "std_code": "250301002"},
            {"kind": "lab", "local_code": "WBC", "std_code": "250101015"},
            {"kind": "lab", "local_code": "HGB", "std_code": "250101015"},
            {"kind": "lab", "local_code": "250304002", "std_code": "250304002"},  # a standard code onto itself: allowed
        ],
        HOSPITAL_A,
    )
    std, unmapped = container.catalog.resolve(ORG_A[0], "lab", ["ALB", "250302001", "AST", "WBC", "HGB", "250304002", "ALB", " ", "210300001"])
    assert std == ["250301002", "250302001", "250101015", "250304002"]  # in order, no repeats
    assert unmapped == ["AST", "210300001"]  # an exam code is not a lab code; nothing is guessed
    # another institution has no mappings: only standard codes pass
    assert container.catalog.resolve(ORG_B[0], "lab", ["ALB", "250304002"]) == (["250304002"], ["ALB"])
    assert container.catalog.resolve(ORG_A[0], "exam", []) == ([], [])
    with pytest.raises(InvalidInput):
        container.catalog.resolve(ORG_A[0], "blood", ["ALB"])


def test_a_standard_code_cannot_be_mapped_onto_another(container: Container) -> None:
    """resolve passes a catalog code through (as the recognition engine does), so such a mapping
    would be silently ignored: it is refused instead."""
    container.catalog.import_file(DEMO, "catalog-demo.csv", SUP)
    with pytest.raises(InvalidInput) as exc:
        container.catalog.upload_mappings(
            [{"kind": "lab", "local_code": "ALB", "std_code": "250301002"}, {"kind": "lab", "local_code": "250304002", "std_code": "250304001"}],
            HOSPITAL_A,
        )
    assert [(p.field, p.rule) for p in exc.value.problems] == [("row[1].local_code", "conflict")]
    assert container.catalog.mappings(HOSPITAL_A) == []
    # the same code as a local exam code is no standard exam code: fine
    container.catalog.upload_mappings([{"kind": "exam", "local_code": "250304002", "std_code": "210300001"}], HOSPITAL_A)
    assert container.catalog.resolve(ORG_A[0], "exam", ["250304002"]) == (["210300001"], [])


def test_mapping_service_rules(container: Container) -> None:
    container.catalog.import_file(DEMO, "catalog-demo.csv", SUP)
    with pytest.raises(Forbidden):
        container.catalog.upload_mappings([{"kind": "lab", "local_code": "A", "std_code": "250301002"}], Principal(ORG_A[0], "dr", "doctor"))
    with pytest.raises(InvalidInput) as exc:
        container.catalog.upload_mappings([{"kind": "lab", "local_code": "A", "std_code": "250301002", "colour": "x"}], HOSPITAL_A)
    assert [(p.field, p.rule) for p in exc.value.problems] == [("row[0].colour", "unknown_column")]
    assert container.catalog.mappings(HOSPITAL_A) == []


def test_entries_for_the_recognition_engine(container: Container) -> None:
    container.catalog.import_file(DEMO, "catalog-demo.csv", SUP)
    got = container.catalog.entries("lab", ["250301002", "250304001", "210300001", "unknown", ""])
    assert sorted(got) == ["250301002", "250304001"]
    assert got["250304001"]["validity_days"] == 7 and got["250304001"]["kind"] == "lab"
    assert container.catalog.entries("exam", []) == {}


def test_on_change_after_an_import(container: Container) -> None:
    calls: list[int] = []
    svc = CatalogService(container.db, container.clock, on_change=lambda: calls.append(1))
    with pytest.raises(InvalidInput):
        svc.import_rows([{"kind": "lab"}], SUP)
    assert calls == []
    svc.import_file(DEMO, "catalog-demo.csv", SUP)
    assert calls == [1]


# -- openapi ----------------------------------------------------------------------------------------


def test_openapi_lists_interface_ids(client: Any) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    expected = {
        ("/api/v1/catalog", "get"): ["XC-P6"],
        ("/api/v1/catalog", "post"): ["XC-P2"],
        ("/api/v1/catalog/file", "put"): ["XC-P2"],
        ("/api/v1/code-map", "post"): ["XC-P2", "BJ-1.3", "BJ-1.4"],
        ("/api/v1/code-map", "get"): ["XC-P2", "BJ-1.3", "BJ-1.4"],
        ("/api/v1/code-map/file", "put"): ["XC-P2", "BJ-1.3", "BJ-1.4"],
    }
    for (path, method), ids in expected.items():
        operation = paths[path][method]
        assert operation["x-interface-ids"] == ids
        assert any("\u4e00" <= ch <= "\u9fff" for ch in operation["summary"]), operation["summary"]


# -- command line -----------------------------------------------------------------------------------


def _huren(*args: str, data_dir: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("HUREN_")}
    env |= {"HUREN_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"}
    proc = subprocess.run(
        [sys.executable, "-m", "huren.cli", *args],
        env=env, cwd=ROOT, capture_output=True, text=True, encoding="utf-8", timeout=180, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    return proc.stdout


def test_cli_catalog_import_list_export(tmp_path: Path) -> None:
    data = tmp_path / "data"
    src = tmp_path / "catalog-demo.csv"
    src.write_bytes(DEMO)
    assert json.loads(_huren("catalog", "import", str(src), data_dir=data)) == {
        "imported": 72, "created": 72, "replaced": 0, "lab": 53, "exam": 19,
    }  # fmt: skip
    lines = [line.split("\t") for line in _huren("catalog", "list", data_dir=data).splitlines()]
    assert len(lines) == 72
    assert ["lab", "250301002", "血清白蛋白测定", "g/L", "30"] in lines
    assert len(_huren("catalog", "list", "--kind", "exam", data_dir=data).splitlines()) == 19

    out = tmp_path / "export.xlsx"
    assert "72" in _huren("catalog", "export", str(out), data_dir=data)
    assert json.loads(_huren("catalog", "import", str(out), data_dir=data))["replaced"] == 72

    bad = tmp_path / "bad.csv"
    bad.write_text("kind,code,name,validity_days\nlab,1,x,0\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("HUREN_")}
    env |= {"HUREN_DATA_DIR": str(data), "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"}
    proc = subprocess.run(
        [sys.executable, "-m", "huren.cli", "catalog", "import", str(bad), "--kind", "lab"],
        env=env, cwd=ROOT, capture_output=True, text=True, encoding="utf-8", timeout=180, check=False,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("错误：") and "row[2].validity_days" in proc.stderr


def test_demo_loads_the_catalog_and_maps_a_few_codes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    summary = json.loads(_huren("demo", "--reports", "10", data_dir=data))
    assert summary["catalog_items"] == 72
    first = summary["credentials"][0]
    c = build(Settings(data_dir=data, database_url=f"sqlite:///{data / 'huren.db'}"))
    try:
        me = Principal(first["org_code"], first["username"], "hospital")
        assert len(c.catalog.mappings(me)) >= 3
        assert c.catalog.resolve(me.org_code, "lab", ["ALB", "250301002", "AST"]) == (["250301002"], ["AST"])
        assert c.catalog.resolve(me.org_code, "exam", ["CT-HEAD"]) == (["210300001"], [])
    finally:
        c.close()
