"""REST: the recognition engine — recent records, recognizable detail, exists-for-order,
accept / reject / quote, accepted reports for citing, reminder logs, statistics."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from huren.api.deps import Caller, LeanRoute, Services, write
from huren.api.models import Body, Day, Moment, Order, Patient, ReportRef
from huren.api.openapi import op
from huren.api.responses import Json
from huren.api.rest_reports import json_body
from huren.domain.fields import REMINDER_LOG, SEHR_ACCEPT_RECORD, SEHR_QUOTE_RECORD
from huren.domain.recognition import VISIT_MAX
from huren.wire.json_schema import body, node_schema

router = APIRouter(prefix="/api/v1")


@router.post("/recognition/recent", **op(["XJ-1.3.2.1 / 1.4.2.1", "HZ-14", "XJ-1.3"], "获取患者近期检查检验记录（★标记可互认检查项目）"))
async def recent(q: Patient, c: Services, who: Caller) -> dict[str, Any]:
    items = await run_in_threadpool(lambda: c.recognition.recent(who, q.id_type_code, q.id_no, days=q.days, visit=q.visit()))
    return {"code": "ok", "count": len(items), "item": items}


@router.post("/recognition/detail", **op(["XJ-1.3.2.2", "XJ-1.3"], "获取患者近期可互认报告明细（预加载）"))
async def detail(q: Patient, c: Services, who: Caller) -> dict[str, Any]:
    res = await run_in_threadpool(lambda: c.recognition.detail(who, q.id_type_code, q.id_no, days=q.days, visit=q.visit()))
    return {"code": "ok"} | res


async def exists(q: Order, c: Services, who: Caller) -> Json:
    res = await write(
        c, c.recognition.exists, who, q.id_type_code, q.id_no, check=q.check, lab=q.lab, visit=q.visit(),
        days=q.days, org_code=q.org_code, since=q.since, until=q.until,
    )
    return Json({"code": "ok"} | res)


# the busiest operation (every order a doctor signs): a lean route (deps.LeanRoute), same answers
router.add_api_route(
    "/recognition/exists", exists, methods=["POST"], route_class_override=LeanRoute,
    **op(["XJ-1.4.2.2", "XJ-1.4", "HZ-15", "HZ-16"], "开单互认校验：所开项目中哪些有可互认的近期结果"),
)


@router.post("/recognition/lab-reports", **op(["XJ-1.4.2.4", "XJ-1.3.2.4"], "检验报告结果引用：本机构已采纳的检验报告全文"))
async def lab_info(q: Patient, c: Services, who: Caller) -> dict[str, Any]:
    rows = await run_in_threadpool(lambda: c.recognition.accepted_reports(who, "lab", q.id_type_code, q.id_no, q.event_no))
    return {"code": "ok", "count": len(rows), "labmaster": rows}


@router.post("/recognition/exam-reports", **op(["XJ-1.4.2.5", "XJ-1.3.2.4"], "检查报告结果引用：本机构已采纳的检查报告全文"))
async def exam_info(q: Patient, c: Services, who: Caller) -> dict[str, Any]:
    rows = await run_in_threadpool(lambda: c.recognition.accepted_reports(who, "exam", q.id_type_code, q.id_no, q.event_no))
    return {"code": "ok", "count": len(rows), "exammaster": rows}


def _pdf_route(kind: str) -> None:
    @router.get(
        f"/recognition/{kind}-reports/{{report_id}}/pdf",
        **op(["HZ-17", "XJ-1.3.2.4"], f"下载本机构已采纳互认的{'检验' if kind == 'lab' else '检查'}报告PDF"),
        response_class=Response,
        name=f"accepted_{kind}_pdf",
    )
    async def accepted_pdf(report_id: ReportRef, c: Services, who: Caller) -> Response:
        data = await run_in_threadpool(c.recognition.accepted_pdf, who, kind, report_id)
        return Response(data, media_type="application/pdf", headers={"Content-Disposition": f'inline; filename="{kind}-{report_id}.pdf"'})


_pdf_route("lab")
_pdf_route("exam")

_ACCEPT = {"type": "object", "required": ["sehr_accept_record"], "properties": {"sehr_accept_record": {"type": "array", "minItems": 1, "items": node_schema(SEHR_ACCEPT_RECORD)}}}
_QUOTE = {"type": "object", "required": ["sehr_quote_record"], "properties": {"sehr_quote_record": {"type": "array", "minItems": 1, "items": node_schema(SEHR_QUOTE_RECORD)}}}
_LOGS = {"type": "object", "required": ["reminder_log"], "properties": {"reminder_log": {"type": "array", "minItems": 1, "items": node_schema(REMINDER_LOG)}}}


@router.post("/recognition/accept", **op(["XJ-1.3.2.5 / 1.4.2.3", "XC-E3", "XC-L6", "BJ-1.3", "BJ-1.4"], "提交互认结果（采纳 1 / 不采纳 2，须填理由）", body(_ACCEPT)))
async def accept(request: Request, c: Services, who: Caller) -> dict[str, Any]:
    payload, raw = await json_body(request, c, who, "accept")
    n = await write(c, c.recognition.submit, "accept", payload, who, channel="rest", raw=raw)
    return {"code": "ok", "message": "ok", "rows": n}


@router.post("/recognition/quote", **op(["XJ-1.3.2.6 / 1.4.2.6", "XJ-1.3.2.4"], "提交引用结果（病历引用的外院结果）", body(_QUOTE)))
async def quote(request: Request, c: Services, who: Caller) -> dict[str, Any]:
    payload, raw = await json_body(request, c, who, "quote")
    n = await write(c, c.recognition.submit, "quote", payload, who, channel="rest", raw=raw)
    return {"code": "ok", "message": "ok", "rows": n}


def _list_route(table: str, ids: list[str], summary: str) -> None:
    @router.get(f"/recognition/{table}", **op(ids, summary), name=f"list_{table}")
    async def records(
        c: Services,
        who: Caller,
        org_code: str | None = Query(None, description="机构编码（监管用户可查任意机构）"),
        since: Moment | None = Query(None, description="记录时间不早于"),
        limit: int = Query(200, ge=1, le=1000),
    ) -> dict[str, Any]:
        rows = await run_in_threadpool(lambda: c.recognition.records(who, table, org_code=org_code, since=since, limit=limit))
        return {"code": "ok", "count": len(rows), "records": rows}


_list_route("accept", ["XJ-1.3.2.5 / 1.4.2.3", "XC-E3", "XC-L6"], "查询本机构的互认结果记录")
_list_route("quote", ["XJ-1.3.2.6 / 1.4.2.6"], "查询本机构的引用结果记录")


class VisitQuery(Body):
    id_type_code: str = Field("01", description="身份证件类别代码（STD_ID_TYPE）", max_length=2)
    id_no: str = Field(..., description="身份证件号码", min_length=1, max_length=128)
    event_no: str = Field(..., description="就诊流水号（开单时传给互认确认窗口的 event_no）", min_length=1, max_length=VISIT_MAX)
    org_code: str | None = Field(None, description="作出决定的机构编码，默认本机构（监管用户可查辖区内机构）", max_length=128)


@router.post(
    "/recognition/visit-decisions",
    **op(
        ["HZ-16", "HZ-18", "HZ-19", "XJ-1.3.2.3", "XJ-1.3.2.5 / 1.4.2.3"],
        "一次就诊的互认决定（供 HIS 轮询）：互认的项目（应从医嘱中撤除）与不互认的项目及理由；与页面 postMessage 的 huren:decisions 消息字段相同",
        description=(
            "机构接入账号、医院管理员查本机构；监管用户以 org_code 查辖区内机构（records.read）；每次查询记入访问日志。\n\n"
            "返回 `{code, version: 1, org_code, patient: {id_type_code, id_no}, visit: {event_no}, accepted: [项目], rejected: [项目]}`；"
            "项目为 `{type (1 检查 / 2 检验), kind (exam / lab), code (标准项目编码), hr_org_code, org_name, hr_report_form_no, "
            "report_id (报告标识), record_time}`，rejected 另有 `reason`（REJECT_REASON 代码）与 `reason_name`（理由全文）。"
            "同一项目多次决定时以最后一次为准。页面保存后以 postMessage 发给 HIS 的 huren:decisions 消息（见 /ui/embed）用同样的字段名，并多出 name、dtime、result 等显示字段。"
        ),
    ),
)
async def visit_decisions(q: VisitQuery, c: Services, who: Caller) -> dict[str, Any]:
    res = await run_in_threadpool(
        c.recognition.decisions.visit_decisions, who, q.id_type_code, q.id_no, q.event_no, q.org_code
    )
    return {"code": "ok"} | res


@router.post("/reminder-logs", **op(["XC-P4"], "上传提醒和调阅记录", body(_LOGS)))
async def reminder_logs(request: Request, c: Services, who: Caller) -> dict[str, Any]:
    payload, raw = await json_body(request, c, who, "reminder_log")
    n = await write(c, c.recognition.upload_logs, payload, who, channel="rest", raw=raw)
    return {"code": "ok", "message": "ok", "rows": n}


@router.get("/statistics/recognition", **op(["BJ-1.3", "BJ-1.4"], "互认统计：提醒、可互认、采纳、不采纳（按理由）、引用、互认率、避免检查数"))
async def statistics(
    c: Services,
    who: Caller,
    by: Literal["org", "dept", "item", "day", "platform", "all"] = Query("org", description="分组：机构 / 标准科室 / 项目 / 日期 / 平台（地州市） / 合计"),
    day_from: Day | None = Query(None, description="开始日期 YYYY-MM-DD，默认结束日期前29天"),
    day_to: Day | None = Query(None, description="结束日期（含），默认今天"),
    org_code: str | None = Query(None, description="机构编码（监管用户可查任意机构）"),
) -> dict[str, Any]:
    res = await run_in_threadpool(lambda: c.statistics.recognition(who, by=by, day_from=day_from, day_to=day_to, org_code=org_code))
    return {"code": "ok"} | res


@router.get(
    "/statistics/recognized-elsewhere",
    **op(["BJ-1.3", "BJ-1.4", "XC-P4"], "本机构的检查检验结果被外院互认（采纳 / 不采纳）的次数：合计、按检查 / 检验、按采纳机构"),
)
async def recognized_elsewhere(
    c: Services,
    who: Caller,
    day_from: Day | None = Query(None, description="开始日期 YYYY-MM-DD，默认结束日期前29天"),
    day_to: Day | None = Query(None, description="结束日期（含），默认今天"),
    org_code: str | None = Query(None, description="结果所属机构编码，默认本机构（监管用户可查辖区内机构）"),
) -> dict[str, Any]:
    res = await run_in_threadpool(
        lambda: c.recognition.recognized_elsewhere(who, org_code=org_code, day_from=day_from, day_to=day_to)
    )
    return {"code": "ok"} | res
