"""Send outbox records to the platform's REST API and classify each outcome.

=============================  =================================================================
kind                           call
=============================  =================================================================
``lab`` / ``exam``             ``POST …/{kind}-reports/batch`` ``{"reports": [...]}``: many
                               per request, a result per report; an attached PDF goes in the
                               master's ``pdf`` field
``void_lab`` / ``void_exam``   ``POST …/{kind}-reports/void``, one per request
``daily``                      ``POST …/daily-counts``, one per request
``dept`` / ``staff`` /         ``POST …/directory/{depts,staff,patients}``, the rows of
``patient``                    several records in one request
``accept`` / ``quote``         ``POST …/recognition/{accept,quote}``, likewise
``reminder``                   ``POST …/reminder-logs``, likewise (reminders the preload
                               cache showed, XC-P4)
=============================  =================================================================

The paths, the token and the platform-unavailable error are ``huren.client``'s (``PATHS``).
Outcomes: accepted (``done``); refused — a 4xx with the platform's reason, or a per-report
rejection in a batch — (``dead``, the reason kept); not delivered — the platform unreachable, a
5xx, 429, 408 or an expired token — (``failed``: the record stays pending and the caller backs off).
When a request carrying several records is refused as a whole, each record is sent alone so only
the bad ones are refused.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import pybase64

from huren.client import HurenClient
from huren.errors import PlatformRefused, PlatformUnavailable
from huren.gateway.outbox import Item

log = logging.getLogger("huren.gateway.uploader")

REPORTS = ("lab", "exam")
#: kind → node: several records' rows are merged into one request (to the client's operation of
#: the same name)
MERGED = {
    "dept": "dept",
    "staff": "staff",
    "patient": "patient",
    "accept": "sehr_accept_record",
    "quote": "sehr_quote_record",
    "reminder": "reminder_log",
}
#: kinds sent one record per request
SINGLE = ("daily", "void_lab", "void_exam")
#: code of a refused report in a batch answer → the status the platform gives it when sent alone
#: (``huren.services.registry.REFUSALS``); anything else is a validation refusal (422)
BATCH_STATUS = {"forbidden": 403, "conflict": 409, "invalid_input": 422}


class Unavailable(Exception):
    """The platform did not take the request (unreachable, 5xx, 429, …): try again later."""


class Refused(Exception):
    """The platform refused the request (a 4xx): ``reason`` is its answer."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}")
        self.reason = reason(status, body)


def reason(status: int, body: Any) -> str:
    doc = body if isinstance(body, dict) else {"message": str(body)[:2000]}
    return orjson.dumps({"status": status} | doc).decode()


@dataclass
class Outcome:
    done: list[int] = field(default_factory=list)
    dead: dict[int, str] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)
    unavailable: str = ""  # why the platform could not be reached, when it could not


class Uploader:
    def __init__(self, client: HurenClient, *, max_batch_bytes: int = 32 * 1024 * 1024) -> None:
        self.client = client
        self.max_batch_bytes = max_batch_bytes

    # -- HTTP ------------------------------------------------------------------------------------
    def post(self, name: str, body: bytes) -> Any:
        """POST JSON ``body`` to the client's operation ``name`` (``lab`` / ``exam``: a batch of
        reports); the answer's JSON. Raises ``Unavailable`` or ``Refused``."""
        try:
            if name in REPORTS:
                return self.client.upload_reports(name, body)
            return self.client.upload(name, body)
        except PlatformUnavailable as exc:
            raise Unavailable(str(exc)) from exc
        except PlatformRefused as exc:
            raise Refused(exc.status, exc.body) from exc

    # -- one upload round ------------------------------------------------------------------------
    def upload(self, items: Sequence[Item]) -> Outcome:
        """Send ``items`` (at most one per key, as the outbox hands them out), grouped by kind.
        Stops at the first ``Unavailable``: what was not sent stays untouched."""
        out = Outcome()
        groups: dict[str, list[Item]] = {}
        for it in items:
            groups.setdefault(it.kind, []).append(it)
        try:
            for kind, group in groups.items():
                if kind in REPORTS:
                    for chunk in self._chunks(group):
                        self._reports(kind, chunk, out)
                elif kind in MERGED:
                    self._merged(kind, group, out)
                elif kind in SINGLE:
                    for it in group:
                        self._single(kind, it, it.payload, out)
                else:
                    for it in group:
                        out.dead[it.id] = reason(0, {"code": "unknown_kind", "message": f"未知的记录类型：{kind}"})
        except Unavailable as exc:
            out.unavailable = str(exc)
        return out

    def _chunks(self, group: list[Item]) -> list[list[tuple[Item, bytes]]]:
        chunks: list[list[tuple[Item, bytes]]] = [[]]
        size = 0
        for it in group:
            body = report_body(it)
            if chunks[-1] and size + len(body) > self.max_batch_bytes:
                chunks.append([])
                size = 0
            chunks[-1].append((it, body))
            size += len(body) + 1
        return chunks

    def _reports(self, kind: str, chunk: list[tuple[Item, bytes]], out: Outcome) -> None:
        body = b'{"reports":[' + b",".join(b for _, b in chunk) + b"]}"
        try:
            answer = self.post(kind, body)
        except Unavailable as exc:
            out.failed.update({it.id: str(exc) for it, _ in chunk})
            raise
        except Refused as exc:
            if len(chunk) == 1:
                out.dead[chunk[0][0].id] = exc.reason
                return
            for one in chunk:  # find the bad ones
                self._reports(kind, [one], out)
            return
        results = answer.get("results") if isinstance(answer, dict) else None
        if not isinstance(results, list) or len(results) != len(chunk):
            out.failed.update({it.id: "平台对批量上传的应答无法识别" for it, _ in chunk})
            raise Unavailable(f"平台对 {kind} 批量上传的应答无法识别：{str(answer)[:300]}")
        for (it, _), res in zip(chunk, results, strict=True):
            if isinstance(res, dict) and res.get("code") == "ok":
                out.done.append(it.id)
            else:
                code = res.get("code") if isinstance(res, dict) else None
                out.dead[it.id] = reason(BATCH_STATUS.get(str(code), 422), res)

    def _merged(self, kind: str, group: list[Item], out: Outcome) -> None:
        node = MERGED[kind]
        if len(group) == 1:
            self._single(kind, group[0], group[0].payload, out)
            return
        rows: list[Any] = []
        for it in group:
            rows.extend(orjson.loads(it.payload).get(node) or [])
        try:
            self.post(kind, orjson.dumps({node: rows}))
        except Unavailable as exc:
            out.failed.update({it.id: str(exc) for it in group})
            raise
        except Refused:
            for it in group:  # all-or-nothing upload: find the bad ones
                self._single(kind, it, it.payload, out)
            return
        out.done.extend(it.id for it in group)

    def _single(self, name: str, it: Item, body: bytes, out: Outcome) -> None:
        try:
            self.post(name, body)
        except Unavailable as exc:
            out.failed[it.id] = str(exc)
            raise
        except Refused as exc:
            out.dead[it.id] = exc.reason
            return
        out.done.append(it.id)


def report_body(it: Item) -> bytes:
    """The report's JSON as stored, with an attached PDF put into its master's ``pdf`` field."""
    pdf = it.attachments.get("pdf")
    if pdf is None:
        return it.payload
    doc = orjson.loads(it.payload)
    master = doc.get(f"{it.kind}master")
    if isinstance(master, dict) and not master.get("pdf"):
        master["pdf"] = pybase64.b64encode_as_string(pdf)
    return orjson.dumps(doc)
