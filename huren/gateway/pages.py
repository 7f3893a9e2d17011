"""The doctor's pages served by the gateway for local use (issue #6): the same widget, reminder
panel, decision dialog and report view as the platform's, answered from the preload cache.

Enabled by ``[preload] page_token`` (at least 24 characters): the HIS opens
``http://<gateway>/ui/widget?id_type_code=01&id_no=…&token=<page_token>`` on the hospital's
network. Recent records and exists-for-order come from the cache (fetched from the platform
while it answers, stale but available when it does not); decisions are validated, kept and
queued in the outbox exactly as the local API's ``/accept`` and ``/quote``; a report is read
through the platform (its view is logged there) or, while the platform is down, from the cached
recognizable detail; a PDF only through the platform.
"""

from __future__ import annotations

import hmac
import threading
from datetime import datetime
from typing import Any

from huren.context import Principal
from huren.domain import kinds
from huren.domain.recognition import Visit
from huren.errors import NotFound, PlatformRefused, PlatformUnavailable, Unauthorized
from huren.gateway.desk import DecisionDesk
from huren.gateway.preload_cache import PreloadCache, patient_key, still_recognizable
from huren.gateway.preload_conf import MIN_TOKEN
from huren.gateway.preload_store import Entry


class GatewayBackend:
    """``huren.web.backend.DoctorBackend`` over the gateway's preload cache and outbox."""

    where = "gateway"

    def __init__(self, cache: PreloadCache, desk: DecisionDesk, org_code: str, page_token: str) -> None:
        if len(page_token) < MIN_TOKEN:
            raise ValueError(f"[preload] page_token 过短：至少 {MIN_TOKEN} 个字符")
        self.cache = cache
        self.desk = desk
        self.org_code = org_code
        self._token = page_token
        #: patient key → when its stale cache entry was filled, for the pages' note
        self._notes: dict[tuple[str, str], str] = {}
        self._notes_guard = threading.Lock()

    def verify_token(self, token: str) -> Principal:
        if not hmac.compare_digest(token.encode(), self._token.encode()):
            raise Unauthorized("页面令牌无效：请使用前置机配置的 page_token 打开本页面")
        return Principal(self.org_code, "his", "hospital")

    def now_text(self) -> str:
        return self.cache.clock.now().strftime("%Y-%m-%d %H:%M:%S")

    def staff_visit(self, principal: Principal) -> dict[str, str]:
        return {}  # the HIS passes the visit (doctor, department) in the page's URL

    def catalog(self, kind: str) -> list[dict[str, Any]]:
        ref = self.cache.held_reference() or {}
        names = ref.get("names", {}).get(kind, {})
        return [{"kind": kind, "code": c, "name": names.get(c, c)} for c in ref.get("catalog", {}).get(kind, [])]

    @staticmethod
    def _visit(v: dict[str, str]) -> Visit:
        return Visit(**{k: v.get(k, "") for k in Visit.__slots__})

    def _entry(self, id_type: str, id_no: str, visit: Visit) -> Entry:
        """The patient's cache entry; whether it was answered stale is remembered for the page's
        note; the platform's failure is said in plain Chinese (never an exception's text)."""
        try:
            entry = self.cache.get(id_type, id_no, visit=visit)
        except PlatformUnavailable:
            raise PlatformUnavailable(UNAVAILABLE) from None
        except PlatformRefused as exc:
            raise plain_refusal(exc) from None
        key = patient_key(id_type, id_no)
        with self._notes_guard:
            if entry.stale:
                if len(self._notes) > 4096:
                    self._notes.clear()
                self._notes[key] = entry.fetched_text(self.cache.clock)[:16]
            else:
                self._notes.pop(key, None)
        return entry

    def cache_note(self, id_type: str, id_no: str) -> str:
        with self._notes_guard:
            return self._notes.get(patient_key(id_type, id_no), "")

    def recent(self, principal: Principal, id_type: str, id_no: str, visit: dict[str, str]) -> list[dict[str, Any]]:
        entry = self._entry(id_type, id_no, self._visit(visit))
        return rejudged(self.cache.recent(entry), self.cache.clock.now())

    def patient(self, principal: Principal, id_type: str, id_no: str) -> dict[str, str]:
        """Name, sex and birth date from the newest cached report of the patient (the cache holds
        the recognizable detail only), without asking the platform."""
        entry = self.cache.load(*patient_key(id_type, id_no))
        if entry is None:
            return {}
        masters = [m for node in ("exammaster", "labmaster") for m in entry.detail.get(node, [])]
        if not masters:
            return {}
        m = max(masters, key=lambda m: str(m.get("authenticator_dtime") or ""))
        return {k: str(m.get(k) or "") for k in ("name", "sex_code", "sex_name")} | {"birth_date": str(m.get("birth_date") or "")[:10]}

    def exists(
        self, principal: Principal, id_type: str, id_no: str, check: list[str], lab: list[str], visit: dict[str, str]
    ) -> dict[str, Any]:
        v = self._visit(visit)
        entry = self._entry(id_type, id_no, v)
        return self.desk.exists(entry, v, check=check, lab=lab)

    def submit(self, table: str, payload: Any, principal: Principal) -> int:
        return int(self.desk.submit(table, payload)["rows"])

    def report(self, kind: str, report_id: str, principal: Principal) -> dict[str, Any]:
        """A report by the platform's ref: from the platform, or (platform down) from the cache."""
        r = self.cache.platform_report(kind, report_id)
        if r is not None and r.status_code not in (200, 404) and r.status_code < 500:
            raise NotFound("互认平台未能提供这份报告，请稍后重试")
        if r is not None and r.status_code == 200:
            body: dict[str, Any] = r.json()["report"]
            return body
        if r is not None and r.status_code == 404:
            raise NotFound("报告不存在")
        m = self.cache.find_report(kind, report_id)
        if m is None:
            raise NotFound("互认平台暂时无法访问，本地缓存中也没有这份报告，请稍后重试")
        self.desk.viewed(kind, m)  # the platform did not see this view: it is queued for its log
        return cached_report(kind, m)

    def pdf(self, kind: str, report_id: str, principal: Principal) -> bytes:
        r = self.cache.platform_report(kind, report_id, pdf=True)
        if r is None:
            raise NotFound("互认平台暂时无法访问，PDF 需从平台调阅，请稍后重试")
        if r.status_code != 200:
            raise NotFound("报告没有PDF文件")
        return r.content


