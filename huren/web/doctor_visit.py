"""The visit of a doctor's page (seed 002 sehr_accept_record / sehr_quote_record fields): what
the HIS passes, what the directory knows of the doctor, what the dialog asks for, and the record
a decision or a quote is written as. Used by ``huren.web.routes_doctor``."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from huren.domain import dictionaries
from huren.domain.limits import clean_text
from huren.domain.recognition import VISIT_MAX
from huren.web.render import Caller, backend, invalid

#: visit parameters a HIS may pass in the URL (they win over the directory's defaults)
VISIT_PARAMS = ("event_no", "event_type", "dept_code", "dept_name", "dept_std_code", "dept_std_name", "doc_code", "doc_name")
VISIT_LABELS = {
    "event_no": "就诊流水号",
    "event_type": "就诊类型",
    "dept_code": "科室编码",
    "dept_name": "科室名称",
    "dept_std_code": "标准科室",
    "dept_std_name": "标准科室名称",
    "doc_code": "医生编码",
    "doc_name": "医生姓名",
}


def visit_value(k: str, v: Any) -> str:
    """A visit parameter, trimmed, held to the visit's own rules (huren.domain: at most VISIT_MAX
    characters, no control or bidi characters); too long is refused, never cut (a cut visit number
    would name another visit)."""
    text = v.strip() if isinstance(v, str) else ""
    return clean_text(text, k, VISIT_LABELS[k], VISIT_MAX)


def given(params: Any) -> dict[str, str]:
    """The visit parameters the HIS passed (query string or form), trimmed."""
    out: dict[str, str] = {}
    for k in VISIT_PARAMS:
        v = visit_value(k, params.get(k))
        if v:
            out[k] = v
    return out


def page_visit(request: Request, who: Caller, given: dict[str, str]) -> dict[str, str]:
    """The visit of the page: directory defaults, then the HIS's parameters on top."""
    v = {k: "" for k in VISIT_PARAMS} | {"event_type": "1"} | backend(request).staff_visit(who.principal) | given
    if v["dept_std_code"] and not given.get("dept_std_name"):
        v["dept_std_name"] = v["dept_std_name"] or dictionaries.load("STD_DEPT").get(v["dept_std_code"], "")
    return v


def patient(params: Any) -> tuple[str, str]:
    id_type = str(params.get("id_type_code") or "01").strip()
    id_no = str(params.get("id_no") or "").strip()
    if id_type not in dictionaries.load("STD_ID_TYPE"):
        raise invalid("id_type_code", "dictionary", f"证件类型“{id_type}”无效")
    if not id_no:
        raise invalid("id_no", "required", "请填写患者证件号码")
    return id_type, id_no


def missing_visit(v: dict[str, str]) -> list[str]:
    return [k for k in VISIT_PARAMS if not v.get(k)]


def form_visit(form: dict[str, Any]) -> dict[str, str]:
    v = {k: visit_value(k, form.get(k)) for k in VISIT_PARAMS}
    if v["dept_std_code"] and not v["dept_std_name"]:
        v["dept_std_name"] = dictionaries.load("STD_DEPT").get(v["dept_std_code"], "")
    return v


def visit_errors(v: dict[str, str]) -> list[str]:
    errors = [f"请填写{VISIT_LABELS[k]}" for k in missing_visit(v)]
    if v["event_type"] and v["event_type"] not in dictionaries.load("STD_EVENT_TYPE"):
        errors.append("就诊类型无效")
    if v["dept_std_code"] and v["dept_std_code"] not in dictionaries.load("STD_DEPT"):
        errors.append(f"标准科室编码“{v['dept_std_code']}”无效")
    return errors


def record(r: dict[str, str], v: dict[str, str], id_type: str, id_no: str, when: str) -> dict[str, str]:
    return {
        "new_event_no": v["event_no"], "new_event_type": v["event_type"], "hr_org_code": r["hr_org_code"],
        "hr_report_form_no": r["hr_report_form_no"], "code": r["code"], "id_no": id_no, "id_type_code": id_type,
        "record_time": when, "type": r["type"], "dept_code": v["dept_code"], "dept_name": v["dept_name"],
        "dept_std_code": v["dept_std_code"], "dept_std_name": v["dept_std_name"], "doc_code": v["doc_code"],
        "doc_name": v["doc_name"],
    }
