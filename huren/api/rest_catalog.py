"""REST: the standard item catalog (XC-P2 upload by the platform operator, XC-P6 query/download)
and each institution's local → standard code mapping (XC-P2, BJ-1.3, BJ-1.4)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from huren.api.deps import Caller, Services, parse_json, read_body, write
from huren.api.openapi import op
from huren.domain import catalog as rows
from huren.wire import tabular

router = APIRouter(prefix="/api/v1")

Kind = Literal["lab", "exam"]
Format = Literal["json", "csv", "xlsx"]

_KIND = Query(None, description="类型：lab（检验子项）或 exam（检查项目）；不填为全部")
_FORMAT = Query("json", description="json（默认）、csv 或 xlsx（下载文件）")
_FILENAME = Query(None, description="文件名（用于判断格式：.csv 或 .xlsx）；也可由 Content-Type 或文件内容判断")

_FILE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            tabular.CSV_TYPE: {"schema": {"type": "string", "format": "binary"}},
            tabular.XLSX_TYPE: {"schema": {"type": "string", "format": "binary"}},
        },
    }
}
_DOWNLOAD = {
    200: {
        "description": "format=json 时为 JSON；format=csv / xlsx 时为文件下载",
        "content": {
            "application/json": {},
            tabular.CSV_TYPE: {"schema": {"type": "string", "format": "binary"}},
            tabular.XLSX_TYPE: {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def _rows_schema(columns: tuple[rows.Column, ...], name: str) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for col in columns:
        props[col.name] = {"type": ["string", "integer", "boolean"] if col.max_length is None else "string", "description": col.title}
        if col.max_length is not None:
            props[col.name]["maxLength"] = col.max_length
    item = {"type": "object", "properties": props, "required": [col.name for col in columns if col.required]}
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object", "required": [name], "properties": {name: {"type": "array", "items": item}}}}},
        }
    }


_CATALOG_DOC = (
    "列：kind（lab/exam，或 检验/检查）、code、name、unit、validity_days（正整数）、recognizable（1/0、是/否、true/false，默认1）、"
    "min_level（1/2/3，默认2）、region_scope（行政区划代码前缀，逗号/分号/空格分隔，空为不限）、source_note、"
    "fee（收费标准，元，最多两位小数，可空：统计中估算避免的费用）；"
    "文件也可用中文列名：类型/项目编码/项目名称/单位/有效天数/是否互认/最低机构等级/适用区域/来源/收费标准（或 单价）。"
    "任何一行有问题则整批不导入（422），problems 中逐一列出，字段为 row[N].列名：文件中 N 为表格行号（表头为第1行），"
    "JSON 中 N 为数组下标（从0开始）。相同 (kind, code) 的行被替换。仅限监管机构账号。"
)
_MAPPING_DOC = (
    "本机构的本地编码与标准编码对照：kind、local_code、local_name、std_code（须在对应类型的标准目录中）；"
    "中文列名 类型/本地编码/本地名称/标准编码 亦可。相同 (kind, local_code) 的对照被替换；任何一行有问题则整批不保存（422）。"
)


def _download(data: bytes, fmt: str, stem: str) -> Response:
    media = tabular.MEDIA_TYPES[fmt] + ("; charset=utf-8" if fmt == "csv" else "")
    return Response(data, media_type=media, headers={"Content-Disposition": f'attachment; filename="{stem}.{fmt}"'})


def _rows_of(payload: Any, name: str) -> Any:
    """``{"rows": [...]}`` (or ``{"mappings": [...]}``) or a bare array."""
    if isinstance(payload, dict) and set(payload) == {name}:
        return payload[name]
    return payload


# -- the catalog ------------------------------------------------------------------------------


@router.get(
    "/catalog",
    **op(["XC-P6"], "项目编码查询下载：标准检查检验项目目录（JSON，或 CSV / XLSX 文件）", responses=_DOWNLOAD),
    response_model=None,
)
async def catalog_list(
    c: Services,
    _: Caller,
    kind: Kind | None = _KIND,
    codes: str | None = Query(None, description="只查这些编码，逗号分隔"),
    format: Format = _FORMAT,
) -> dict[str, Any] | Response:
    wanted = [x.strip() for x in codes.split(",") if x.strip()] if codes is not None else None
    if format != "json":
        data = await run_in_threadpool(c.catalog.export, format, kind, wanted)
        return _download(data, format, f"catalog-{kind}" if kind else "catalog")
    items = await run_in_threadpool(c.catalog.list, kind, wanted)
    return {"code": "ok", "count": len(items), "items": items}


@router.post(
    "/catalog",
    **op(["XC-P2"], "项目编码上传（平台运营方）：以 JSON 导入标准项目目录", _rows_schema(rows.CATALOG_COLUMNS, "rows"), description=_CATALOG_DOC),
)
async def catalog_import(request: Request, c: Services, who: Caller, kind: Kind | None = _KIND) -> dict[str, Any]:
    payload = parse_json(await read_body(request, c.settings.max_request_bytes))
    res = await write(c, c.catalog.import_rows, _rows_of(payload, "rows"), who, kind=kind)
    return {"code": "ok", "message": "ok"} | res


@router.put(
    "/catalog/file",
    **op(["XC-P2"], "项目编码上传（平台运营方）：以 CSV / XLSX 文件导入标准项目目录", _FILE_BODY, description=_CATALOG_DOC),
)
async def catalog_import_file(
    request: Request, c: Services, who: Caller, kind: Kind | None = _KIND, filename: str | None = _FILENAME
) -> dict[str, Any]:
    data = await read_body(request, c.settings.max_request_bytes)
    # a spreadsheet is parsed in a worker thread, never on the event loop (bounded: huren.wire.tabular)
    res = await run_in_threadpool(
        c.catalog.import_file, data, filename, who, kind=kind, content_type=request.headers.get("content-type")
    )
    return {"code": "ok", "message": "ok"} | res


_EDIT_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object", "properties": {
            "validity_days": {"type": ["integer", "string"], "description": "有效天数（正整数）"},
            "recognizable": {"type": ["integer", "boolean", "string"], "description": "是否互认：1/0、是/否、true/false"},
            "min_level": {"type": ["integer", "string"], "description": "最低机构等级 1/2/3"},
            "region_scope": {"type": "string", "description": "适用区域：行政区划代码前缀，逗号分隔；空为不限"},
            "fee": {"type": ["number", "string", "null"], "description": "收费标准（元）；空或 null 为不填"},
        }, "additionalProperties": False}}},
    }
}


@router.patch(
    "/catalog/items/{kind}/{code}",
    **op(["XC-P2"], "修改标准目录中的一个项目（有效天数、是否互认、最低机构等级、适用区域、收费标准），记入操作日志", _EDIT_BODY),
)
async def catalog_edit(request: Request, c: Services, who: Caller, kind: Kind, code: str) -> dict[str, Any]:
    payload = parse_json(await read_body(request, c.settings.max_request_bytes))
    if not isinstance(payload, dict):
        payload = {"": payload}  # refused by the service: not one of the editable fields
    changes = {k: ("" if v is None else v) for k, v in payload.items()}
    res = await write(c, c.catalog.edit_item, who, kind, code, changes)
    return {"code": "ok", "message": "ok"} | res


# -- local → standard mapping ---------------------------------------------------------------


@router.get(
    "/code-map/unmapped",
    **op(["BJ-1.3", "BJ-1.4"], "本机构报告中出现、既非标准编码又未对照的本地项目编码"),
)
async def code_map_unmapped(c: Services, who: Caller) -> dict[str, Any]:
    codes = await run_in_threadpool(c.catalog.unmapped, who)
    return {"code": "ok", "org_code": who.org_code, "count": len(codes), "unmapped": codes}


@router.post(
    "/code-map",
    **op(["XC-P2", "BJ-1.3", "BJ-1.4"], "上传本机构本地编码与标准项目编码的对照", _rows_schema(rows.MAPPING_COLUMNS[:4], "mappings"), description=_MAPPING_DOC),
)
async def code_map_upload(request: Request, c: Services, who: Caller, kind: Kind | None = _KIND) -> dict[str, Any]:
    payload = parse_json(await read_body(request, c.settings.max_request_bytes))
    res = await write(c, c.catalog.upload_mappings, _rows_of(payload, "mappings"), who, kind=kind)
    return {"code": "ok", "message": "ok"} | res


@router.put(
    "/code-map/file",
    **op(["XC-P2", "BJ-1.3", "BJ-1.4"], "以 CSV / XLSX 文件上传本机构的编码对照", _FILE_BODY, description=_MAPPING_DOC),
)
async def code_map_upload_file(
    request: Request, c: Services, who: Caller, kind: Kind | None = _KIND, filename: str | None = _FILENAME
) -> dict[str, Any]:
    data = await read_body(request, c.settings.max_request_bytes)
    res = await run_in_threadpool(  # parsed in a worker thread, as the catalog file
        c.catalog.upload_mapping_file, data, filename, who, kind=kind, content_type=request.headers.get("content-type")
    )
    return {"code": "ok", "message": "ok"} | res


@router.get(
    "/code-map",
    **op(["XC-P2", "BJ-1.3", "BJ-1.4"], "查询或下载本机构的编码对照（JSON，或 CSV / XLSX 文件）", responses=_DOWNLOAD),
    response_model=None,
)
async def code_map_list(c: Services, who: Caller, kind: Kind | None = _KIND, format: Format = _FORMAT) -> dict[str, Any] | Response:
    if format != "json":
        data = await run_in_threadpool(c.catalog.export_mappings, who, format, kind)
        return _download(data, format, f"code-map-{who.org_code}")
    maps = await run_in_threadpool(c.catalog.mappings, who, kind)
    return {"code": "ok", "org_code": who.org_code, "count": len(maps), "mappings": maps}