#: what a doctor reads when the platform cannot be reached and nothing is cached for the patient
UNAVAILABLE = "互认平台暂时无法访问，本地也没有该患者的缓存记录，请稍后重试"


def plain_refusal(exc: PlatformRefused) -> PlatformRefused:
    """The platform's refusal as a doctor may read it: its Chinese message and the messages of its
    problems in one sentence, without field or rule codes."""
    body = exc.body if isinstance(exc.body, dict) else {}
    parts = [str(body.get("message") or "")] + [
        str(p.get("message") or "") for p in body.get("problems") or [] if isinstance(p, dict)
    ]
    text = "；".join(dict.fromkeys(p for p in parts if p))
    return PlatformRefused(exc.status, {"message": text})


def rejudged(recent: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """The cache's recent list with each lab sub-item judged again at the gateway's now (the cache
    takes the ★ off an entry whose validity has passed; its reason and its sub-items follow)."""
    out = []
    for e in recent:
        e = dict(e)
        kind = kinds.BY_ORDER_KEY.get(str(e.get("type")), kinds.LAB).name
        if isinstance(e.get("items"), list):
            items = []
            for i in e["items"]:
                i = dict(i)
                if i.get("recognition") == "1" and not still_recognizable(kind, str(i.get("item_code", "")), str(i.get("expired_time", "")), now):
                    i["recognition"], i["reason"] = "0", "expired"
                items.append(i)
            e["items"] = items
        if e.get("recognition") != "1" and e.get("reason") == "":
            # the platform names the reason of every entry without ★ ("" on recognizable ones): an
            # entry whose ★ the cache took off was recognizable when fetched, and only time did that
            e["reason"] = "expired"
        out.append(e)
    return out


def cached_report(kind: str, m: dict[str, Any]) -> dict[str, Any]:
    """A cached recognizable-detail report in the platform's report shape (master + items)."""
    k = kinds.BY_NAME[kind]
    master = {f.name: m.get(f.name) for f in k.master_fields}
    items = [{f.name: i.get(f.name) for f in k.item_fields} for i in m.get("item", [])]
    return {
        "report_id": m.get("report_id"),
        "kind": kind,
        "org_name": m.get("org_name", ""),
        "voided": False,
        "has_pdf": bool(m.get("pdf_url")),
        "received_at": m.get("create_at", ""),
        "cached": True,
        k.master_node: master,
        k.item_node: items,
    }
