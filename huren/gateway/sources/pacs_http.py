"""HTTP pull from a PACS / RIS (seed 003 §4.1.2, "对接方式二").

The gateway POSTs JSON to the PACS with a time window and a type, and the PACS answers the exams of
that window:

====  ==========================================  =====================================
type  meaning (seed 003)                          becomes
====  ==========================================  =====================================
1     examined (has an exam time)                 ``exam`` (only if listed in ``types``)
2     item refunded (退费)                         ``void_exam``
3     report approved (有审核时间)                  ``exam``
4     report finally modified (有修改时间)          ``exam`` (a resubmission)
====  ==========================================  =====================================

It can also ask for one exam by its number (``{"examNo": …}``, any time): :meth:`PacsHttpSource.exam`.

The PACS's JSON names are mapped to ``exammaster`` / ``exam_subitem`` fields by ``fields`` and
``item_fields`` (``field = "pacsName"``; a dotted name reaches into objects: ``"patient.idNo"``);
fields not mapped are looked up under their own name. The watermark is the ``endTime`` of the last
window asked; windows run from it to ``now - lag_seconds``, ``window_minutes`` long, each asked
once per type in ``types`` order (so refunds come after the approvals of the same window). Records
of a window carry the window's start as watermark except the window's last, which carries its end:
a crash in the middle of a window asks the whole window again (the platform upserts). After a poll,
:attr:`PacsHttpSource.position` is where the windows reached, records or not.

Keys of a ``type = "pacs_http"`` source::

    name = "pacs"
    type = "pacs_http"
    url = "http://pacs.hospital.local/api/exam/report"
    types = [3, 4, 2]                 # which types to ask, in order (1 adds examined-only exams)
    window_minutes = 60
    lag_seconds = 120                 # leave the last minutes to the PACS still writing
    start = "2024-01-01 00:00:00"     # first window when no watermark is stored (default: a day ago)
    time_format = "%Y-%m-%d %H:%M:%S"
    request_keys = { start = "startTime", end = "endTime", type = "type", exam_no = "examNo" }
    data_key = "data"                 # where the list is in the answer ("" = the answer is the list)
    items_key = "items"               # the list of exam items in each report ("" = the report itself is the one item)
    fields = { report_form_no = "reportNo", pacs_id = "accessNo", id_no = "patient.idNo" }
    item_fields = { exam_item_code = "itemCode", exam_item_name = "itemName" }
    defaults = { org_code = "457759922" }   # constants for fields the PACS does not send
    pdf_field = "pdfBase64"           # Base64 PDF in the report, or
    pdf_url_field = "pdfUrl"          # a URL the gateway GETs the PDF from
    headers = { Authorization = "Bearer …" }
    timeout = 30
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx2

from huren.domain.fields import EXAM_SUBITEM, EXAMMASTER
from huren.gateway.model import Record
from huren.gateway.sources.base import Conf, ConfigError, SourceError, parse_time, report_key, to_text, void_filter

if TYPE_CHECKING:
    from huren.gateway.mapping import Mapper

log = logging.getLogger("huren.gateway.sources.pacs")

KEYS = (
    "url", "types", "window_minutes", "lag_seconds", "start", "time_format", "request_keys", "data_key",
    "items_key", "fields", "item_fields", "defaults", "pdf_field", "pdf_url_field", "headers", "timeout",
)
TYPES = {1: "exam", 2: "void_exam", 3: "exam", 4: "exam"}
REQUEST_KEYS = {"start": "startTime", "end": "endTime", "type": "type", "exam_no": "examNo"}
OK_CODES = ("0", "200", "ok", "success")


def dig(obj: Any, path: str) -> Any:
    """``obj["a"]["b"]`` for ``"a.b"``; None when any step is missing."""
    for part in path.split("."):
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(part)
    return obj


class PacsHttpSource:
    """Exams pulled from a PACS over HTTP (see the module docstring for the keys)."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        types: Sequence[int] = (3, 4, 2),
        window_minutes: int = 60,
        lag_seconds: float = 120.0,
        start: str = "",
        time_format: str = "%Y-%m-%d %H:%M:%S",
        request_keys: Mapping[str, str] | None = None,
        data_key: str = "data",
        items_key: str = "items",
        fields: Mapping[str, str] | None = None,
        item_fields: Mapping[str, str] | None = None,
        defaults: Mapping[str, str] | None = None,
        pdf_field: str = "",
        pdf_url_field: str = "",
        http: httpx2.Client | None = None,
        mapper: Mapper | None = None,
        clock: Callable[[], datetime] = datetime.now,
    ) -> None:
        bad = [t for t in types if t not in TYPES]
        if bad or not types:
            raise ConfigError(f"sources[{name}].types 应为 1、2、3、4 中的若干项")
        self.name, self.url = name, url
        self.types = tuple(types)
        self.window = timedelta(minutes=window_minutes)
        self.lag = timedelta(seconds=lag_seconds)
        self.start = start
        self.time_format = time_format
        self.request_keys = REQUEST_KEYS | dict(request_keys or {})
        self.data_key, self.items_key = data_key, items_key
        self.fields, self.item_fields = dict(fields or {}), dict(item_fields or {})
        self.defaults = dict(defaults or {})
        self.pdf_field, self.pdf_url_field = pdf_field, pdf_url_field
        self.http = http if http is not None else httpx2.Client(timeout=30.0)
        self.mapper = mapper
        self.clock = clock
        #: where the last poll's windows reached (``endTime`` text), even when nothing came back
        self.position = ""

    # -- talking to the PACS --------------------------------------------------------------------
    def _post(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            r = self.http.post(self.url, json=body)
        except httpx2.HTTPError as exc:
            raise SourceError(f"{self.name}：请求 PACS（POST {self.url}）失败：{exc}") from exc
        if r.status_code >= 400:
            raise SourceError(f"{self.name}：PACS（POST {self.url}）返回 HTTP {r.status_code}：{r.text[:300]}")
        try:
            answer = r.json()
        except ValueError as exc:
            raise SourceError(f"{self.name}：PACS 的应答不是 JSON：{r.text[:300]}") from exc
        if isinstance(answer, Mapping) and "code" in answer and str(answer["code"]).lower() not in OK_CODES:
            raise SourceError(f"{self.name}：PACS 返回错误码 {answer['code']}：{answer.get('message', '')}")
        rows = dig(answer, self.data_key) if self.data_key and isinstance(answer, Mapping) else answer
        if rows is None:
            return []
        if isinstance(rows, Mapping):
            rows = [rows]
        if not isinstance(rows, list) or not all(isinstance(r, Mapping) for r in rows):
            raise SourceError(f"{self.name}：PACS 应答的 {self.data_key or '内容'} 不是报告列表")
        return [dict(r) for r in rows]

    def _pdf(self, report: Mapping[str, Any], key: str) -> bytes | None:
        if self.pdf_field:
            text = to_text(dig(report, self.pdf_field))
            if text:
                try:
                    return base64.b64decode(text)
                except (binascii.Error, ValueError):
                    log.warning("%s：%s：%s 不是合法的 Base64，报告将不带 PDF 上传", self.name, key, self.pdf_field)
        if self.pdf_url_field:
            url = to_text(dig(report, self.pdf_url_field))
            if url:
                try:
                    r = self.http.get(url)
                except httpx2.HTTPError as exc:
                    raise SourceError(f"{self.name}：{key}：下载 PDF（GET {url}）失败：{exc}") from exc
                if r.status_code >= 400:
                    raise SourceError(f"{self.name}：{key}：下载 PDF（GET {url}）返回 HTTP {r.status_code}")
                return r.content
        return None

    # -- mapping -------------------------------------------------------------------------------
    def _value(self, obj: Mapping[str, Any], names: Mapping[str, str], field: str, kind: str) -> str:
        value = to_text(dig(obj, names.get(field, field)), kind)
        return value or self.defaults.get(field, "")

    def record(self, report: Mapping[str, Any], kind: str, watermark: str) -> Record:
        """One PACS report → an ``exam`` or ``void_exam`` record."""
        master = {f.name: self._value(report, self.fields, f.name, f.kind) for f in EXAMMASTER}
        key = report_key("exam", master)
        if kind == "void_exam":
            return Record("void_exam", key, void_filter(master), self.name, watermark)
        if self.items_key:
            raw_items = dig(report, self.items_key) or []
            raw_items = [raw_items] if isinstance(raw_items, Mapping) else raw_items
        else:
            raw_items = [report]
        items = []
        for raw in raw_items if isinstance(raw_items, list) else []:
            if not isinstance(raw, Mapping):
                continue
            item = {f.name: self._value(raw, self.item_fields, f.name, f.kind) for f in EXAM_SUBITEM}
            for link in ("last_update_dtime", "org_code", "event_no", "report_form_no"):
                item[link] = item[link] or master[link]
            items.append(item)
        payload: dict[str, Any] = {"exammaster": master, "exam_subitem": items}
        if self.mapper is not None:
            payload, unmapped = self.mapper.map_payload("exam", payload)
            if unmapped:
                log.info("%s: %s has unmapped codes %s", self.name, key, ", ".join(unmapped))
        pdf = self._pdf(report, key)
        return Record("exam", key, payload, self.name, watermark, {"pdf": pdf} if pdf else {})

    # -- polling -------------------------------------------------------------------------------
    def _fmt(self, moment: datetime) -> str:
        return moment.strftime(self.time_format)

    def poll(self, watermark: str) -> Iterator[Record]:
        """The records of every window from the watermark up to ``now - lag_seconds``."""
        text = watermark or self.start
        try:
            begin = parse_time(text) if text else self.clock() - timedelta(days=1)
        except ValueError as exc:
            raise SourceError(f"{self.name}：无法识别的水位“{text}”") from exc
        limit = self.clock() - self.lag
        while begin < limit:
            end = min(begin + self.window, limit)
            keys = self.request_keys
            got: list[tuple[dict[str, Any], str]] = []
            for t in self.types:
                body = {keys["start"]: self._fmt(begin), keys["end"]: self._fmt(end), keys["type"]: t}
                got += [(r, TYPES[t]) for r in self._post(body)]
            start_text, end_text = begin.strftime("%Y-%m-%d %H:%M:%S"), end.strftime("%Y-%m-%d %H:%M:%S")
            for i, (report, kind) in enumerate(got):
                yield self.record(report, kind, end_text if i == len(got) - 1 else start_text)
            self.position = end_text
            begin = end

    def exam(self, exam_no: str) -> list[Record]:
        """The exam(s) the PACS answers for one exam number (``{"examNo": …}``), as registrations."""
        rows = self._post({self.request_keys["exam_no"]: exam_no})
        return [self.record(r, "exam", "") for r in rows]


def build(raw: Mapping[str, Any], *, base_dir: Path | None = None, mapper: Mapper | None = None) -> PacsHttpSource:
    conf = Conf(raw, KEYS)
    types = conf.strings("types", ["3", "4", "2"])
    try:
        type_numbers = [int(t) for t in types]
    except ValueError as exc:
        raise ConfigError(f"{conf.where('types')} 应为 1、2、3、4 中的若干项") from exc
    headers = conf.table("headers")
    http = httpx2.Client(timeout=conf.number("timeout", 30.0, minimum=1.0), headers=headers)
    return PacsHttpSource(
        conf.name,
        conf.text("url"),
        types=type_numbers,
        window_minutes=conf.integer("window_minutes", 60),
        lag_seconds=conf.number("lag_seconds", 120.0),
        start=conf.text("start", ""),
        time_format=conf.text("time_format", "%Y-%m-%d %H:%M:%S"),
        request_keys=conf.table("request_keys", list(REQUEST_KEYS)),
        data_key=conf.text("data_key", "data"),
        items_key=conf.text("items_key", "items"),
        fields=conf.table("fields", [f.name for f in EXAMMASTER]),
        item_fields=conf.table("item_fields", [f.name for f in EXAM_SUBITEM]),
        defaults=conf.table("defaults", sorted({f.name for f in (*EXAMMASTER, *EXAM_SUBITEM)})),
        pdf_field=conf.text("pdf_field", ""),
        pdf_url_field=conf.text("pdf_url_field", ""),
        http=http,
        mapper=mapper,
    )
