"""The doctor's report view (XC-S1, XJ-1.3.2.4): a report with units, ranges as the report writes them
and H/L marks, its PDF inline, and citing chosen lab sub-items — the text for the record and the
same huren:decisions message to the HIS as the decision dialog. Served by the platform and the gateway.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from huren.domain import dictionaries, kinds
from huren.errors import InvalidInput
from huren.web import his_message
from huren.web.doctor_visit import VISIT_LABELS, ref_range
from huren.web.doctor_visit import form_visit as _form_visit
from huren.web.doctor_visit import given as _given
from huren.web.doctor_visit import missing_visit as _missing_visit
from huren.web.doctor_visit import page_visit as _visit
from huren.web.doctor_visit import record as _record
from huren.web.doctor_visit import visit_errors as _visit_errors
from huren.web.render import Caller, backend, caller, form_caller, invalid, page
from huren.web.routes_doctor import as_list, call, his_origins, now_text, require_doctor, to_his

router = APIRouter(include_in_schema=False)


def kind_param(kind: str) -> str:
    if kind not in kinds.BY_NAME:
        raise invalid("kind", "dictionary", "报告类型应为 lab（检验）或 exam（检查）")
    return kind


@router.get("/ui/report/{kind}/{report_id}")
async def report_view(request: Request, kind: str, report_id: str, who: Annotated[Caller, Depends(caller)]) -> Response:
    require_doctor(who)
    kind_param(kind)
    rep = await call(backend(request).report, kind, report_id, who.principal)
    given = _given(request.query_params)
    visit = _visit(request, who, given)
    return _report_page(request, who, kind, rep, visit, given)


def _report_page(
    request: Request, who: Caller, kind: str, rep: dict[str, Any], visit: dict[str, str], given: dict[str, str],
    *, quoted: int = 0, errors: list[str] | None = None, status: int = 200, more: dict[str, Any] | None = None,
) -> Response:
    k = kinds.BY_NAME[kind]
    master = rep[k.master_node]
    items = rep[k.item_node]
    return page(
        request, who, "doctor/report.html", status, title=k.report_name, kind=kind, kind_name=k.zh, rep=rep,
        m=master, items=items, visit=visit, missing=_missing_visit(visit), given=given, quoted=quoted, errors=errors or [],
        interpret=dictionaries.load("STD_OBSERVATION_INTERPRET"), visit_labels=VISIT_LABELS,
        event_types=dictionaries.load("STD_EVENT_TYPE"), std_depts=dictionaries.load("STD_DEPT"),
        pdf_url=who.url(f"/ui/report/{kind}/{rep['report_id']}/pdf") if rep.get("has_pdf") else "",
        back=who.url("/ui/panel", id_type_code=master["id_type_code"], id_no=master["id_no"], **given),
        **(more or {}),
    )


@router.get("/ui/report/{kind}/{report_id}/pdf")
async def report_pdf(request: Request, kind: str, report_id: str, who: Annotated[Caller, Depends(caller)]) -> Response:
    require_doctor(who)
    data = await call(backend(request).pdf, kind_param(kind), report_id, who.principal)
    return Response(
        data, media_type="application/pdf",
        headers={
            "Content-Disposition": f'inline; filename="{kind}-{report_id}.pdf"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.post("/ui/quote")
async def quote(request: Request) -> Response:
    """Cite a report in the medical record (XJ-1.3.2.4): one quote record per chosen item (a lab
    report's sub-items ticked on the report page, every item when none is sent; an exam report's
    items), the text of the cited results for the record, and the same message as the decision
    dialog's (``action: "quote"``) posted to the HIS page."""
    who, form = await form_caller(request)
    require_doctor(who)
    kind = kind_param(str(form.get("kind") or ""))
    report_id = str(form.get("report_id") or "")  # the report's ref: one that names none is the pages' 404
    b = backend(request)
    rep = await call(b.report, kind, report_id, who.principal)
    visit = who.pin(_form_visit(form))
    given = _given(form)
    k = kinds.BY_NAME[kind]
    m = rep[k.master_node]
    node = rep[k.item_node]
    chosen = set(as_list(form.get("item")))
    if chosen and kind == "lab":
        node = [i for i in node if i[k.item_code_field] in chosen]
    errors = _visit_errors(visit)
    if not node:
        errors.append("请至少选择一项要引用的检验结果")
    if not errors:
        when = now_text(request)
        row = {"hr_org_code": m["org_code"], "hr_report_form_no": m["report_form_no"], "type": k.record_type}
        records = [_record(row | {"code": i[k.item_code_field]}, visit, m["id_type_code"], m["id_no"], when) for i in node]
        try:
            n = await call(b.submit, "quote", {"sehr_quote_record": records}, who.principal)
        except InvalidInput as exc:
            errors = [exc.text(), *(p.message for p in exc.problems)]
        else:
            cited = _cited(kind, rep, node)
            text = his_message.quote_text(kind, rep.get("org_name") or m["org_code"], m.get("authenticator_dtime") or "",
                                          m.get("report_title") or "", cited)
            his = his_message.message("quote", id_type=m["id_type_code"], id_no=m["id_no"], visit=visit, when=when,
                                      quoted=cited, text=text)
            return to_his(request, who, _report_page(request, who, kind, rep, visit, given, quoted=n,
                                                      more={"his": his, "his_origins": his_origins(request), "quote_text": text}))
    return _report_page(request, who, kind, rep, visit, given, errors=errors, status=422)


def _cited(kind: str, rep: dict[str, Any], node: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The cited items in the message's item shape (huren.web.his_message)."""
    k = kinds.BY_NAME[kind]
    m = rep[k.master_node]
    base = {"type": k.record_type, "hr_org_code": m["org_code"], "org_name": rep.get("org_name") or "",
            "hr_report_form_no": m["report_form_no"], "report_id": rep["report_id"], "dtime": m.get("authenticator_dtime") or ""}
    out = []
    for i in node:
        if kind == "lab":
            lo, hi = i.get("norm_lower_limit") or "", i.get("norm_upper_limit") or ""
            ref = ref_range(lo, hi, i.get("norm_value_notes") or "")
            out.append(base | {"code": i["class_code"], "name": i.get("class_name") or i.get("class_local_name") or "",
                               "result": str(i.get("result_value") or ""), "unit": i.get("result_unit") or "", "ref": ref,
                               "flag": i.get("result_interpre") or ""})
        else:
            out.append(base | {"code": i["exam_item_code"], "name": i.get("exam_item_name") or "",
                               "result": m.get("conclusion") or "", "unit": "", "ref": "", "flag": ""})
    return out


