"""The message the doctor's pages send back to the HIS page that opened them (issue 11 item 2):
``window.postMessage`` of one JSON object, version 1, to the HIS origins the platform is
configured to allow (``HUREN_HIS_ORIGINS``; never ``"*"``). The same schema answers the REST read
of a visit's decisions (``POST /api/v1/recognition/visit-decisions``) for a HIS that polls.

Schema ``huren:decisions`` version 1 (every field always present; lists may be empty)::

    type        "huren:decisions"
    version     1
    action      "decide" (the decision dialog was saved) | "quote" (results were cited)
    record_time when the platform recorded it, "YYYY-MM-DD hh:mm:ss" (local time)
    patient     {id_type_code, id_no}           the patient the HIS opened the page for
    visit       {event_no, event_type, dept_code, dept_name, dept_std_code, dept_std_name,
                 doc_code, doc_name}            the visit the records were written for
    accepted    [item]  recognized: withdraw these from the order
    rejected    [item + reason, reason_name]    not recognized: order them as usual
    quoted      [item]  cited into the record (action "quote")
    text        the cited results as text for the medical record ("" for "decide")

    item        {type ("1" 检查 | "2" 检验), kind ("exam" | "lab"), code (standard item code),
                 name, hr_org_code, org_name, hr_report_form_no, report_id (the report's ref),
                 dtime (report time), result, unit, ref (reference range), flag (H / L / …)}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from huren.domain import kinds

TYPE = "huren:decisions"
VERSION = 1
ITEM_KEYS = ("type", "code", "name", "hr_org_code", "org_name", "hr_report_form_no", "report_id", "dtime", "result", "unit", "ref", "flag")
VISIT_KEYS = ("event_no", "event_type", "dept_code", "dept_name", "dept_std_code", "dept_std_name", "doc_code", "doc_name")


def item(row: Mapping[str, Any]) -> dict[str, str]:
    out = {k: str(row.get(k) or "") for k in ITEM_KEYS}
    k = kinds.BY_RECORD_TYPE.get(out["type"])
    return out | {"kind": k.name if k else ""}


def message(
    action: str, *, id_type: str, id_no: str, visit: Mapping[str, str], when: str,
    accepted: Iterable[Mapping[str, Any]] = (), rejected: Iterable[tuple[Mapping[str, Any], str]] = (),
    quoted: Iterable[Mapping[str, Any]] = (), text: str = "", reasons: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    reasons = reasons or {}
    return {
        "type": TYPE,
        "version": VERSION,
        "action": action,
        "record_time": when,
        "patient": {"id_type_code": id_type, "id_no": id_no},
        "visit": {k: str(visit.get(k) or "") for k in VISIT_KEYS},
        "accepted": [item(r) for r in accepted],
        "rejected": [item(r) | {"reason": why, "reason_name": reasons.get(why, "")} for r, why in rejected],
        "quoted": [item(r) for r in quoted],
        "text": text,
    }


def quote_text(kind: str, org_name: str, dtime: str, title: str, rows: Iterable[Mapping[str, Any]]) -> str:
    """The cited results as the record writes them: one line per result, headed by the report."""
    head = f"【外院{kinds.BY_NAME[kind].zh}结果引用】{org_name} {dtime[:10]} {title}".rstrip()
    lines = [head]
    for r in rows:
        if kind == "lab":
            value = f"{r.get('result') or ''}{(' ' + str(r['unit'])) if r.get('unit') else ''}"
            flag = {"H": "↑", "L": "↓"}.get(str(r.get("flag") or ""), "")
            ref = f"（参考 {r['ref']}）" if r.get("ref") else ""
            lines.append(f"{r.get('name') or r.get('code')}：{value}{flag}{ref}")
        else:
            lines.append(f"{r.get('name') or r.get('code')}：{r.get('result') or '—'}")
    return "\n".join(lines)
