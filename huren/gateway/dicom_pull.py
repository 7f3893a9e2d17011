"""YB-4.2: the images of the PACS's reports pulled to the gateway, one complete study at a time,
into the sealed spool (``huren.gateway.imaging_spool``) and ONE outbox record (kind ``study``) per
study for the pusher (``huren.gateway.imaging``) — the same records as the ``pacs_views`` source's.

Which studies: the rows of the ``[pacs_text]`` view (``View_Pacs_Text_Info``, YB-4.1.1) read
again with this source's own watermark (the reports flow even while the PACS's DICOM service is
down): the study UID column (``STUDY_UID``) or the image path column (``IMAGE_PATH``).

``mode = "c-move"`` (seed 003 "方式一"): a storage SCP inside the gateway listens on
``listen_host:listen_port`` with the AE title ``portal_aet`` (the "Portal AET" the PACS sends
to); the gateway C-ECHOes the PACS (``pacs_aet`` at ``pacs_host:pacs_port``) and asks a
study-level C-MOVE (Study Root) of each study to its Portal AET. Only the PACS's AE title
(``store_aets``) may store, from the PACS's addresses (``store_hosts``), only instances of the study being moved, each at most
``[imaging] max_file_bytes``; every instance is written as received (no decoding) into the
spool. The study is complete only when the C-MOVE ended with success, no sub-operation failed and
the distinct instances that arrived are as many as the sub-operations the PACS reports completed
(plus those with warnings). ``mode = "http"`` ("方式二"): every path or http(s) URL in the image
path column(s) is fetched (at most ``max_file_bytes`` each), must be DICOM of the row's study.

Otherwise the study waits: kept in the watermark's waiting list and tried again at most every
``recheck_seconds`` until ``wait_hours`` passed, the reason in Chinese in the log and in
``gateway status`` (meta ``imaging_waiting:<name>``); nothing of it is queued. A PACS that does
not answer the C-ECHO (or drops the association) ends the poll with that reason; the rows are
read again next poll. TCP_NODELAY is set on every DICOM socket.

Keys of ``[pacs_dimse]`` (defaults shown)::

    name = "pacs_dimse"              # the source's name (outbox, status, logs)
    mode = "c-move"                  # c-move | http
    text_source = "pacs_text"        # which [pacs_text] lists the studies (needed when there are several)
    pacs_aet = "PACS"                # c-move: the PACS's DICOM SCP (required)
    pacs_host = "10.0.0.5"           # (required)
    pacs_port = 104
    portal_aet = "HURENGW"           # the gateway's AE title: the C-MOVE destination the PACS must know
    listen_host = "0.0.0.0"          # where the Portal AET listens (the PACS connects here)
    listen_port = 11113
    store_aets = ["PACS"]            # calling AE titles allowed to store (default: pacs_aet)
    store_hosts = ["10.0.0.5"]       # addresses allowed to store (default: pacs_host's; [] = any)
    timeout_seconds = 30             # connect / association / C-ECHO
    move_timeout_seconds = 600       # the longest wait for the next C-MOVE response
    max_instances = 10000            # per study
    wait_hours = 72
    recheck_seconds = 300            # a waiting study is tried again at most this often
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from huren.gateway.dicom_portal import MOVE_STATUS, UNABLE_HINT, Pacs, PortalScp, PullSpool, addresses, aet_title
from huren.gateway.imaging_spool import FetchError, Spool, Staged
from huren.gateway.model import Record
from huren.gateway.sources.base import Conf, ConfigError, SourceError, parse_time
from huren.gateway.sources.pacs_text import PacsTextSource
from huren.gateway.sources.pacs_views import MAX_WAITING, Position

log = logging.getLogger("huren.gateway.dicom_pull")

KEYS = (
    "mode", "text_source", "pacs_aet", "pacs_host", "pacs_port", "portal_aet", "listen_host", "listen_port",
    "store_aets", "store_hosts", "timeout_seconds", "move_timeout_seconds", "max_instances", "wait_hours", "recheck_seconds",
)


class DicomPullSource:
    """Complete studies of the ``[pacs_text]`` view's rows, pulled by C-MOVE or HTTP."""

    def __init__(
        self, name: str, text: PacsTextSource, spool: Spool, *, mode: str = "c-move", pacs: Pacs | None = None,
        listen: tuple[str, int] = ("127.0.0.1", 11113), store_aets: Sequence[str] = (),
        store_hosts: Sequence[str] | None = None, max_instances: int = 10000,
        wait_hours: float = 72.0, recheck_seconds: float = 300.0, now: Callable[[], datetime] = datetime.now,
    ) -> None:
        self.name, self.text, self.mode, self.pacs = name, text, mode, pacs
        self.spool = PullSpool(spool)
        self.listen = listen
        self.store_aets = list(store_aets) or ([pacs.aet] if pacs else [])
        self.store_hosts = store_hosts  # None: pacs_host's addresses, resolved when the listener starts
        self.max_instances, self.wait_hours, self.recheck_seconds = max_instances, wait_hours, recheck_seconds
        self.now = now
        self.scp: PortalScp | None = None
        self.waiting: dict[str, str] = {}
        self.refused: dict[str, str] = {}
        #: where the last complete poll reached (stored by the imaging hook even when no study was queued)
        self.position = ""
        self._checked: dict[str, float] = {}
        self._said: dict[str, str] = {}
        self._echoed = False

    def close(self) -> None:
        if self.scp is not None:
            self.scp.stop()
            self.scp = None

    def refetch(self, doc: Mapping[str, Any]) -> None:
        """Pull a queued study again (the pusher lost its spool files): the same bytes land under the
        same spool names. FetchError / SourceError when the PACS cannot send it now."""
        if self.mode == "c-move":
            self._echoed = False
            self._move(str(doc["study_instance_uid"]))

    # -- one study ------------------------------------------------------------------------------
    def _key(self, master: Mapping[str, str]) -> str:
        uid = master.get("study_instance_uid", "")
        return uid if uid or self.mode == "c-move" else f"report:{master.get('report_form_no', '')}"

    def _pull(self, master: Mapping[str, str], paths: Sequence[str]) -> Record:
        uid = master.get("study_instance_uid", "")
        got = self._move(uid) if self.mode == "c-move" else self._fetch(uid, paths)
        uid = next(iter(got.values()))[1]["StudyInstanceUID"]
        if len(got) > self.max_instances:
            raise FetchError(f"检查有 {len(got)} 个实例，超过上限 max_instances = {self.max_instances}")

        def order(item: tuple[Staged, dict[str, str]]) -> tuple[str, int, str]:
            n = item[1]["InstanceNumber"]
            return item[1]["SeriesInstanceUID"], int(n) if n.isdigit() else 1 << 31, item[1]["SOPInstanceUID"]

        instances = [
            {
                "sop_instance_uid": h["SOPInstanceUID"], "series_instance_uid": h["SeriesInstanceUID"], "instance_no": h["InstanceNumber"],
                "sha256": s.sha256, "size": s.size, "spool": s.name, "filepath": h.get("filepath", ""),
            }
            for s, h in sorted(got.values(), key=order)
        ]
        org = master.get("org_code", "")
        payload = {
            "study_instance_uid": uid, "org_code": org, "access_no": master.get("pacs_id", ""),
            "patient_id": master.get("patient_id", ""), "modality": master.get("class_code", ""),
            "report_form_no": master.get("report_form_no", ""), "instance_count": len(instances),
            "file_size": sum(int(str(i["size"])) for i in instances), "instances": instances,
        }
        return Record("study", f"study:{org}|{uid}", payload, self.name)

    def _move(self, uid: str) -> dict[str, tuple[Staged, dict[str, str]]]:
        assert self.pacs is not None
        if self.scp is None:
            hosts = addresses(self.pacs.host) if self.store_hosts is None else self.store_hosts
            self.scp = PortalScp(self.pacs.portal_aet, *self.listen, self.spool, store_aets=self.store_aets, store_hosts=hosts)
            self.scp.start()
        if not self._echoed:
            self.pacs.echo()
            self._echoed = True
        col = self.scp.expect(uid, self.max_instances)
        try:
            code, completed, failed, warning = self.pacs.move(uid)
        finally:
            self.scp.done()
        got = dict(col.received)
        refused = f"；前置机拒收：{'；'.join(col.refused[:3])}" if col.refused else ""
        if code not in (0x0000, 0xB000):
            hint = UNABLE_HINT.format(aet=self.pacs.portal_aet)
            unable = "PACS 无法处理该请求" + ("" if col.refused else f"（{hint}）")
            what = MOVE_STATUS.get(code) or (unable if code >> 12 == 0xC else "PACS 返回失败")
            raise FetchError(f"C-MOVE 被 {self.pacs.label} 拒绝：{what}（状态 0x{code:04X}）{refused}")
        if failed or code == 0xB000:
            raise FetchError(f"C-MOVE 有 {failed} 个子操作失败（完成 {completed}，警告 {warning}）{refused}")
        if not got:
            raise FetchError(f"{self.pacs.label} 未发送任何实例（检查不存在或尚无影像）{refused}")
        if len(got) != completed + warning:
            raise FetchError(f"实例数不符：PACS 报告完成 {completed + warning} 个子操作，前置机收到 {len(got)} 个实例{refused}")
        return got

    def _fetch(self, uid: str, paths: Sequence[str]) -> dict[str, tuple[Staged, dict[str, str]]]:
        if not paths:
            raise FetchError("影像路径为空")
        if len(paths) > self.max_instances:
            raise FetchError(f"影像路径有 {len(paths)} 个，超过上限 max_instances = {self.max_instances}")
        got: dict[str, tuple[Staged, dict[str, str]]] = {}
        for path in paths:
            head = self.spool.head_of(path)
            uid = uid or head["StudyInstanceUID"]
            if head["StudyInstanceUID"] != uid:
                raise FetchError(f"文件 {path[:200]} 属于另一检查（{head['StudyInstanceUID'][:64]}），不是 {uid}")
            staged = self.spool.stage(path, head["SOPInstanceUID"], uid)
            got[head["SOPInstanceUID"]] = (staged, head | {"filepath": path})
        return got

    # -- waiting --------------------------------------------------------------------------------
    def _say(self, key: str, text: str, *, refused: bool) -> None:
        if self._said.get(key) != text:
            self._said[key] = text
            (log.error if refused else log.warning)(
                "检查影像被放弃拉取" if refused else "检查影像尚不能拉取，稍后重试", extra={"source": self.name, "study": key, "reason": text}
            )

    def _one(self, master: Mapping[str, str], paths: Sequence[str], pos: Position) -> Record | None:
        key = self._key(master)
        last = self._checked.get(key)
        if last is not None and key in pos.wait and time.monotonic() - last < self.recheck_seconds:
            self.waiting[key] = self._said.get(key, "等待重试")
            return None
        self._checked[key] = time.monotonic()
        try:
            rec = self._pull(master, paths)
        except FetchError as exc:
            if key not in pos.wait and len(pos.wait) >= MAX_WAITING:
                self.refused[key] = f"等待中的检查已达 {MAX_WAITING} 个，不再记入等待列表：{exc}"
                self._say(key, self.refused[key], refused=True)
                return None
            first = pos.wait.setdefault(key, self.now().strftime("%Y-%m-%d %H:%M:%S"))
            if (self.now() - parse_time(first)).total_seconds() > self.wait_hours * 3600:
                pos.wait.pop(key)
                self.refused[key] = f"等待超过 {self.wait_hours:g} 小时仍未拉取完整，停止重试（报告更新后将重新读取）：{exc}"
                self._say(key, self.refused[key], refused=True)
                return None
            self.waiting[key] = str(exc)
            self._say(key, str(exc), refused=False)
            return None
        pos.wait.pop(key, None)
        self._said.pop(key, None)
        self._checked.pop(key, None)
        return rec

    def _wanted(self, master: Mapping[str, str], paths: Sequence[str]) -> bool:
        if self.text.is_void(master):
            return False
        return bool(master.get("study_instance_uid")) if self.mode == "c-move" else bool(paths)

    def poll(self, watermark: str) -> Iterator[Record]:
        """Complete studies: first those waiting, then those of the rows after the watermark."""
        try:
            pos = Position.parse(watermark)
        except (ValueError, TypeError, IndexError, AttributeError) as exc:
            raise SourceError(f"{self.name}：无法识别的水位“{watermark[:200]}”") from exc
        self.waiting, self.refused, self.position, self._echoed = {}, {}, "", False
        at = pos.start or (pos.at[0] if pos.at else "")  # the text source's watermark, kept whole in at[0]
        seen: set[str] = set()
        for key in sorted(pos.wait):
            field_name, value = ("report_form_no", key[7:]) if key.startswith("report:") else ("study_instance_uid", key)
            rows = [r for r in self.text.rows_where(field_name, [value]) if self._wanted(*r)]
            seen.add(key)
            if not rows:
                pos.wait.pop(key, None)
                continue
            rec = self._one(*rows[0], pos)
            if rec is not None:
                yield Record(rec.kind, rec.key, rec.payload, rec.source, self._dump(pos, at))
        for master, paths, wm in self.text.studies(at):
            key = self._key(master)
            rec = None
            if self._wanted(master, paths) and key not in seen:
                seen.add(key)
                rec = self._one(master, paths, pos)
            at = wm
            if rec is not None:
                yield Record(rec.kind, rec.key, rec.payload, rec.source, self._dump(pos, at))
        self.position = self._dump(pos, at)

    @staticmethod
    def _dump(pos: Position, at: str) -> str:
        return Position(at=(at, "") if at else None, wait=dict(pos.wait)).dump()


