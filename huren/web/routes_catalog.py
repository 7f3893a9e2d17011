"""The catalog pages (issue #6): the standard item catalog and each institution's code mapping,
shown, filtered, downloaded and uploaded as Excel or CSV. Who may import the catalog or upload a
mapping is the access policy's answer (huren.domain.access); the pages only offer what it allows.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from huren.domain import access, kinds, labels
from huren.errors import InvalidInput, Problem, TooLarge
from huren.web import tables
from huren.web.render import SUPERVISION_ROLES, Caller, caller, container, form_caller, invalid, page
from huren.web.routes_supervision import base_context, call, problem_dicts

router = APIRouter(include_in_schema=False)

#: the catalog pages' kind choices, lab first
CATALOG_KINDS = {k.name: k.zh for k in (kinds.LAB, kinds.EXAM)}
#: catalog rows shown at once (the filter narrows it down)
CATALOG_SHOWN = 300


LEVEL_NAMES = {1: "一级", 2: "二级", 3: "三级"}


def _fee(v: Any) -> str:
    return f"{v:.2f}" if v is not None else "—"


def catalog_tables(request: Request, who: Caller, items: list[dict[str, Any]], maps: list[dict[str, Any]],
                   unmapped: list[dict[str, Any]], can_edit: bool) -> list[tables.Table]:
    """The catalog page's tables (huren.web.tables): the items (at most CATALOG_SHOWN on the page,
    all of the filter's in the export), the institution's mappings and its unmapped local codes."""
    kind_name = lambda r: CATALOG_KINDS.get(r["kind"], "")  # noqa: E731
    item_cols = [
        tables.Column("code", "编码", nowrap=True),
        tables.Column("name", "名称", cls=lambda r: "name"),
        tables.Column("kind", "类型", text=kind_name, nowrap=True),
        tables.Column("unit", "单位", text=lambda r: labels.unit(r["unit"]) if r.get("unit") else "", cls=lambda r: "unit"),
        tables.Column("recognizable", "是否互认", text=lambda r: "互认" if r["recognizable"] else "不互认",
                      tag=lambda r: "ok" if r["recognizable"] else "warn"),
        tables.Column("validity_days", "有效天数", num=True),
        tables.Column("min_level", "最低机构等级", text=lambda r: LEVEL_NAMES.get(r["min_level"], str(r["min_level"]))),
        tables.Column("region_scope", "适用区域", text=lambda r: r.get("region_scope") or "不限"),
        tables.Column("fee", "收费标准（元）", num=True, text=lambda r: _fee(r.get("fee")), data=lambda r: [("fee", "")]),
    ]
    if can_edit:
        item_cols.append(tables.Column(
            "edit", "操作", text=lambda r: "修改", export=False,
            link=lambda r: who.url("/ui/catalog", edit=f"{r['kind']}:{r['code']}", q=r["code"]) + "#edit-item"))
    items_t = tables.Table(
        "catalog", "标准项目目录", item_cols, items,
        exception=lambda r: not r["recognizable"] or not r.get("validity_days") or r.get("fee") is None,
        exception_label="不互认、无有效天数或未给收费标准",
        row_class=lambda r: "" if r["recognizable"] else "warn", row_data=(("kind", "kind"), ("code", "code")),
        limit=CATALOG_SHOWN, empty="没有符合条件的项目。", path="/ui/catalog",
    )
    maps_t = tables.Table(
        "mappings", "本机构编码对照",
        [tables.Column("kind", "类型", text=kind_name),
         tables.Column("local_code", "本地编码"), tables.Column("local_name", "本地名称"),
         tables.Column("std_code", "标准编码"),
         tables.Column("std_name", "标准名称", text=lambda r: r.get("std_name") or "（目录中没有该编码）",
                       tag=lambda r: "" if r.get("std_name") else "bad"),
         tables.Column("updated_at", "更新时间", nowrap=True)],
        maps,
        exception=lambda r: not r.get("std_name"), exception_label="标准编码不在项目目录中",
        row_class=lambda r: "" if r.get("std_name") else "bad", row_data=(("code", "local_code"),),
        empty="本机构尚未上传编码对照。", path="/ui/catalog",
    )
    unmapped_t = tables.Table(  # every row is one to fix: no 只看异常
        "unmapped", "未对照的本地编码",
        [tables.Column("kind", "类型", text=kind_name),
         tables.Column("local_code", "本地编码"), tables.Column("local_name", "本地名称"),
         tables.Column("items", "出现项次", num=True),
         tables.Column("last_at", "最近上传", nowrap=True)],
        unmapped, row_data=(("code", "local_code"),), default_sort="items", default_desc=True, path="/ui/catalog",
    )
    return [tables.view(request, t) for t in (items_t, maps_t, unmapped_t)]


def _catalog_ctx(request: Request, who: Caller, kind: str, q: str, edit: str = "") -> dict[str, Any]:
    c = container(request)
    items = c.catalog.list(kind or None)
    needle = q.strip().lower()
    if needle:
        items = [i for i in items if needle in i["code"].lower() or needle in i["name"].lower()]
    # what the page offers follows the one policy: the catalog to whoever may import it, the
    # institution's code mapping to whoever may upload its directory data
    can_import = access.scope(who.principal, "catalog.write") is not None
    can_map = access.scope(who.principal, "directory.write") is not None
    maps = c.catalog.mappings(who.principal) if can_map else []
    # the one item being edited (?edit=lab:CODE), for whoever may change the catalog
    e_kind, _, e_code = edit.partition(":")
    editing = next(iter(c.catalog.list(e_kind, [e_code])), None) if can_import and e_kind in CATALOG_KINDS and e_code else None
    unmapped = c.catalog.unmapped(who.principal) if can_map else []
    items_t, maps_t, unmapped_t = catalog_tables(request, who, items, maps, unmapped, can_import)
    return {
        "can_import_catalog": can_import,
        "can_map": can_map,
        "editing": editing,
        "unmapped": unmapped,
        "items": items, "all_items": c.catalog.count(),
        "maps": maps, "kinds": CATALOG_KINDS, "filter": {"kind": kind, "q": q},
        "level_names": LEVEL_NAMES,
        "catalog_table": items_t, "mappings_table": maps_t, "unmapped_table": unmapped_t,
    }


@router.get("/ui/catalog")
async def catalog(
    request: Request, who: Annotated[Caller, Depends(caller)], kind: str = "", q: str = "", edit: str = ""
) -> Response:
    ctx = base_context(request, who, "项目目录与编码对照页面")
    if kind not in ("", *CATALOG_KINDS):
        raise invalid("kind", "dictionary", "类型应为 检验 或 检查")
    more = await run_in_threadpool(_catalog_ctx, request, who, kind, q, edit)
    if (file := tables.first_export(request, more["catalog_table"], more["mappings_table"], more["unmapped_table"])) is not None:
        return file
    return page(request, who, "supervision/catalog.html", **ctx, **more, result=None, result_of="")


#: the edit form's fields → what the service takes (a checkbox sends nothing when unticked)
EDIT_FIELDS = ("validity_days", "min_level", "region_scope", "fee")


@router.post("/ui/catalog/item")
async def catalog_edit(request: Request) -> Response:
    """Save the edit of one catalog item (validity days, recognizable, level, region, fee); the
    service checks it as an import does and writes the audit entry (old → new)."""
    who, form = await form_caller(request)
    ctx = base_context(request, who, "项目目录与编码对照页面")
    kind, code = str(form.get("kind") or ""), str(form.get("code") or "")
    changes: dict[str, Any] = {f: str(form.get(f) or "") for f in EDIT_FIELDS}
    changes["recognizable"] = "1" if form.get("recognizable") else "0"
    status, result, problems, error, edit = 200, None, [], None, ""
    try:
        if kind not in CATALOG_KINDS:
            raise invalid("kind", "dictionary", "类型应为 检验 或 检查")
        result = await call(container(request).catalog.edit_item, who.principal, kind, code, changes)
    except InvalidInput as exc:
        status, error, problems, edit = 422, exc.text(), problem_dicts(exc), f"{kind}:{code}"
    more = await run_in_threadpool(_catalog_ctx, request, who, "", code if status == 200 else "", edit)
    return page(request, who, "supervision/catalog.html", status, **ctx, **more, result=result, result_of="edit",
                error=error, problems=problems, field_names=labels.CATALOG_FIELDS)


def _download(data: bytes, fmt: str, stem: str) -> Response:
    media = {"csv": "text/csv; charset=utf-8",
             "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}[fmt]
    return Response(data, media_type=media, headers={
        "Content-Disposition": f'attachment; filename="{stem}.{fmt}"', "Cache-Control": "no-store",
    })


def _check_download(fmt: str, kind: str) -> None:
    if fmt not in ("csv", "xlsx"):
        raise invalid("format", "dictionary", "下载格式应为 xlsx（Excel）或 csv")
    if kind not in ("", *CATALOG_KINDS):
        raise invalid("kind", "dictionary", "类型应为 检验 或 检查")


@router.get("/ui/catalog/download")
async def catalog_download(
    request: Request, who: Annotated[Caller, Depends(caller)], format: str = "xlsx", kind: str = ""
) -> Response:
    who.require(SUPERVISION_ROLES, "项目目录下载")
    _check_download(format, kind)
    data = await call(container(request).catalog.export, format, kind or None)
    return _download(data, format, f"catalog-{kind}" if kind else "catalog")


@router.get("/ui/catalog/mappings/download")
async def mappings_download(
    request: Request, who: Annotated[Caller, Depends(caller)], format: str = "xlsx", kind: str = ""
) -> Response:
    who.require(SUPERVISION_ROLES, "编码对照下载")
    _check_download(format, kind)
    data = await call(container(request).catalog.export_mappings, who.principal, format, kind or None)
    return _download(data, format, f"code-map-{who.principal.org_code}")


async def _uploaded(request: Request, form: dict[str, Any]) -> tuple[bytes, str, str | None]:
    f = form.get("file")
    if not isinstance(f, UploadFile) or not f.filename:
        raise invalid("file", "required", "请选择要上传的文件（.xlsx 或 .csv）")
    limit = container(request).settings.max_request_bytes
    data = await f.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(f"文件超过上限 {limit} 字节", [Problem("file", "max_size", f"文件不能超过 {limit} 字节")])
    if not data:
        raise invalid("file", "required", "上传的文件是空的")
    return data, f.filename, f.content_type


async def _upload(request: Request, target: str) -> Response:
    # Starlette caches the parsed form on the request (form_caller reads the same one); its
    # spooled files are closed here whatever happens, a refused CSRF token included.
    parsed = await request.form()
    try:
        return await _handle_upload(request, target)
    finally:
        await parsed.close()


async def _handle_upload(request: Request, target: str) -> Response:
    who, form = await form_caller(request)
    ctx = base_context(request, who, "项目目录与编码对照页面")
    kind = str(form.get("kind") or "")
    c = container(request)
    status, result, problems, error = 200, None, [], None
    try:
        if kind not in ("", *CATALOG_KINDS):
            raise invalid("kind", "dictionary", "类型应为 检验 或 检查")
        data, filename, content_type = await _uploaded(request, form)
        fn = c.catalog.import_file if target == "catalog" else c.catalog.upload_mapping_file
        result = await call(fn, data, filename, who.principal, kind=kind or None, content_type=content_type)
    except InvalidInput as exc:
        status, error, problems = 422, exc.text(), problem_dicts(exc)
    more = await run_in_threadpool(_catalog_ctx, request, who, "", "")
    return page(request, who, "supervision/catalog.html", status, **ctx, **more, result=result, result_of=target,
                error=error, problems=problems)


@router.post("/ui/catalog/upload")
async def catalog_upload(request: Request) -> Response:
    return await _upload(request, "catalog")


@router.post("/ui/catalog/mappings/upload")
async def mappings_upload(request: Request) -> Response:
    return await _upload(request, "mappings")
