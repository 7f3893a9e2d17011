"""The PACS's two imaging views (XJ-2.3.1 ``v_web_jcjg``, XJ-2.3.2 ``v_web_jctj``), or the same two
views of an existing regional imaging cloud (XJ-2.4), read through a SQLAlchemy URL.

``v_web_jctj`` (one row per study: PATIENT_ID, PATIENTNAME, MODALITY, ACCESS_NO, STUDIUIID,
STUDYTIME, MODIFYTIME, INSTITUTIONNAME, INSTITUTIONCODE, FILESIZE, INSTANCECOUNT) is read in
(MODIFYTIME, STUDIUIID) order after the watermark; for each study the rows of ``v_web_jcjg`` (one
per file: FILEPATH, CREATEDTIME, STUDIUIID, STUDYDATE, SERIESIUID, SERIESNO, INSTANCESOPIUID,
INSTANCEINSTNO, PATIENTNAME, PATIENTAGE, PATIENTSEX, ACCESS_NO, PATIENT_ID, MODALITY,
INSTITUTIONNAME, INSTITUTIONCODE, FILESIZE) are its instances. A study becomes ONE outbox record
(kind ``study``) only when it is complete:

* INSTITUTIONCODE is the gateway's own institution (``[platform] org_code``, or one of
  ``institution_codes``) — otherwise it is refused and logged, never pushed;
* the files listed are INSTANCECOUNT distinct instances whose FILESIZE adds up to the study's
  FILESIZE, no file's CREATEDTIME is younger than ``settle_seconds`` (the PACS may still write);
* every file was fetched by FILEPATH, is DICOM, holds the row's SOP Instance / Study UID and has the
  row's FILESIZE (``filesize_unit``: bytes, kb or mb; kb / mb compared to within one unit).

Otherwise the study waits: it is kept in the watermark's waiting list and checked again at every
poll (at most every ``recheck_seconds``; later studies go on), the reason written in Chinese to the log and to ``gateway status``
(meta ``imaging_waiting``), until it is complete or ``wait_hours`` passed (then it is read again
only when its MODIFYTIME moves). Half a study is never queued. A study read again with the same
files is recognised as identical (one push); with more files it is queued and pushed again.

Keys of ``[pacs_views]`` (or several ``[[pacs_views]]`` tables, e.g. a PACS and a regional cloud)::

    name = "pacs"                        # the source's name (outbox, status, logs)
    url = "oracle+oracledb://ro:…@pacs-db:1521/?service_name=PACS"
    study_view = "v_web_jctj"            # the seed misspells the names: give them as the PACS has them
    file_view = "v_web_jcjg"
    columns = { STUDIUIID = "STUDYIUID" }  # seed column → the view's column, where they differ
    institution_codes = ["457759922"]    # INSTITUTIONCODE values meaning this institution
    path_map = { "D:\\\\PACS\\\\" = "/mnt/pacs/" }   # FILEPATH prefix → where the gateway mounts it
    filesize_unit = "bytes"              # bytes | kb | mb
    batch_size = 100                     # studies per read (at most 1000)
    settle_seconds = 60
    wait_hours = 72
    recheck_seconds = 60                 # a waiting study is checked (its files fetched) at most this often
    start = "2024-01-01"                 # where to begin when no watermark is stored yet
    time_as = "auto"                     # text | datetime (auto: text for SQLite)

The watermark is JSON ``{"at": [MODIFYTIME, STUDIUIID], "wait": {STUDIUIID: first seen}}``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Select, String, and_, cast, column, literal_column, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from huren.gateway.imaging_spool import FetchError, Spool
from huren.gateway.model import Record
from huren.gateway.sources.base import Conf, ConfigError, SourceError, parse_time, to_text
from huren.gateway.sources.dbview import lowered, raw_time, readonly_engine, view

log = logging.getLogger("huren.gateway.sources.pacs_views")

#: the columns of the two views, exactly as the seed spells them (seed 002 §2.3.1 / §2.3.2)
FILE_COLUMNS = (
    "FILEPATH", "CREATEDTIME", "STUDIUIID", "STUDYDATE", "SERIESIUID", "SERIESNO", "INSTANCESOPIUID",
    "INSTANCEINSTNO", "PATIENTNAME", "PATIENTAGE", "PATIENTSEX", "ACCESS_NO", "PATIENT_ID", "MODALITY",
    "INSTITUTIONNAME", "INSTITUTIONCODE", "FILESIZE",
)
STUDY_COLUMNS = (
    "PATIENT_ID", "PATIENTNAME", "MODALITY", "ACCESS_NO", "STUDIUIID", "STUDYTIME", "MODIFYTIME",
    "INSTITUTIONNAME", "INSTITUTIONCODE", "FILESIZE", "INSTANCECOUNT",
)
KEYS = (
    "url", "study_view", "file_view", "columns", "institution_codes", "path_map", "filesize_unit", "batch_size",
    "settle_seconds", "wait_hours", "recheck_seconds", "start", "time_as",
)
#: studies kept waiting at most (the watermark carries their UIDs)
MAX_WAITING = 5000
UNITS = {"bytes": 1, "kb": 1024, "mb": 1024 * 1024}


@dataclass
class Position:
    at: tuple[str, str] | None = None  # (MODIFYTIME, STUDIUIID) of the last study passed
    start: str = ""  # a bare time: from then on, inclusive
    wait: dict[str, str] = field(default_factory=dict)  # STUDIUIID → first seen waiting

    @classmethod
    def parse(cls, text: str) -> Position:
        text = text.strip()
        if not text:
            return cls()
        if not text.startswith("{"):
            return cls(start=text if len(text) > 10 else text + " 00:00:00")
        doc = json.loads(text)
        at = doc.get("at")
        return cls(at=(str(at[0]), str(at[1])) if at else None, wait={str(k): str(v) for k, v in (doc.get("wait") or {}).items()})

    def dump(self) -> str:
        return json.dumps({"at": list(self.at) if self.at else None, "wait": self.wait}, ensure_ascii=False, sort_keys=True)


class PacsViewsSource:
    """Complete studies from the two views, their files staged into ``spool``."""

    def __init__(
        self,
        name: str,
        engine: Engine,
        spool: Spool,
        *,
        org_codes: Sequence[str],
        study_view: str = "v_web_jctj",
        file_view: str = "v_web_jcjg",
        columns: Mapping[str, str] | None = None,
        path_map: Mapping[str, str] | None = None,
        filesize_unit: str = "bytes",
        batch_size: int = 100,
        settle_seconds: float = 60.0,
        wait_hours: float = 72.0,
        recheck_seconds: float = 60.0,
        start: str = "",
        time_as: str = "auto",
        now: Any = datetime.now,
    ) -> None:
        self.name, self.engine, self.spool = name, engine, spool
        self.org_codes = frozenset(org_codes)
        self.study_view, self.file_view = study_view, file_view
        self.cols = {c: (columns or {}).get(c, c).lower() for c in (*FILE_COLUMNS, *STUDY_COLUMNS)}
        self.path_map = dict(path_map or {})
        self.unit = UNITS[filesize_unit]
        self.batch_size, self.settle_seconds, self.wait_hours = batch_size, settle_seconds, wait_hours
        self.recheck_seconds = recheck_seconds
        self.start = start
        self.time_as = ("text" if engine.dialect.name == "sqlite" else "datetime") if time_as == "auto" else time_as
        self.now = now
        #: what the last poll found: STUDIUIID → why it waits / why it was refused (Chinese)
        self.waiting: dict[str, str] = {}
        self.refused: dict[str, str] = {}
        self._said: dict[str, str] = {}
        self._checked: dict[str, float] = {}  # STUDIUIID → when it was last checked (monotonic)

    # -- reading -----------------------------------------------------------------------------------
    def _c(self, name: str) -> Any:
        return column(self.cols[name])

    def _bind(self, text: str) -> Any:
        return text if self.time_as == "text" else parse_time(text)

    def _studies(self, pos: Position) -> list[dict[str, Any]]:
        t, uid = self._c("MODIFYTIME"), cast(self._c("STUDIUIID"), String(128))
        q: Select[Any] = select(literal_column("*")).select_from(view(self.study_view)).where(t.is_not(None))
        if pos.at is not None:
            at = self._bind(pos.at[0])
            after: ColumnElement[bool] = or_(t > at, and_(t == at, uid > pos.at[1]))
            q = q.where(after)
        elif pos.start:
            q = q.where(t >= self._bind(pos.start))
        return self._read(q.order_by(t, uid).limit(self.batch_size))

    def _by_uid(self, uids: Sequence[str]) -> list[dict[str, Any]]:
        q: Select[Any] = select(literal_column("*")).select_from(view(self.study_view)).where(self._c("STUDIUIID").in_(uids))
        return self._read(q)

    def _files(self, uids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        q: Select[Any] = select(literal_column("*")).select_from(view(self.file_view)).where(self._c("STUDIUIID").in_(uids))
        out: dict[str, list[dict[str, Any]]] = {}
        for row in self._read(q):
            out.setdefault(to_text(row.get(self.cols["STUDIUIID"])), []).append(row)
        return out

    def _read(self, q: Select[Any]) -> list[dict[str, Any]]:
        try:
            with self.engine.connect() as conn:
                return [lowered(r) for r in conn.execute(q).mappings()]
        except SQLAlchemyError as exc:
            detail = str(getattr(exc, "orig", None) or exc.__class__.__name__)[:300]
            raise SourceError(f"{self.name}：读取影像视图 {self.study_view} / {self.file_view} 失败：{detail}") from exc

    def v(self, row: Mapping[str, Any], name: str) -> str:
        return to_text(row.get(self.cols[name]))

    # -- one study ----------------------------------------------------------------------------------
    def _filepath(self, raw: str) -> str:
        for prefix, target in self.path_map.items():
            if raw.startswith(prefix):
                return target + raw[len(prefix):].replace("\\", "/")  # Windows takes / too
        return raw

    def _size(self, text: str, where: str) -> int:
        try:
            return int(float(text))
        except ValueError:
            raise FetchError(f"{where}“{text[:32]}”不是数字") from None

    def _check(self, study: Mapping[str, Any], files: list[dict[str, Any]]) -> Record:
        """The study's record; FetchError (why it waits) when it is not complete."""
        uid = self.v(study, "STUDIUIID")
        want = self._size(self.v(study, "INSTANCECOUNT") or "-1", f"{self.study_view} 的 INSTANCECOUNT")
        sops = {self.v(f, "INSTANCESOPIUID") for f in files}
        if len(sops) != len(files):
            raise FetchError(f"视图 {self.file_view} 中同一实例出现多行（{len(files)} 行，{len(sops)} 个实例）")
        if len(files) != want:
            raise FetchError(f"实例数不符：{self.study_view} 的 INSTANCECOUNT 为 {want}，{self.file_view} 列出 {len(files)} 个文件")
        listed = sum(self._size(self.v(f, "FILESIZE"), f"{self.file_view} 的 FILESIZE") for f in files)
        total = self._size(self.v(study, "FILESIZE") or "-1", f"{self.study_view} 的 FILESIZE")
        if not self._close(listed, total, len(files)):
            raise FetchError(f"文件大小不符：{self.study_view} 的 FILESIZE 为 {total}，{self.file_view} 各文件之和为 {listed}")
        latest = max((self.v(f, "CREATEDTIME") for f in files), default="")
        if latest and self.settle_seconds > 0:
            try:
                age = (self.now() - parse_time(latest[:19])).total_seconds()
            except ValueError:
                age = self.settle_seconds
            if age < self.settle_seconds:
                raise FetchError(f"最新文件入库时间 {latest} 距今不足 {self.settle_seconds:g} 秒，PACS 可能仍在写入")
        instances: list[dict[str, Any]] = []
        total_bytes = 0
        for f in sorted(files, key=self._order):
            sop = self.v(f, "INSTANCESOPIUID")
            path = self._filepath(self.v(f, "FILEPATH"))
            if not path:
                raise FetchError(f"实例 {sop} 的 FILEPATH 为空")
            staged = self.spool.stage(path, sop, uid)
            if not self._close(staged.size, self._size(self.v(f, "FILESIZE"), f"{self.file_view} 的 FILESIZE"), 1):
                raise FetchError(f"实例 {sop} 的文件大小 {staged.size} 字节与视图 FILESIZE {self.v(f, 'FILESIZE')} 不符")
            total_bytes += staged.size
            instances.append({
                "sop_instance_uid": sop, "series_instance_uid": self.v(f, "SERIESIUID"),
                "series_no": self.v(f, "SERIESNO"), "instance_no": self.v(f, "INSTANCEINSTNO"),
                "sha256": staged.sha256, "size": staged.size, "spool": staged.name, "filepath": path,
            })
        org = self.v(study, "INSTITUTIONCODE")
        payload = {
            "study_instance_uid": uid, "org_code": org, "institution_name": self.v(study, "INSTITUTIONNAME"),
            "access_no": self.v(study, "ACCESS_NO"), "patient_id": self.v(study, "PATIENT_ID"),
            "modality": self.v(study, "MODALITY"), "study_time": self.v(study, "STUDYTIME"),
            "instance_count": len(instances), "file_size": total_bytes, "instances": instances,
        }
        return Record("study", f"study:{org}|{uid}", payload, self.name)

    def _order(self, row: Mapping[str, Any]) -> tuple[str, int, str]:
        number = self.v(row, "INSTANCEINSTNO")
        return self.v(row, "SERIESIUID"), int(number) if number.isdigit() else 1 << 31, self.v(row, "INSTANCESOPIUID")

    def _close(self, got_bytes: int, view_units: int, files: int) -> bool:
        if self.unit == 1:
            return got_bytes == view_units
        return abs(got_bytes / self.unit - view_units) <= files

    def _refusal(self, study: Mapping[str, Any], files: list[dict[str, Any]]) -> str | None:
        codes = {self.v(study, "INSTITUTIONCODE"), *(self.v(f, "INSTITUTIONCODE") for f in files)}
        bad = sorted(codes - self.org_codes)
        if bad:
            return f"INSTITUTIONCODE“{'、'.join(c or '（空）' for c in bad)}”不是本前置机的机构（{'、'.join(sorted(self.org_codes))}），拒绝推送"
        if not self.v(study, "STUDIUIID"):
            return "STUDIUIID 为空"
        return None

    def _say(self, uid: str, text: str, *, refused: bool) -> None:
        if self._said.get(uid) == text:
            return
        self._said[uid] = text
        if refused:
            log.error("PACS 视图中的检查被拒绝推送", extra={"source": self.name, "study": uid, "reason": text})
        else:
            log.warning("检查影像尚不完整，稍后重试", extra={"source": self.name, "study": uid, "reason": text})

    def _one(self, study: Mapping[str, Any], files: list[dict[str, Any]], pos: Position) -> Record | None:
        uid = self.v(study, "STUDIUIID")
        last = self._checked.get(uid)
        if last is not None and uid in pos.wait and time.monotonic() - last < self.recheck_seconds:
            self.waiting[uid] = self._said.get(uid, "等待重试")  # checked a moment ago: not every poll
            return None
        self._checked[uid] = time.monotonic()
        refused = self._refusal(study, files)
        if refused:
            self.refused[uid] = refused
            pos.wait.pop(uid, None)
            self._say(uid, refused, refused=True)
            return None
        try:
            rec = self._check(study, files)
        except FetchError as exc:
            if uid not in pos.wait and len(pos.wait) >= MAX_WAITING:
                text = f"等待中的检查已达 {MAX_WAITING} 个，不再记入等待列表（PACS 更新该检查后将重新读取）：{exc}"
                self.refused[uid] = text
                self._say(uid, text, refused=True)
                return None
            first = pos.wait.setdefault(uid, self.now().strftime("%Y-%m-%d %H:%M:%S"))
            if (self.now() - parse_time(first)).total_seconds() > self.wait_hours * 3600:
                pos.wait.pop(uid)
                text = f"等待超过 {self.wait_hours:g} 小时仍不完整，停止重试（PACS 更新该检查后将重新读取）：{exc}"
                self.refused[uid] = text
                self._say(uid, text, refused=True)
                return None
            self.waiting[uid] = str(exc)
            self._say(uid, str(exc), refused=False)
            return None
        pos.wait.pop(uid, None)
        self._said.pop(uid, None)
        self._checked.pop(uid, None)
        return rec

    def poll(self, watermark: str) -> Iterator[Record]:
        """Complete studies: first those waiting, then those changed after the watermark."""
        try:
            pos = Position.parse(watermark or self.start)
        except (ValueError, TypeError, IndexError, AttributeError) as exc:
            raise SourceError(f"{self.name}：无法识别的水位“{watermark[:200]}”") from exc
        self.waiting, self.refused = {}, {}
        waiting = sorted(pos.wait)
        seen = set(waiting)  # checked once per poll, even when its MODIFYTIME moved too
        for i in range(0, len(waiting), 500):
            uids = waiting[i:i + 500]
            studies = {self.v(s, "STUDIUIID"): s for s in self._by_uid(uids)}
            files = self._files(uids)
            for uid in uids:
                if uid not in studies:  # gone from the PACS: nothing to wait for
                    pos.wait.pop(uid, None)
                    continue
                rec = self._one(studies[uid], files.get(uid, []), pos)
                if rec is not None:
                    yield Record(rec.kind, rec.key, rec.payload, rec.source, pos.dump())
        while True:
            batch = self._studies(pos)
            files = self._files([self.v(s, "STUDIUIID") for s in batch]) if batch else {}
            for s in batch:
                uid = self.v(s, "STUDIUIID")
                rec = None if uid in seen else self._one(s, files.get(uid, []), pos)
                pos.at, pos.start = (raw_time(s.get(self.cols["MODIFYTIME"])), uid), ""
                if rec is not None:
                    yield Record(rec.kind, rec.key, rec.payload, rec.source, pos.dump())
            if len(batch) < self.batch_size:
                return


