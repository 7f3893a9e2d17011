"""The preload cache of the hospital front-end (XJ-1.3 预加载模式, XC-L-note).

On a card swipe the gateway fetches the patient's recent records (``/recognition/recent``) and
recognizable detail (``/recognition/detail``) from the platform and keeps them, per patient
identity (``id_type_code``, ``id_no``), in a local SQLite file. Later questions for that patient
are answered from the file while the entry is fresh (``ttl_seconds``); a stale entry is fetched
again, and when the platform cannot be reached the stale entry is answered and said to be stale —
the hospital keeps working while the platform is down (XC-E-note).

Exists-for-order is answered locally with the recognition rule (``huren.domain.recognition``):
the platform has already judged catalog, item flag, void, institution level and region when it
wrote an ``expired_time`` on an item of the detail; what is left for the gateway is time — the item
is recognizable while now < its ``expired_time``. Ordered codes are resolved like the platform
resolves them: a code of the standard catalog is itself, another is looked up in the
institution's code map (both fetched from the platform and kept for ``ttl_seconds``); unmapped
codes are listed, never guessed.

Accept / reject / quote decisions taken at the hospital are kept here too (``decision``), beside
the outbox that uploads them.

Times: the platform's documents carry naive local times (Asia/Shanghai); the cache's clock is the
same kind (``huren.context.Clock``), and its ``time()`` stamps the entries.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import httpx2

from huren.client import HurenClient, HurenClientError
from huren.context import Clock
from huren.domain.recognition import CatalogRule, PriorItem, Visit, judge
from huren.domain.records import format_value
from huren.domain.validation import canonical_id, check_identity
from huren.errors import InvalidInput, PlatformRefused, PlatformUnavailable, Problem

WINDOWS = (30, 90)
_DT = "%Y-%m-%d %H:%M:%S"

SCHEMA = """
CREATE TABLE IF NOT EXISTS patient (
    id_type_code TEXT NOT NULL,
    id_no TEXT NOT NULL,
    fetched_at REAL NOT NULL,
    days INTEGER NOT NULL,
    recent TEXT NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (id_type_code, id_no)
);
CREATE TABLE IF NOT EXISTS reference (
    name TEXT PRIMARY KEY,
    fetched_at REAL NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS decision (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    id_type_code TEXT NOT NULL,
    id_no TEXT NOT NULL,
    new_event_no TEXT NOT NULL,
    record TEXT NOT NULL,
    stored_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS decision_patient ON decision (id_type_code, id_no, new_event_no);
"""


class _Down(Exception):
    """Internal: the platform did not answer (network error, timeout, 5xx)."""


class TimeSource(Protocol):
    def time(self) -> float: ...

    def now(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class Entry:
    """One patient's cached answers."""

    id_type_code: str
    id_no: str
    fetched_at: float  # the clock's time() when fetched
    days: int
    recent: list[dict[str, Any]]
    detail: dict[str, list[dict[str, Any]]]
    stale: bool = False  # answered past its freshness because the platform could not be reached
    source: str = "cache"  # "platform" when fetched for this question

    def fetched_text(self, clock: TimeSource) -> str:
        return format_value(_local(self.fetched_at, clock))


def _local(ts: float, clock: TimeSource) -> datetime:
    """A timestamp of the clock's time() as the clock's naive local time."""
    return clock.now() - timedelta(seconds=round(clock.time() - ts))


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


class PreloadCache:
    """Per-patient recent records and recognizable detail, fetched from the platform, in SQLite.

    ``client`` speaks to the platform (its REST API with the client's token); ``ttl_seconds`` is
    how long an entry answers without asking the platform again; ``days`` the window fetched (30
    or 90); entries (and kept decisions) older than ``keep_seconds`` / ``decision_keep_seconds``
    are purged — a stale entry still answers while the platform is down, up to that age. After
    the platform failed to answer it is not asked again for ``retry_seconds``; a question to the
    platform waits at most ``timeout`` seconds (a doctor is waiting)."""

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
    ) -> None:
        if days not in WINDOWS:
            raise ValueError("preload days must be 30 or 90 (the platform's windows)")
        if ttl_seconds <= 0:
            raise ValueError("preload ttl_seconds must be positive")
        self.path = Path(path)
        self.client = client
        self.ttl_seconds = float(ttl_seconds)
        self.days = days
        self.keep_seconds = float(keep_seconds)
        self.decision_keep_seconds = float(decision_keep_seconds)
        self.clock: TimeSource = clock or Clock()
        self.platform_calls = 0  # REST calls made to the platform (observability, tests)
        self.retry_seconds = float(retry_seconds)
        self.timeout = float(timeout)
        self.last_platform_error = ""
        self._down_until = 0.0
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():  # patients' data: readable by the gateway's user only (SQLite
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))  # gives -wal/-shm the same mode)
        with self._connect() as conn:
            conn.executescript(SCHEMA)

    # -- storage -------------------------------------------------------------------------------
    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=30.0)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            with conn:
                yield conn
        finally:
            conn.close()

    def load(self, id_type_code: str, id_no: str) -> Entry | None:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT fetched_at, days, recent, detail FROM patient WHERE id_type_code = ? AND id_no = ?",
                (id_type_code, id_no),
            ).fetchone()
        if row is None:
            return None
        return Entry(id_type_code, id_no, float(row[0]), int(row[1]), json.loads(row[2]), json.loads(row[3]))

    def store(self, entry: Entry) -> None:
        with self._connect() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO patient (id_type_code, id_no, fetched_at, days, recent, detail) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    entry.id_type_code,
                    entry.id_no,
                    entry.fetched_at,
                    entry.days,
                    json.dumps(entry.recent, ensure_ascii=False),
                    json.dumps(entry.detail, ensure_ascii=False),
                ),
            )

    def forget(self, id_type_code: str, id_no: str) -> bool:
        with self._connect() as conn:
            n = conn.execute("DELETE FROM patient WHERE id_type_code = ? AND id_no = ?", (id_type_code, id_no)).rowcount
        return n > 0

    def purge(self, older_than: float | None = None) -> int:
        """Delete entries fetched more than ``older_than`` seconds ago (default ``keep_seconds``)
        and decisions older than ``decision_keep_seconds``; the number of entries deleted."""
        now = self.clock.time()
        age = self.keep_seconds if older_than is None else older_than
        with self._connect() as conn:
            n = conn.execute("DELETE FROM patient WHERE fetched_at < ?", (now - age,)).rowcount
            conn.execute("DELETE FROM decision WHERE stored_at < ?", (now - self.decision_keep_seconds,))
        return int(n)

    def stats(self) -> dict[str, Any]:
        now = self.clock.time()
        with self._connect() as conn:
            total, fresh = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(fetched_at >= ?), 0) FROM patient", (now - self.ttl_seconds,)
            ).fetchone()
            decisions = conn.execute("SELECT COUNT(*) FROM decision").fetchone()[0]
        return {"patients": int(total), "fresh": int(fresh), "decisions": int(decisions)}

    def is_fresh(self, entry: Entry) -> bool:
        return self.clock.time() - entry.fetched_at < self.ttl_seconds

    # -- the platform ------------------------------------------------------------------------
    def _call(self, verb: str, path: str, payload: Any = None, params: Mapping[str, str] | None = None) -> Any:
        """One REST call to the platform with the client's token. _Down when the platform does
        not answer (network error, timeout, 5xx) or refuses the gateway's own account (401/403);
        PlatformRefused when it refuses the question (other 4xx). After a _Down the platform is
        not asked again for ``retry_seconds`` (a down platform must not slow the hospital)."""
        now = self.clock.time()
        if now < self._down_until:
            raise _Down(f"平台最近一次无应答（{self.last_platform_error}），{self._down_until - now:.0f}秒后再试")
        self.platform_calls += 1
        try:
            headers = {"Authorization": f"Bearer {self.client.token()}"}
            http = self.client.http
            r = http.send(http.build_request(verb, path, json=payload, params=params, headers=headers, timeout=self.timeout))
            status = r.status_code
            try:
                body = r.json()
            except ValueError:
                body = r.text
        except httpx2.TransportError as exc:
            raise self._down(f"{exc.__class__.__name__}: {exc}") from exc
        except HurenClientError as exc:  # the token call answered an error
            status, body = exc.status, exc.body
        if status >= 500:
            raise self._down(f"HTTP {status}")
        if status in (401, 403):
            msg = body.get("message", "") if isinstance(body, dict) else ""
            raise self._down(f"平台拒绝了网关的账号（HTTP {status}）{msg}")
        if status >= 400:
            raise PlatformRefused(status, body)
        self.last_platform_error = ""
        return body

    def platform_get(self, path: str) -> httpx2.Response | None:
        """A GET to the platform with the gateway's token, the raw answer; None when the platform
        does not answer (then it is not asked again for ``retry_seconds``)."""
        now = self.clock.time()
        if now < self._down_until:
            return None
        self.platform_calls += 1
        try:
            http = self.client.http
            r = http.send(http.build_request("GET", path, headers={"Authorization": f"Bearer {self.client.token()}"}, timeout=self.timeout))
        except (httpx2.TransportError, HurenClientError) as exc:
            self._down(f"{exc.__class__.__name__}: {exc}")
            return None
        if r.status_code >= 500:
            self._down(f"HTTP {r.status_code}")
            return None
        return r

    def find_report(self, kind: str, report_id: int) -> dict[str, Any] | None:
        """A platform report held in any cached entry's detail (by the platform's report id)."""
        with self._connect() as conn:
            rows = conn.execute("SELECT detail FROM patient").fetchall()
        for (detail,) in rows:
            for m in json.loads(detail).get(f"{kind}master", []):
                if m.get("report_id") == report_id:
                    return dict(m)
        return None

    def _down(self, reason: str) -> _Down:
        self.last_platform_error = reason
        self._down_until = self.clock.time() + self.retry_seconds
        return _Down(reason)

    def _fetch(self, id_type_code: str, id_no: str, visit: Visit) -> Entry:
        q = {"id_type_code": id_type_code, "id_no": id_no, "days": self.days} | visit.as_dict()
        recent = self._call("POST", "/api/v1/recognition/recent", q)
        detail = self._call("POST", "/api/v1/recognition/detail", q)
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
    def _ref_load(self, name: str) -> tuple[float, Any] | None:
        with self._connect() as conn:
            row = conn.execute("SELECT fetched_at, body FROM reference WHERE name = ?", (name,)).fetchone()
        return (float(row[0]), json.loads(row[1])) if row else None

    def reference(self) -> dict[str, Any] | None:
        """{"catalog": {kind: [codes]}, "code_map": {kind: {local: std}}, "names": {kind: {code: name}}},
        fetched again when older than ``ttl_seconds``; None if never fetched. _Down /
        PlatformRefused when a fetch fails."""
        held = self._ref_load("codes")
        if held is not None and self.clock.time() - held[0] < self.ttl_seconds:
            return dict(held[1])
        catalog = self._call("GET", "/api/v1/catalog")
        maps = self._call("GET", "/api/v1/code-map")
        body: dict[str, Any] = {"catalog": {"lab": [], "exam": []}, "code_map": {"lab": {}, "exam": {}}, "names": {"lab": {}, "exam": {}}}
        for item in catalog.get("items") or []:
            body["catalog"].setdefault(str(item["kind"]), []).append(str(item["code"]))
            body["names"].setdefault(str(item["kind"]), {})[str(item["code"])] = str(item.get("name") or "")
        for m in maps.get("mappings") or []:
            body["code_map"].setdefault(str(m["kind"]), {})[str(m["local_code"])] = str(m["std_code"])
        with self._connect() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO reference (name, fetched_at, body) VALUES ('codes', ?, ?)",
                (self.clock.time(), json.dumps(body, ensure_ascii=False)),
            )
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
                "exam" if e.get("type") == "check" else "lab", str(e.get("item_code", "")), str(e.get("expired_time", "")), now
            ):
                e["recognition"], e["expired_time"] = "0", ""
            out.append(e)
        return out

    def detail(self, entry: Entry, days: int | None = None) -> dict[str, list[dict[str, Any]]]:
        """The recognizable detail at the gateway's now: expired items lose their
        ``expired_time``; reports left without a recognizable item are left out."""
        since = self._since(days or self.days)
        now = self.clock.now()
        out: dict[str, list[dict[str, Any]]] = {"exammaster": [], "labmaster": []}
        for kind in ("exam", "lab"):
            code_key = "class_code" if kind == "lab" else "exam_item_code"
            for m in entry.detail.get(f"{kind}master", []):
                if str(m.get("authenticator_dtime", "")) < since:
                    continue
                items = []
                for i in m.get("item", []):
                    live = still_recognizable(kind, str(i.get(code_key, "")), str(i.get("expired_time", "")), now)
                    items.append(i if live else dict(i) | {"expired_time": ""})
                if any(i["expired_time"] for i in items):
                    out[f"{kind}master"].append(dict(m) | {"item": items})
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
        """Exists-for-order answered from the entry, in the platform's answer shape
        (``/api/v1/recognition/exists``): ``labmaster`` (per report, the recognizable ordered
        sub-items), ``exammaster`` (per exam item), ``unmapped``, ``ordered``, ``recognizable``."""
        if not check and not lab:
            raise InvalidInput("没有所开项目", [Problem("check", "required", "检查项目（check）与检验子项（lab）不能同时为空")])
        start = self._since(days or self.days)
        if since is not None:
            start = max(start, format_value(since))
        end = format_value(until) if until is not None else None
        ref = self.held_reference()
        resolved: dict[str, dict[str, str]] = {}
        unmapped: list[dict[str, str]] = []
        for kind, codes in (("exam", check), ("lab", lab)):
            standard = set(ref["catalog"].get(kind, [])) if ref else set()
            mapping: dict[str, str] = ref["code_map"].get(kind, {}) if ref else {}
            resolved[kind] = {}
            for c in dict.fromkeys(codes):
                # without any reference held (never reached the platform) a code is taken as standard
                resolved[kind][c] = c if (ref is None or c in standard) else mapping.get(c, "")
            unmapped += [{"kind": kind, "code": c} for c, s in resolved[kind].items() if not s]
        std_to_ordered = {kind: {s: c for c, s in resolved[kind].items() if s} for kind in resolved}
        now = self.clock.now()
        found: set[tuple[str, str]] = set()

        def wanted(m: dict[str, Any]) -> bool:
            dtime = str(m.get("authenticator_dtime", ""))
            return dtime >= start and (end is None or dtime < end) and (org_code is None or m.get("org_code") == org_code)

        def attrs(m: dict[str, Any]) -> dict[str, Any]:
            return {
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

        exams: list[dict[str, Any]] = []
        labs: list[dict[str, Any]] = []
        for m in _newest_first(entry.detail.get("exammaster", [])):
            if not wanted(m):
                continue
            for i in m.get("item", []):
                code = str(i.get("exam_item_code", ""))
                if code not in std_to_ordered["exam"] or not still_recognizable("exam", code, str(i.get("expired_time", "")), now):
                    continue
                found.add(("exam", code))
                exams.append(
                    attrs(m)
                    | {
                        "item_code": code,
                        "item_name": i.get("exam_item_name", ""),
                        "ordered_code": std_to_ordered["exam"][code],
                        "expired_time": i.get("expired_time", ""),
                        "pacs_url": m.get("pacs_url", ""),
                        "conclusion": m.get("conclusion", ""),
                    }
                )
        for m in _newest_first(entry.detail.get("labmaster", [])):
            if not wanted(m):
                continue
            items = []
            for i in m.get("item", []):
                code = str(i.get("class_code", ""))
                if code not in std_to_ordered["lab"] or not still_recognizable("lab", code, str(i.get("expired_time", "")), now):
                    continue
                found.add(("lab", code))
                items.append(
                    {
                        "item_code": code,
                        "item_name": i.get("class_name", ""),
                        "ordered_code": std_to_ordered["lab"][code],
                        "result_value": i.get("result_value", ""),
                        "lower_value": i.get("norm_lower_limit", ""),
                        "upper_value": i.get("norm_upper_limit", ""),
                        "result_unit": i.get("result_unit", ""),
                        "result_interpre": i.get("result_interpre", ""),
                        "expired_time": i.get("expired_time", ""),
                    }
                )
            if items:
                labs.append(attrs(m) | {"class_name": m.get("class_name", ""), "item": items})
        ordered = len(resolved["exam"]) + len(resolved["lab"])
        return {"labmaster": labs, "exammaster": exams, "unmapped": unmapped, "ordered": ordered, "recognizable": len(found)}

    def report_items(self, entry: Entry | None, kind: str, org_code: str, report_form_no: str) -> set[str] | None:
        """The item codes of a cached report (by institution and form number), or None when the
        entry does not hold it (then nothing is known locally about it)."""
        if entry is None:
            return None
        code_key = "class_code" if kind == "lab" else "exam_item_code"
        for m in entry.detail.get(f"{kind}master", []):
            if m.get("org_code") == org_code and m.get("report_form_no") == report_form_no:
                return {str(i.get(code_key, "")) for i in m.get("item", [])}
        return None

    # -- decisions taken at the hospital -----------------------------------------------------
    def add_decisions(self, kind: str, rows: Sequence[dict[str, Any]]) -> list[int]:
        """Keep validated accept / quote rows (their seed text form); their ids."""
        now = self.clock.time()
        ids = []
        with self._connect() as conn:
            for row in rows:
                cur = conn.execute(
                    "INSERT INTO decision (kind, id_type_code, id_no, new_event_no, record, stored_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (kind, row["id_type_code"], row["id_no"], row.get("new_event_no", ""), json.dumps(row, ensure_ascii=False), now),
                )
                ids.append(int(cur.lastrowid or 0))
        return ids

    def remove_decisions(self, ids: Sequence[int]) -> None:
        with self._connect() as conn:
            conn.executemany("DELETE FROM decision WHERE id = ?", [(i,) for i in ids])

    def decisions(self, id_type_code: str, id_no: str, event_no: str = "") -> list[dict[str, Any]]:
        q = "SELECT id, kind, record, stored_at FROM decision WHERE id_type_code = ? AND id_no = ?"
        args: list[Any] = [id_type_code, id_no]
        if event_no:
            q += " AND new_event_no = ?"
            args.append(event_no)
        with self._connect() as conn:
            rows = conn.execute(q + " ORDER BY id", args).fetchall()
        return [
            {"id": r[0], "kind": r[1], "stored_at": format_value(_local(float(r[3]), self.clock))} | json.loads(r[2])
            for r in rows
        ]


def _newest_first(masters: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The platform's order for exists answers: result time, then report id, newest first."""
    return sorted(masters, key=lambda m: (str(m.get("authenticator_dtime", "")), int(m.get("report_id") or 0)), reverse=True)
