"""The doctor's side of the pages (issue #6): the status widget a HIS embeds, the 450×500
reminder panel, the decision dialog for ordered items, the report view (:mod:`huren.web.routes_report`) with citing, and the
embedding notes for HIS vendors.

Embedded pages (widget, panel, dialog, report) work with the doctor's API token (``token``),
carried on in every link and form; the same pages also work inside a logged-in session, where
forms carry the session's CSRF token. Visit parameters a HIS may pass (``event_no`` …) win over
what the platform knows of the logged-in doctor (staff and department directory).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from functools import partial
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from huren.api.headers import content_security_policy
from huren.domain import dictionaries, kinds
from huren.domain.recognition import REASONS, SHORT_REASONS
from huren.errors import HurenError, InvalidInput
from huren.web import his_message
from huren.web.doctor_visit import REJECT_SHORT, VISIT_LABELS, patient_header, ref_range, short_date, summary
from huren.web.doctor_visit import form_visit as _form_visit
from huren.web.doctor_visit import given as _given
from huren.web.doctor_visit import missing_visit as _missing_visit
from huren.web.doctor_visit import page_visit as _visit
from huren.web.doctor_visit import patient as _patient
from huren.web.doctor_visit import record as _record
from huren.web.doctor_visit import visit_errors as _visit_errors
from huren.web.render import DOCTOR_ROLES, MENU, Caller, LoginRequired, backend, caller, form_caller, invalid, page

router = APIRouter(include_in_schema=False)
T = TypeVar("T")

#: what one row of the decision dialog carries (hidden, as JSON) from the GET to the POST
ROW_KEYS = (
    "type", "hr_org_code", "hr_report_form_no", "code", "name", "org_name", "dtime", "pacs_url", "report_id",
    "result", "unit", "ref", "flag", "done", "done_reason", "done_at", "expired_time",
)
EMBED_ROLES = tuple(dict.fromkeys(r for m in MENU if m.path == "/ui/embed" for r in m.roles))


# -- helpers ------------------------------------------------------------------------------------
def require_doctor(who: Caller) -> None:
    who.require(DOCTOR_ROLES, "医生工作台页面")


def _catalog(request: Request) -> dict[str, list[dict[str, Any]]]:
    b = backend(request)
    return {kind: b.catalog(kind) for kind in kinds.NAMES}


def _split(recent: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return [r for r in recent if r["type"] == kinds.EXAM.order_key], [r for r in recent if r["type"] == kinds.LAB.order_key]


def now_text(request: Request) -> str:
    return backend(request).now_text()


async def call(fn: Callable[..., T], *args: Any, **kw: Any) -> T:
    """A backend call off the event loop (the gateway's may wait on the platform)."""
    return await run_in_threadpool(partial(fn, *args, **kw))


def _year(request: Request) -> int:
    return int(now_text(request)[:4])


def _header(request: Request, info: dict[str, str], id_type: str, id_no: str) -> dict[str, str]:
    now = now_text(request)
    return patient_header(info, id_type, id_no, date(int(now[:4]), int(now[5:7]), int(now[8:10])))


def _why(code: str) -> dict[str, str]:
    """A reason of non-recognition for a narrow row: its short label and its full text."""
    return {"short": SHORT_REASONS.get(code, "不可互认"), "full": REASONS.get(code, "不满足互认条件")} if code else {}


def _panel_rows(recent: list[dict[str, Any]], year: int) -> list[dict[str, Any]]:
    """The recent list as the panel's compact rows: short dates, valid-until, the reason of a row
    without ★, and each lab sub-item's own verdict."""
    out = []
    for r in recent:
        star = r["recognition"] == "1"
        items = [
            {
                "name": i.get("item_name") or i.get("item_code") or "", "star": i.get("recognition") == "1",
                "until": short_date(str(i.get("expired_time") or ""), year), "until_full": str(i.get("expired_time") or "")[:10],
                "why": _why("" if i.get("recognition") == "1" else str(i.get("reason") or "")),
            }
            for i in r.get("items") or []
        ]
        out.append(r | {
            "star": star, "date": short_date(r["dtime"], year), "until": short_date(r.get("expired_time") or "", year),
            "until_full": (r.get("expired_time") or "")[:10], "why": _why("" if star else str(r.get("reason") or "")),
            "subitems": items,
        })
    return out


def _panel_summary(recent: list[dict[str, Any]], year: int) -> str:
    """"7 项可互认，最早 12-29 到期": the ★ rows, and the earliest end of validity among the
    recognizable exam items and lab sub-items."""
    expiries: list[str] = []
    for r in recent:
        if r["recognition"] != "1":
            continue
        subs = [str(i.get("expired_time") or "") for i in r.get("items") or [] if i.get("recognition") == "1"]
        expiries += subs or [str(r.get("expired_time") or "")]
    return summary(sum(1 for r in recent if r["recognition"] == "1"), expiries, year)


def as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


# -- 1. patient lookup for a logged-in doctor ----------------------------------------------------
@router.get("/ui/doctor")
async def doctor_home(request: Request, who: Annotated[Caller, Depends(caller)]) -> Response:
    require_doctor(who)
    q = request.query_params
    given = _given(q)
    id_type = q.get("id_type_code", "01")
    id_no = q.get("id_no", "").strip()
    error = ""
    recent: list[dict[str, Any]] | None = None
    if id_no:
        try:
            id_type, id_no = _patient(q)
            recent = await call(backend(request).recent, who.principal, id_type, id_no, _visit(request, who, given))
        except InvalidInput as exc:
            error = "；".join([exc.text(), *(p.message for p in exc.problems)])
    year = _year(request)
    exams, labs = _split(_panel_rows(recent or [], year))
    return page(
        request, who, "doctor/lookup.html", title="患者互认查询",
        id_types=dictionaries.load("STD_ID_TYPE"), id_type=id_type, id_no=id_no, error=error, searched=recent is not None,
        exams=exams, labs=labs, catalog=_catalog(request) if recent is not None else {}, given=given,
        starred={r["item_code"] for r in exams if r["recognition"] == "1"},
        summary=_panel_summary(recent, year) if recent is not None else "",
        cache_note=backend(request).cache_note(id_type, id_no) if recent is not None else "",
    )


# -- 2. the status widget ------------------------------------------------------------------------
@router.get("/ui/widget")
async def widget(request: Request, who: Annotated[Caller, Depends(caller)]) -> Response:
    """Green icon with the number of recognizable results (entries with recognition "1" of the
    90-day recent list), grey and inert when there are none."""
    require_doctor(who)
    q = request.query_params
    id_type, id_no = _patient(q)
    given = _given(q)
    recent = await call(backend(request).recent, who.principal, id_type, id_no, _visit(request, who, given))
    count = sum(1 for r in recent if r["recognition"] == "1")
    panel = who.url("/ui/panel", id_type_code=id_type, id_no=id_no, **given)
    return page(request, who, "doctor/widget.html", title="互认提醒", count=count, total=len(recent), panel_url=panel,
                embedded=q.get("embed") == "script")


# -- 4. the reminder panel -----------------------------------------------------------------------
@router.get("/ui/panel")
async def panel(request: Request, who: Annotated[Caller, Depends(caller)]) -> Response:
    require_doctor(who)
    q = request.query_params
    id_type, id_no = _patient(q)
    given = _given(q)
    b = backend(request)
    recent = await call(b.recent, who.principal, id_type, id_no, _visit(request, who, given))
    info = await call(b.patient, who.principal, id_type, id_no)
    year = _year(request)
    exams, labs = _split(_panel_rows(recent, year))
    return page(
        request, who, "doctor/panel.html", title="检查检验结果互认提醒", id_type=id_type, id_no=id_no,
        exams=exams, labs=labs, catalog=_catalog(request), given=given,
        starred={r["item_code"] for r in exams if r["recognition"] == "1"},
        patient=_header(request, info, id_type, id_no), summary=_panel_summary(recent, year),
        cache_note=b.cache_note(id_type, id_no),
    )


# -- 5. the decision dialog ----------------------------------------------------------------------
def _done(entry: dict[str, Any]) -> dict[str, str]:
    """The decision already recorded for this visit (HZ-16), if the answer carries one."""
    d = entry.get("decision") or {}
    return {"done": str(d.get("is_accept") or ""), "done_reason": str(d.get("reason") or ""), "done_at": str(d.get("record_time") or "")}


def _rows(answer: dict[str, Any]) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for m in answer["exammaster"]:
        rows.append(_done(m) | {
            "type": kinds.EXAM.record_type, "hr_org_code": m["org_code"], "hr_report_form_no": m["report_form_no"], "code": m["item_code"],
            "name": m["item_name"], "org_name": m["org_name"], "dtime": m["dtime"], "pacs_url": m.get("pacs_url") or "",
            "report_id": m["report_id"], "result": m.get("conclusion") or "", "unit": "", "ref": "", "flag": "",
            "expired_time": m.get("expired_time") or "",
        })
    for m in answer["labmaster"]:
        # one row per standard code of a report: a decision is per code (sehr_accept_record.code),
        # and the sub-items of a panel (血常规: white cells, red cells, …) share the panel's code
        by_code: dict[str, tuple[dict[str, str], dict[str, list[str]]]] = {}
        for i in m["item"]:
            lo, hi = i.get("lower_value") or "", i.get("upper_value") or ""
            part = {
                "name": i["item_name"], "result": str(i.get("result_value") or ""), "unit": i.get("result_unit") or "",
                "ref": ref_range(lo, hi), "flag": i.get("result_interpre") or "",
            }
            if i["item_code"] not in by_code:
                row = _done(i) | {
                    "type": kinds.LAB.record_type, "hr_org_code": m["org_code"], "hr_report_form_no": m["report_form_no"],
                    "code": i["item_code"], "org_name": m["org_name"], "dtime": m["dtime"], "pacs_url": "",
                    "report_id": m["report_id"], "expired_time": i.get("expired_time") or "",
                }
                by_code[i["item_code"]] = (row, {k: [] for k in part})
                rows.append(row)
            for k, v in part.items():
                by_code[i["item_code"]][1][k].append(v)
        for row, parts in by_code.values():
            row.update({k: "；".join(vs) if any(vs) else "" for k, vs in parts.items()})
    return rows


def _dialog(
    request: Request, who: Caller, *, id_type: str, id_no: str, rows: list[dict[str, str]], visit: dict[str, str],
    given: dict[str, str], decided: dict[int, tuple[str, str]] | None = None, errors: list[str] | None = None,
    unmapped: list[dict[str, str]] | None = None, status: int = 200, patient: dict[str, str] | None = None,
    cache_note: str = "",
) -> Response:
    year = _year(request)
    pending_rows = [r for r in rows if not r.get("done")]
    return page(
        request, who, "doctor/decide.html", status, title="检查检验结果互认确认", id_type=id_type, id_no=id_no,
        rows=[(i, r, json.dumps(r, ensure_ascii=False)) for i, r in enumerate(rows)],
        exam_rows=[(i, r) for i, r in enumerate(rows) if r["type"] == kinds.EXAM.record_type],
        lab_rows=[(i, r) for i, r in enumerate(rows) if r["type"] == kinds.LAB.record_type],
        visit=visit, missing=_missing_visit(visit), given=given, decided=decided or {}, errors=errors or [],
        pending=sum(1 for r in rows if not r.get("done")),
        unmapped=unmapped or [], reasons=dictionaries.load("REJECT_REASON"), visit_labels=VISIT_LABELS,
        event_types=dictionaries.load("STD_EVENT_TYPE"), std_depts=dictionaries.load("STD_DEPT"),
        reject_short=REJECT_SHORT, year=year, short_date=short_date,
        patient=_header(request, patient or {}, id_type, id_no), cache_note=cache_note,
        summary=summary(len({(r["type"], r["code"]) for r in rows}), [r.get("expired_time", "") for r in rows], year),
        pending_summary=len(pending_rows),
    )


@router.get("/ui/decide")
async def decide_form(request: Request, who: Annotated[Caller, Depends(caller)]) -> Response:
    require_doctor(who)
    q = request.query_params
    id_type, id_no = _patient(q)
    given = _given(q)
    visit = _visit(request, who, given)
    check = [c.strip() for c in q.getlist("check") if c.strip()]
    lab = [c.strip() for c in q.getlist("lab") if c.strip()]
    if not check and not lab:
        raise invalid("check", "required", "请至少选择一个要开立的检查或检验项目")
    b = backend(request)
    answer = await call(b.exists, who.principal, id_type, id_no, check, lab, visit)
    info = await call(b.patient, who.principal, id_type, id_no)
    return _dialog(request, who, id_type=id_type, id_no=id_no, rows=_rows(answer), visit=visit, given=given,
                   unmapped=answer["unmapped"], patient=info, cache_note=b.cache_note(id_type, id_no))


def _posted_rows(form: dict[str, Any]) -> list[dict[str, str]]:
    rows = []
    for raw in as_list(form.get("row")):
        try:
            r = json.loads(raw)
        except ValueError:
            raise invalid("row", "format", "表单数据已损坏，请重新打开互认确认页面") from None
        if not isinstance(r, dict) or r.get("type") not in kinds.BY_RECORD_TYPE:
            raise invalid("row", "format", "表单数据已损坏，请重新打开互认确认页面")
        rows.append({k: str(r.get(k) or "")[:4000] for k in ROW_KEYS})
    if not rows:
        raise invalid("row", "required", "没有需要确认的项目")
    return rows


@router.post("/ui/decide")
async def decide_save(request: Request) -> Response:
    who, form = await form_caller(request)
    require_doctor(who)
    id_type, id_no = _patient(form)
    rows = _posted_rows(form)
    visit = who.pin(_form_visit(form))
    given = _given(form)
    reasons = dictionaries.load("REJECT_REASON")
    decided: dict[int, tuple[str, str]] = {}
    errors: list[str] = []
    for i, r in enumerate(rows):
        if r["done"]:  # decided for this visit already (HZ-16): shown, not sent again
            continue
        acc = str(form.get(f"is_accept_{i}") or "")
        reason = str(form.get(f"reason_{i}") or "") if acc == "2" else ""
        decided[i] = (acc, reason)
        label = f"第 {i + 1} 行“{r['name']}”（{r['org_name']}）"
        if acc not in ("1", "2"):
            errors.append(f"{label}尚未选择“互认”或“不互认”")
        elif acc == "2" and reason not in reasons:
            errors.append(f"{label}选择了“不互认”，请选择不互认理由")
    errors += _visit_errors(visit)

    def again(msgs: list[str]) -> Response:
        return _dialog(request, who, id_type=id_type, id_no=id_no, rows=rows, visit=visit, given=given,
                       decided=decided, errors=msgs, status=422)

    if errors:
        return again(errors)
    when = now_text(request)
    records = [
        _record(r, visit, id_type, id_no, when) | {"is_accept": decided[i][0], "reason": decided[i][1]}
        for i, r in enumerate(rows)
        if i in decided
    ]
    if not records:
        return again(["这些项目本次就诊均已记录互认结果，无需再次保存"])
    try:
        n = await call(backend(request).submit, "accept", {"sehr_accept_record": records}, who.principal)
    except InvalidInput as exc:
        return again([exc.text(), *(p.message for p in exc.problems)])
    saved = [(r, decided[i]) for i, r in enumerate(rows) if i in decided]
    his = his_message.message(
        "decide", id_type=id_type, id_no=id_no, visit=visit, when=when, reasons=reasons,
        accepted=[r for r, d in saved if d[0] == "1"], rejected=[(r, d[1]) for r, d in saved if d[0] == "2"],
    )
    return to_his(request, who, page(request, who, "doctor/decided.html", title="互认记录已保存", n=n, saved=saved, reasons=reasons,
                                      his=his, his_origins=his_origins(request),
                                      back=who.url("/ui/panel", id_type_code=id_type, id_no=id_no, **given)))


def his_origins(request: Request) -> str:
    """The HIS origins the saved page posts its message to, space-separated: the platform's
    HUREN_HIS_ORIGINS, or the gateway's ``[preload] his_origins``."""
    c = getattr(request.app.state, "container", None)
    if c is not None:
        return " ".join(c.settings.his_origin_list)
    return " ".join(getattr(request.app.state, "his_origins", ()))


def to_his(request: Request, who: Caller, resp: Response) -> Response:
    """A page that posts the message to the page token's callback: its CSP lets it connect there
    (the callback's origin only, one of HUREN_HIS_ORIGINS when the token was minted)."""
    c = getattr(request.app.state, "container", None)
    if who.callback and c is not None:
        u = urlsplit(who.callback)
        origin = f"{u.scheme}://{u.netloc}"
        resp.headers["Content-Security-Policy"] = f"{content_security_policy(c.settings.frame_ancestors)}; connect-src 'self' {origin}"
    return resp


@router.get("/ui/alive")
async def alive(request: Request) -> Response:
    """Whether the page's token or session is still valid (200, with the session's current form
    token) or not (401), asked by the decision dialog before it sends the doctor's choices: an
    expired login keeps them on the page, and after a new login the form carries the new session's
    form token. Same-origin scripts only can read the answer (no CORS)."""
    headers = {"Cache-Control": "no-store"}
    try:
        who = await caller(request)
    except (LoginRequired, HurenError):
        return JSONResponse({"alive": False}, 401, headers=headers)
    return JSONResponse({"alive": True, "csrf": who.csrf or ""}, headers=headers)


# -- 7. notes for HIS vendors ------------------------------------------------------------------------
@router.get("/ui/embed")
async def embed(request: Request, who: Annotated[Caller, Depends(caller)]) -> Response:
    who.require(EMBED_ROLES, "HIS 嵌入说明")
    # the platform's configured public address (HUREN_PUBLIC_BASE_URL), never the Host header; the
    # gateway's local API admits only its own listener's Host names (LocalGuard), so there it is that
    base = getattr(request.app.state, "public_base", None) or str(request.base_url).rstrip("/")
    return page(request, who, "doctor/embed.html", title="HIS 嵌入说明", base=base, visit_labels=VISIT_LABELS)