def build(raw: Mapping[str, Any], text: PacsTextSource, spool: Spool) -> DicomPullSource:
    """The source ``[pacs_dimse]`` describes, reading its studies from the ``[pacs_text]`` ``text``."""
    conf = Conf({"type": "pacs_dimse", **raw}, KEYS)
    where = conf.where
    mode = conf.text("mode", "c-move").lower()
    if mode not in ("c-move", "http"):
        raise ConfigError(f"{where('mode')} 应为 c-move 或 http")
    pacs = None
    if mode == "c-move":
        pacs = Pacs(
            aet=aet_title(conf.text("pacs_aet"), where("pacs_aet")), host=conf.text("pacs_host"),
            port=conf.integer("pacs_port", 104, minimum=1), portal_aet=aet_title(conf.text("portal_aet", "HURENGW"), where("portal_aet")),
            timeout=conf.number("timeout_seconds", 30.0, minimum=1.0),
            move_timeout=conf.number("move_timeout_seconds", 600.0, minimum=1.0),
        )
    port = conf.integer("listen_port", 11113, minimum=0)
    if port > 65535:
        raise ConfigError(f"{where('listen_port')} 应为 0–65535 的端口")
    return DicomPullSource(
        conf.name, text, spool, mode=mode, pacs=pacs, listen=(conf.text("listen_host", "0.0.0.0"), port),
        store_aets=[aet_title(a, where("store_aets")) for a in conf.strings("store_aets", [])],
        store_hosts=conf.strings("store_hosts", []) if "store_hosts" in raw else None,
        max_instances=conf.integer("max_instances", 10000), wait_hours=conf.number("wait_hours", 72.0),
        recheck_seconds=conf.number("recheck_seconds", 300.0),
    )