def build(raw: Mapping[str, Any], *, org_code: str, spool: Spool, base_dir: Path | None = None) -> PacsViewsSource:
    """The source a ``[pacs_views]`` table describes; ConfigError naming the key."""
    conf = Conf({"type": "pacs_views", **raw}, KEYS)
    columns = conf.table("columns", (*FILE_COLUMNS, *STUDY_COLUMNS))
    unit = conf.text("filesize_unit", "bytes").lower()
    if unit not in UNITS:
        raise ConfigError(f"{conf.where('filesize_unit')} 应为 bytes、kb 或 mb")
    batch_size = conf.integer("batch_size", 100)
    if batch_size > 1000:
        raise ConfigError(f"{conf.where('batch_size')} 不能大于 1000")
    time_as = conf.text("time_as", "auto")
    if time_as not in ("auto", "text", "datetime"):
        raise ConfigError(f"{conf.where('time_as')} 应为 auto、text 或 datetime")
    return PacsViewsSource(
        conf.name,
        readonly_engine(conf.text("url"), base_dir, conf.where("url")),
        spool,
        org_codes=conf.strings("institution_codes", [org_code]),
        study_view=conf.text("study_view", "v_web_jctj"),
        file_view=conf.text("file_view", "v_web_jcjg"),
        columns=columns,
        path_map=conf.table("path_map"),
        filesize_unit=unit,
        batch_size=batch_size,
        settle_seconds=conf.number("settle_seconds", 60.0),
        wait_hours=conf.number("wait_hours", 72.0),
        recheck_seconds=conf.number("recheck_seconds", 60.0),
        start=conf.text("start", ""),
        time_as=time_as,
    )
