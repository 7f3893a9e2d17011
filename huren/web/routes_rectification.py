"""The rectification pages (XC-S2): the rejected submissions in plain words, with their deadline and
whether the institution has seen them, each institution's progress, and the kept payload's download.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from huren.web import tables
from huren.web.render import SUPERVISION_ROLES, Caller, caller, container, page
from huren.web.routes_supervision import (
    CHANNEL_NAMES,
    SUBMISSION_NAMES,
    base_context,
    call,
)

router = APIRouter(include_in_schema=False)


REJECTED_PAGE = 50


def _progress_table(request: Request, progress: list[dict[str, Any]], names: dict[str, str]) -> tables.Table:
    """Rectification per institution."""
    return tables.view(request, tables.Table(
        "progress", "各机构整改进度",
        [tables.Column("org_code", "机构", text=tables.org_text(names),
                       link=lambda r: "/ui/quality/rejected?" + urlencode({"org_code": r["org_code"], "only_open": "1"})),
         tables.Column("total", "被拒提交", num=True),
         tables.Column("fixed", "已整改", num=True),
         tables.Column("open", "未整改", num=True, tag=lambda r: "bad" if r["open"] else ""),
         tables.Column("overdue", "已超期", num=True, tag=lambda r: "bad" if r["overdue"] else ""),
         tables.Column("unseen", "机构未查看", num=True, tag=lambda r: "warn" if r["unseen"] else ""),
         tables.Column("oldest_open_at", "最早未整改", nowrap=True),
         tables.Column("days_open", "已持续（天）", num=True, value=lambda r: r["days_open"] if r["open"] else None)],
        progress,
        exception=lambda r: bool(r["open"] or r["overdue"]), exception_label="有未整改或已超期的被拒提交",
        row_class=lambda r: "bad" if r["open"] else "ok",
        row_data=(("org", "org_code"), ("open", "open"), ("overdue", "overdue"), ("unseen", "unseen")),
    ))


def _rejected_table(request: Request, who: Caller, rows: list[dict[str, Any]], names: dict[str, str],
                    total: int | None) -> tables.Table:
    """The rejected submissions, in plain words (huren.domain.labels via the service's ``problems_plain``)."""
    for r in rows:
        r["seen"], r["late"] = ("1" if r.get("seen_at") else "0"), ("1" if r.get("overdue") else "0")

    def problems(r: dict[str, Any]) -> list[str]:
        return [f"{p['field']}：{p['rule']}。{p['message']}" for p in r.get("problems_plain") or []]

    def content(r: dict[str, Any]) -> list[str]:
        return [x for x in (f"报告单号：{r['report_form_no']}" if r.get("report_form_no") else "",
                            f"患者：{r['patient']}" if r.get("patient") else "") if x]

    return tables.view(request, tables.Table(
        "rejected", "被拒提交",
        [tables.Column("received_at", "被拒时间", nowrap=True, lines=lambda r: [CHANNEL_NAMES.get(r["channel"], "其他渠道")]),
         tables.Column("org_code", "机构", text=tables.org_text(names), lines=lambda r: [f"提交账号：{r['username']}"]),
         tables.Column("kind", "提交内容", text=lambda r: SUBMISSION_NAMES.get(r["kind"], "其他数据"), lines=content),
         tables.Column("problems", "问题", value=lambda r: len(r.get("problems_plain") or []),
                       text=lambda r: f"{len(r['problems_plain'])} 处问题" if r.get("problems_plain") else "（未记录问题）",
                       lines=problems),
         tables.Column("deadline", "整改期限", nowrap=True,
                       value=lambda r: None if r["fixed"] else r["deadline"][:10],
                       lines=lambda r: ["已超期"] if r.get("overdue") and not r["fixed"] else [],
                       cls=lambda r: "overdue" if r.get("overdue") and not r["fixed"] else "",
                       data=lambda r: [] if r["fixed"] else [("deadline", r["deadline"])]),
         tables.Column("seen_at", "机构查看", nowrap=True, value=lambda r: r.get("seen_at") or "",
                       text=lambda r: "已查看" if r.get("seen_at") else "未查看",
                       tag=lambda r: "ok" if r.get("seen_at") else "warn", lines=lambda r: [r["seen_at"]] if r.get("seen_at") else []),
         tables.Column("fixed", "整改状态", text=lambda r: "已整改" if r["fixed"] else "未整改",
                       tag=lambda r: "ok" if r["fixed"] else "bad"),
         tables.Column("payload_size", "原始提交", nowrap=True,
                       text=lambda r: f"下载（{r['payload_size']} 字节）" if r.get("payload_size") else "无",
                       link=lambda r: who.url(f"/ui/quality/rejected/{r['id']}/payload") if r.get("payload_size") else "",
                       export=False)],
        rows,
        exception=lambda r: not r["fixed"], exception_label="未整改（含已超期、机构未查看）",
        row_class=lambda r: "ok" if r["fixed"] else "bad",
        row_data=(("id", "id"), ("seen", "seen"), ("overdue", "late")),
        total=total, empty="没有被拒绝的提交。",
    ))


@router.get("/ui/quality/rejected")
async def rejected(
    request: Request,
    who: Annotated[Caller, Depends(caller)],
    org_code: str = "",
    only_open: str = "",
    page_no: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
) -> Response:
    ctx = base_context(request, who, "整改进度页面")
    size = REJECTED_PAGE
    q = request.query_params
    # 只看异常 of the list is its open rows (overdue and unseen ones are open): filtered by the
    # service before paging, as 只看未整改 is
    open_only = only_open in ("1", "on", "true") or "rejected" in q.getlist("exc")
    # sorted or exported: every row that matches, not one page (a sorted list is shown whole, so
    # what an institution's account is shown is what the service marks seen)
    whole = q.get("export") == "rejected" or q.get("sort", "").startswith("rejected.")
    c = container(request)
    # filtered before paging; the counts and the per-institution progress cover every row in scope
    res = await call(
        c.quality.rejected_page, who.principal, org_code=org_code or None, only_open=open_only,
        limit=1000 if whole else size, offset=0 if whole else (page_no - 1) * size,
    )
    rows = res["rows"]
    while whole and len(rows) < res["total"]:
        more_rows = (await call(c.quality.rejected_page, who.principal, org_code=org_code or None, only_open=open_only,
                                limit=1000, offset=len(rows)))["rows"]
        if not more_rows:
            break
        rows += more_rows
    names = ctx["org_names"]
    progress_t = _progress_table(request, res["progress"], names)
    list_t = _rejected_table(request, who, rows, names, None if whole else res["total"])
    if (file := tables.first_export(request, progress_t, list_t)) is not None:
        return file
    more = not whole and page_no * size < res["total"]
    form = {"org_code": org_code, "only_open": "1" if only_open in ("1", "on", "true") else ""}
    pager = {k: v for k, v in q.multi_items() if k not in ("page", "export", "format", "token")}
    return page(
        request, who, "supervision/rejected.html", **ctx, form=form, page_no=1 if whole else page_no, more=more,
        total=res["total"], open_count=res["open"], fixed_count=res["fixed"], progress=res["progress"],
        overdue_count=res["overdue"], unseen_count=res["unseen"], rectify_days=res["rectify_days"],
        progress_table=progress_t, rejected_table=list_t, pager=pager, open_only=open_only,
    )


@router.get("/ui/quality/rejected/{rejected_id}/payload")
async def rejected_payload(request: Request, rejected_id: str, who: Annotated[Caller, Depends(caller)]) -> Response:
    who.require(SUPERVISION_ROLES, "被拒提交的原始内容")
    data = await call(container(request).quality.rejected_payload, who.principal, rejected_id)
    head = data.lstrip()[:1]
    ext, media = (("xml", "application/xml") if head == b"<" else ("json", "application/json") if head in (b"{", b"[")
                  else ("pdf", "application/pdf") if data.startswith(b"%PDF") else ("bin", "application/octet-stream"))
    return Response(data, media_type=media, headers={
        "Content-Disposition": f'attachment; filename="rejected-{rejected_id}.{ext}"',
        "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
    })


