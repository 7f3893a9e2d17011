"""The visit of a doctor's page (seed 002 sehr_accept_record / sehr_quote_record fields): what
the HIS passes, what the directory knows of the doctor, what the dialog asks for, and the record
a decision or a quote is written as. Used by ``huren.web.routes_doctor``."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import Request

from huren.domain import dictionaries
from huren.domain.idcard import mask
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
    v = who.pin({k: "" for k in VISIT_PARAMS} | {"event_type": "1"} | backend(request).staff_visit(who.principal) | given)
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


# -- what the panel and the dialog show of a row ---------------------------------------------------
#: the ten reasons of non-recognition (dictionary REJECT_REASON) in a few characters, for a narrow
#: dialog; the full text is the option's hover title
REJECT_SHORT = {
    "1": "病情变化",
    "2": "结果变化快",
    "3": "重大诊疗措施前",
    "4": "与病情不符",
    "5": "原结果有疑",
    "6": "影像不满足诊断",
    "7": "急诊急救",
    "8": "患者要求复查",
    "9": "鉴定所需",
    "10": "其他诊疗需要",
}


def ref_range(lower: str, upper: str, notes: str = "") -> str:
    """A reference range as a report writes it: "3.5-5.5", "<5.20", ">60", else the report's own
    note ("阴性"), else ""."""
    lower, upper = (lower or "").strip(), (upper or "").strip()
    if lower and upper:
        return f"{lower}-{upper}"
    if upper:
        return f"<{upper}"
    if lower:
        return f">{lower}"
    return (notes or "").strip()


def short_date(text: str, year: int) -> str:
    """A record time as a narrow row shows it: "12-29" within ``year``, else "2025-12-29"."""
    day = (text or "")[:10]
    return day[5:] if day[:4] == str(year) else day


def summary(count: int, expiries: list[str], year: int) -> str:
    """The line over a list: "7 项可互认，最早 12-29 到期" (``expiries``: the recognizable items'
    expired_time)."""
    if not count:
        return "没有可互认的结果"
    first = min((e for e in expiries if e), default="")
    return f"{count} 项可互认，最早 {short_date(first, year)} 到期" if first else f"{count} 项可互认"


def age_on(birth: str, today: date) -> str:
    """Whole years from a birth date (YYYY-MM-DD…) to ``today``; "" when it cannot be read."""
    try:
        born = date(int(birth[:4]), int(birth[5:7]), int(birth[8:10]))
    except (ValueError, IndexError):
        return ""
    years = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    return f"{years}岁" if 0 <= years < 150 else ""


def patient_header(info: dict[str, str], id_type: str, id_no: str, today: date) -> dict[str, str]:
    """The patient line of the panel and the dialog: name, sex and age as the newest report writes
    them (a resident ID number gives sex and birth date when the report does not), and the ID
    number masked (huren.domain.idcard.mask)."""
    birth = info.get("birth_date") or ""
    sex = info.get("sex_name") or {"1": "男", "2": "女"}.get(info.get("sex_code") or "", "")
    if id_type == "01" and len(id_no) == 18 and id_no[:17].isdigit():
        birth = birth or f"{id_no[6:10]}-{id_no[10:12]}-{id_no[12:14]}"
        sex = sex or ("男" if int(id_no[16]) % 2 else "女")
    return {"name": info.get("name") or "", "sex": sex, "age": age_on(birth, today), "id": mask(id_no)}
