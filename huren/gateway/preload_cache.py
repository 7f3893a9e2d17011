"""The preload cache of the hospital front-end (XJ-1.3 预加载模式, XC-L-note).

On a card swipe the gateway fetches the patient's recent records and recognizable detail from the
platform (through ``huren.client``) and keeps them, per patient identity, in its file
(``preload_store``). Later questions for that patient are answered from the file while the entry
is fresh (``ttl_seconds``); a stale entry is fetched again, and when the platform cannot be
reached the stale entry is answered and said to be stale — the hospital keeps working while the
platform is down (XC-E-note).

Exists-for-order is answered locally with the platform's own answer (``huren.domain.answers``)
and rule (``huren.domain.recognition``): the platform has already judged catalog, item flag,
void, institution level and region when it wrote an ``expired_time`` on an item of the detail;
what is left for the gateway is time — the item is recognizable while now < its
``expired_time``. Ordered codes are resolved as the platform resolves them, against the catalog
codes and the institution's code map fetched from the platform and kept for ``ttl_seconds``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from contextlib import suppress
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from huren.client import HurenClient
from huren.crypto.aead import FieldCipher
from huren.domain import answers, kinds
from huren.domain.recognition import CatalogRule, PriorItem, Visit, judge
from huren.domain.records import format_value
from huren.domain.validation import canonical_id, check_identity
from huren.errors import InvalidInput, PlatformRefused, PlatformUnavailable, Problem
from huren.gateway.preload_store import Entry, PreloadStore, TimeSource

if TYPE_CHECKING:
    import httpx2

WINDOWS = (30, 90)
_DT = "%Y-%m-%d %H:%M:%S"


class _Down(Exception):
    """Internal: the platform did not answer (network error, timeout, 5xx, its own account refused)."""


def _parse(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, _DT) if text else None
    except ValueError:
        return None


def still_recognizable(kind: str, code: str, expired: str, now: datetime) -> bool:
    """Is an item the platform marked recognizable (with ``expired``) still so at ``now``?

    The platform applied catalog, flag, void, level and region before it wrote ``expired_time``;
    the rule left to judge locally is time, and it is the same rule: ``judge`` on an item whose
    validity ends at ``expired``."""
    end = _parse(expired)
    if end is None:
        return False
    rule = CatalogRule(kind, code, "", True, 0)  # validity already counted into ``expired``
    return judge(PriorItem(kind, code, 1, end, False, rule.min_level, ""), rule, now).recognizable


def patient_key(id_type_code: str, id_no: str) -> tuple[str, str]:
    """The canonical identity, or InvalidInput (checked locally, so a bad number never leaves)."""
    id_no = (id_no or "").strip()
    id_type_code = (id_type_code or "").strip()
    problems: list[Problem] = []
    if not id_no:
        problems.append(Problem("id_no", "required", "身份证件号码不能为空"))
    if not id_type_code:
        problems.append(Problem("id_type_code", "required", "身份证件类别代码不能为空"))
    check_identity(id_type_code, id_no, "id_no", problems)
    if problems:
        raise InvalidInput("患者身份证件无效", problems)
    return id_type_code, canonical_id(id_type_code, id_no) or id_no


class PreloadCache(PreloadStore):
    """Per-patient recent records and recognizable detail, fetched from the platform, in SQLite.

    ``client`` speaks to the platform; ``ttl_seconds`` is how long an entry answers without
    asking the platform again; ``days`` the window fetched (30 or 90); entries (and kept
    decisions) older than ``keep_seconds`` / ``decision_keep_seconds`` are purged — a stale
    entry still answers while the platform is down, up to that age. After the platform failed
    to answer it is not asked again for ``retry_seconds``; a question to the platform waits at
    most ``timeout`` seconds (a doctor is waiting)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        client: HurenClient,
        *,
        ttl_seconds: float = 600.0,
        days: int = 90,
        keep_seconds: float = 86400.0,
        decision_keep_seconds: float = 30 * 86400.0,
        retry_seconds: float = 30.0,
        timeout: float = 10.0,
        clock: TimeSource | None = None,
        cipher: FieldCipher | None = None,
    ) -> None:
        if days not in WINDOWS:
            raise ValueError("[preload] days 只能是 30 或 90（平台的近期时间窗）")
        super().__init__(
            path, ttl_seconds=ttl_seconds, keep_seconds=keep_seconds, decision_keep_seconds=decision_keep_seconds, clock=clock,
            cipher=cipher,
        )
        self.client = client
        self.days = days
        self.platform_calls = 0  # REST calls made to the platform (observability, tests)
        self.retry_seconds = float(retry_seconds)
        self.timeout = float(timeout)
        self.last_platform_error = ""
        self._down_until = 0.0
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # -- the platform ------------------------------------------------------------------------
    def _ask(self, question: Callable[[], Any]) -> Any:
        """One question to the platform through the client. _Down when the platform does not
        answer or refuses the gateway's own account (401/403); PlatformRefused when it refuses
        the question. After a _Down the platform is not asked again for ``retry_seconds`` (a
        down platform must not slow the hospital)."""
        now = self.clock.time()
        if now < self._down_until:
            raise _Down(f"平台最近一次无应答（{self.last_platform_error}），{self._down_until - now:.0f}秒后再试")
        self.platform_calls += 1
        try:
            body = question()
        except PlatformUnavailable as exc:
            raise self._down(exc.message) from exc
        except PlatformRefused as exc:
            if exc.status in (401, 403):
                raise self._down(f"平台拒绝了网关的账号（HTTP {exc.status}）{exc.message}") from exc
            raise
        self.last_platform_error = ""
        return body

    def platform_report(self, kind: str, report_id: str, *, pdf: bool = False) -> httpx2.Response | None:
        """A report (or its PDF) as the platform answers it, raw; None when the platform does not
        answer (then it is not asked again for ``retry_seconds``)."""
        now = self.clock.time()
        if now < self._down_until:
            return None
        self.platform_calls += 1
        try:
            r = self.client.report(kind, report_id, pdf=pdf, timeout=self.timeout)
        except PlatformUnavailable as exc:
            self._down(exc.message)
            return None
        if r.status_code >= 500:
            self._down(f"HTTP {r.status_code}")
            return None
        return r

    def _down(self, reason: str) -> _Down:
        self.last_platform_error = reason
        self._down_until = self.clock.time() + self.retry_seconds
        return _Down(reason)

    def _fetch(self, id_type_code: str, id_no: str, visit: Visit) -> Entry:
        q = {"id_type_code": id_type_code, "id_no": id_no, "days": self.days} | visit.as_dict()
        recent = self._ask(lambda: self.client.recognition("recent", q, timeout=self.timeout))
        detail = self._ask(lambda: self.client.recognition("detail", q, timeout=self.timeout))
        entry = Entry(
            id_type_code,
            id_no,
            self.clock.time(),
            self.days,
            list(recent.get("item") or []),
            {"exammaster": list(detail.get("exammaster") or []), "labmaster": list(detail.get("labmaster") or [])},
            stale=False,
            source="platform",
        )
        self.store(entry)
        return entry

    def _lock(self, key: tuple[str, str]) -> threading.Lock:
        with self._locks_guard:
            if len(self._locks) > 4096:
                self._locks = {k: v for k, v in self._locks.items() if v.locked()}
            return self._locks.setdefault(key, threading.Lock())

    def get(self, id_type_code: str, id_no: str, *, visit: Visit = Visit(), refresh: bool = False) -> Entry:
        """The patient's entry: from the file while fresh (unless ``refresh``), else fetched;
        when the platform does not answer, the stale entry (``stale=True``), or PlatformUnavailable."""
        key = patient_key(id_type_code, id_no)
        with self._lock(key):
            entry = self.load(*key)
            if entry is not None and not refresh and self.is_fresh(entry):
                return entry
            try:
                fetched = self._fetch(*key, visit)
            except _Down as exc:
                if entry is not None:
                    return Entry(entry.id_type_code, entry.id_no, entry.fetched_at, entry.days, entry.recent, entry.detail, stale=True)
                raise PlatformUnavailable(
                    "互认平台暂时无法访问，本地也没有该患者的缓存记录，请稍后重试",
                    [Problem("platform", "unavailable", f"平台无应答：{exc}")],
                ) from exc
        with suppress(_Down, PlatformRefused):  # the code reference for local exists answers; kept on failure
            self.reference()
        return fetched

    # -- the code reference (catalog codes, the institution's code map) ----------------------
    def reference(self) -> dict[str, Any] | None:
        """{"catalog": {kind: [codes]}, "code_map": {kind: {local: std}}, "names": {kind: {code: name}}},
        fetched again when older than ``ttl_seconds``; None if never fetched. _Down /
        PlatformRefused when a fetch fails."""
        held = self._ref_load("codes")
        if held is not None and self.clock.time() - held[0] < self.ttl_seconds:
            return dict(held[1])
        catalog = self._ask(lambda: self.client.catalog(timeout=self.timeout))
        maps = self._ask(lambda: self.client.code_map(timeout=self.timeout))
        body: dict[str, Any] = {"catalog": {"lab": [], "exam": []}, "code_map": {"lab": {}, "exam": {}}, "names": {"lab": {}, "exam": {}}}
        for item in catalog.get("items") or []:
            body["catalog"].setdefault(str(item["kind"]), []).append(str(item["code"]))
            body["names"].setdefault(str(item["kind"]), {})[str(item["code"])] = str(item.get("name") or "")
        for m in maps.get("mappings") or []:
            body["code_map"].setdefault(str(m["kind"]), {})[str(m["local_code"])] = str(m["std_code"])
        self._ref_save("codes", body)
        return body

    def held_reference(self) -> dict[str, Any] | None:
        """The code reference, fetched again if old and the platform answers; else what is held."""
        try:
            return self.reference()
        except (_Down, PlatformRefused):
            held = self._ref_load("codes")
            return dict(held[1]) if held else None

    # -- answers -----------------------------------------------------------------------------
    def _since(self, days: int) -> str:
        if days not in WINDOWS:
            raise InvalidInput("查询时间窗无效", [Problem("days", "dictionary", "近期记录时间窗只能是30天或90天")])
        if days > self.days:
            raise InvalidInput(
                "查询时间窗超出本地缓存", [Problem("days", "window", f"本地缓存只保存近{self.days}天的记录")]
            )
        return format_value(self.clock.now() - timedelta(days=days))

    def recent(self, entry: Entry, days: int | None = None) -> list[dict[str, Any]]:
        """The recent list as the platform answers it, judged again at the gateway's now: an
        item whose ``expired_time`` has passed since the fetch loses its ★."""
        since = self._since(days or self.days)
        now = self.clock.now()
        out = []
        for e in entry.recent:
            if str(e.get("dtime", "")) < since:
                continue
            e = dict(e)
            if e.get("recognition") == "1" and not still_recognizable(
                kinds.BY_ORDER_KEY.get(str(e.get("type")), kinds.LAB).name, str(e.get("item_code", "")), str(e.get("expired_time", "")), now
            ):
                e["recognition"], e["expired_time"] = "0", ""
            out.append(e)
        return out

    def detail(self, entry: Entry, days: int | None = None) -> dict[str, list[dict[str, Any]]]:
        """The recognizable detail at the gateway's now: expired items lose their
        ``expired_time``; reports left without a recognizable item are left out."""
        since = self._since(days or self.days)
        now = self.clock.now()
        out: dict[str, list[dict[str, Any]]] = {k.master_node: [] for k in kinds.ALL}
        for k in kinds.ALL:
            kind, code_key = k.name, k.item_code_field
            for m in entry.detail.get(k.master_node, []):
                if str(m.get("authenticator_dtime", "")) < since:
                    continue
                items = []
                for i in m.get("item", []):
                    live = still_recognizable(kind, str(i.get(code_key, "")), str(i.get("expired_time", "")), now)
                    items.append(i if live else dict(i) | {"expired_time": ""})
                if any(i["expired_time"] for i in items):
                    out[k.master_node].append(dict(m) | {"item": items})
        return out

    def exists(
        self,
        entry: Entry,
        *,
        check: Sequence[str] = (),
        lab: Sequence[str] = (),
        days: int | None = None,
        org_code: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> dict[str, Any]:
        """Exists-for-order answered from the entry: the platform's answer
        (``huren.domain.answers.exists_answer``) over the cached recognizable detail."""
        answers.check_orders(check, lab)
        start = self._since(days or self.days)
        if since is not None:
            start = max(start, format_value(since))
        end = format_value(until) if until is not None else None
        ref = self.held_reference()
        if ref is None:  # never reached the platform: a code is taken as standard
            orders = answers.resolve_orders(check, lab, lambda kind, code: True, {})
        else:
            standard = {kind: set(ref["catalog"].get(kind, [])) for kind in ("exam", "lab")}
            orders = answers.resolve_orders(check, lab, lambda kind, code: code in standard[kind], ref["code_map"])
        return answers.exists_answer(orders, self._hits(entry, orders, start, end, org_code))

    def _hits(self, entry: Entry, orders: answers.Orders, start: str, end: str | None, org_code: str | None) -> list[answers.Hit]:
        """The cached items of the ordered codes still recognizable now, newest report first."""
        now = self.clock.now()
        wanted = {kind: set(orders.standard(kind)) for kind in ("exam", "lab")}
        hits: list[answers.Hit] = []
        for kind, code_key, name_key in (("exam", "exam_item_code", "exam_item_name"), ("lab", "class_code", "class_name")):
            for m in _newest_first(entry.detail.get(f"{kind}master", [])):
                dtime = str(m.get("authenticator_dtime", ""))
                if dtime < start or (end is not None and dtime >= end) or (org_code is not None and m.get("org_code") != org_code):
                    continue
                report = _report_attrs(m, kind)
                for i in m.get("item", []):
                    code = str(i.get(code_key, ""))
                    if code not in wanted[kind] or not still_recognizable(kind, code, str(i.get("expired_time", "")), now):
                        continue
                    hits.append(answers.Hit(kind, report, code, str(i.get(name_key, "")), _item_fields(kind, m, i)))
        return hits


def _report_attrs(m: dict[str, Any], kind: str) -> dict[str, Any]:
    """A cached detail report's attributes in the answer (``answers.REPORT_FIELDS``)."""
    attrs = {
        "report_id": m.get("report_id"),
        "org_code": m.get("org_code", ""),
        "org_name": m.get("org_name", ""),
        "report_form_no": m.get("report_form_no", ""),
        "event_no": m.get("event_no", ""),
        "id_no": m.get("id_no", ""),
        "id_type_code": m.get("id_type_code", ""),
        "event_type": m.get("event_type", ""),
        "report_title": m.get("report_title", ""),
        "dtime": m.get("authenticator_dtime", ""),
        "url": m.get("url", ""),
    }
    return attrs | {"class_name": m.get("class_name", "")} if kind == "lab" else attrs


def _item_fields(kind: str, m: dict[str, Any], i: dict[str, Any]) -> dict[str, Any]:
    if kind == "exam":
        return {"expired_time": i.get("expired_time", ""), "pacs_url": m.get("pacs_url", ""), "conclusion": m.get("conclusion", "")}
    return {
        "result_value": i.get("result_value", ""),
        "lower_value": i.get("norm_lower_limit", ""),
        "upper_value": i.get("norm_upper_limit", ""),
        "result_unit": i.get("result_unit", ""),
        "result_interpre": i.get("result_interpre", ""),
        "expired_time": i.get("expired_time", ""),
    }


def _newest_first(masters: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The platform's order for exists answers: result time, newest first (a stable sort: reports
    of the same time keep the platform's order; report ids are opaque texts, not numbers)."""
    return sorted(masters, key=lambda m: str(m.get("authenticator_dtime", "")), reverse=True)
