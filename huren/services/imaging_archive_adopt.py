"""Adopting what an Orthanc already holds into huren's index (issue 12: a regional platform that
already runs Orthanc has studies in it before huren is configured; ``huren imaging adopt-orthanc``).

The walk: Orthanc's studies page by page (``GET /studies?expand&limit=&since=``, in Orthanc's own
order, so ``since`` resumes an interrupted run), each study's series (``GET
/series/{id}/instances``), and for each instance the index does not hold yet its file streamed once
into a spool file (one instance at a time, bounded by ``HUREN_MAX_INSTANCE_BYTES``; never a study
in memory) and given to ``ImagingService.store_instance`` — the ingest path every push takes, so the
same header rules (DICOM, UIDs, SOP class, size) and the same index refusals (another institution's
study, a UID held by another study, other bytes under a complete study's instance) apply, with the
same Chinese messages. Only the archive differs: :class:`AlreadyHeld` hashes the bytes instead of
storing them again (they are in Orthanc, under the id the read path computes), and never removes
anything from Orthanc. Each study is then committed (COMPLETE when every instance Orthanc lists is
indexed).

Idempotent: an instance already indexed is not downloaded again; a study hidden by a YB-4.5 deletion
notice (in huren's index, or marked withdrawn in Orthanc) is passed over, never shown again.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import httpx2

from huren.domain import imaging
from huren.errors import HurenError, NotConfigured, PlatformUnavailable, Problem
from huren.services.container import Container
from huren.services.imaging import ImagingService, Sender
from huren.services.imaging_archive_io import Body, unavailable
from huren.services.imaging_archive_orthanc import OrthancArchive
from huren.services.imaging_archive_types import CHUNK, ORTHANC, Put, Ref, StudyRef
from huren.store import imaging as store

CHANNEL = "adopt"
#: the instance list of one series is read to at most this many bytes (about 60 000 instances)
SERIES_JSON_MAX = 64 * 1024 * 1024


@dataclass
class Refused:
    study_uid: str
    sop_uid: str
    message: str  # the ingest's own (Chinese)


@dataclass
class AdoptReport:
    """What a run did: studies walked, instances newly indexed / already held / refused, studies passed
    over (hidden by a deletion notice), and the ``since`` a next run would start at."""

    total: int = 0  # studies in Orthanc when the run started
    studies: int = 0
    adopted: int = 0
    held: int = 0
    refused: list[Refused] = field(default_factory=list)
    withdrawn: int = 0
    since: int = 0

    def line(self) -> str:
        return (
            f"迁入进度：检查 {self.since}/{max(self.total, self.since)}；新收录实例 {self.adopted}，已在索引中 {self.held}，"
            f"拒绝 {len(self.refused)}，跳过已删除的检查 {self.withdrawn}（中断后可加 --since {self.since} 继续）"
        )


class AlreadyHeld:
    """The archive of an adoption: the instance is in Orthanc already (``current``, its id there), so
    ``put`` only hashes and measures the bytes; everything else is the Orthanc archive's."""

    name = ORTHANC
    needs_patient_id = False  # only hashes what is adopted; never read from

    def __init__(self, orthanc: OrthancArchive) -> None:
        self.orthanc = orthanc
        self.current: str | None = None

    def put(self, source: BinaryIO | Iterable[bytes], *, max_bytes: int | None = None) -> Put:
        body = Body(source, max_bytes)
        for _ in body:
            pass
        return Put(body.sha.hexdigest(), body.size, False, self.current)  # never new: remove() keeps it

    def open(self, ref: Ref | str) -> Iterator[bytes] | None:
        return self.orthanc.open(ref)

    def exists(self, ref: Ref | str) -> bool:
        return self.orthanc.exists(ref)

    def sync(self, refs: Iterable[Ref | str]) -> None:
        return None  # nothing was written to Orthanc

    def remove(self, put: Put) -> None:
        return None  # Orthanc's file predates huren: a refusal by the index leaves it where it was

    def hidden(self, studies: Iterable[StudyRef], note: str = "") -> int:
        return self.orthanc.hidden(studies, note)

    def shown(self, studies: Iterable[StudyRef]) -> int:
        return self.orthanc.shown(studies)

    def check(self) -> None:
        self.orthanc.check()


class OrthancAdoption:
    """One adoption run for the institution ``org_code`` (see the module's docstring)."""

    def __init__(self, container: Container, org_code: str, *, page: int = 20, spool_dir: Path | None = None) -> None:
        orthanc = container.imaging.archive
        if not isinstance(orthanc, OrthancArchive):
            msg = "迁入 Orthanc 中已有的检查需要以 Orthanc 作为影像归档：请设置 HUREN_IMAGING_ARCHIVE=orthanc 与 HUREN_ORTHANC_URL"
            raise NotConfigured(msg, [Problem("imaging_archive", "orthanc", msg)])
        container.directory.get_org(org_code)  # NotFound (Chinese) for an institution not registered
        self.orthanc = orthanc
        self.held_archive = AlreadyHeld(orthanc)
        c = container
        self.imaging = ImagingService(
            c.db, c.blobs, c.clock, c.audit, c.refs, max_instance_bytes=c.imaging.max_instance_bytes, archive=self.held_archive,
            public_base=c.imaging.public_base,
        )
        self.db = c.db
        self.sender = Sender(org_code, f"{CHANNEL}:orthanc@{orthanc.url}"[:256], CHANNEL)
        self.page = max(1, min(page, 1000))
        self.spool_dir = spool_dir

    def run(self, *, since: int = 0, progress: Callable[[AdoptReport], None] | None = None,
            refused: Callable[[Refused], None] | None = None) -> AdoptReport:
        stats = self.orthanc.get_json("/statistics")
        report = AdoptReport(total=int(stats.get("CountStudies", 0)) if isinstance(stats, dict) else 0, since=max(0, since))
        while True:
            studies = self.orthanc.get_json(f"/studies?expand&limit={self.page}&since={report.since}")
            if not isinstance(studies, list) or not studies:
                break
            for s in studies:
                before = len(report.refused)
                self._study(s, report)
                for r in report.refused[before:]:
                    if refused is not None:
                        refused(r)
                report.studies += 1
            report.since += len(studies)
            if progress is not None:
                progress(report)
            if len(studies) < self.page:
                break
        return report

    # -- one study ---------------------------------------------------------------------------------------
    def _study(self, s: dict[str, Any], report: AdoptReport) -> None:
        uid = str((s.get("MainDicomTags") or {}).get("StudyInstanceUID") or "")
        oid = str(s.get("ID") or "")
        if not uid or not oid:
            return
        with self.db.read() as conn:
            row = store.study_row(conn, uid)
            held = store.instance_digests(conn, int(row["id"])) if row is not None else {}
        if (row is not None and row["deleted_at"] is not None) or self.orthanc.withdrawn(oid) is not None:
            report.withdrawn += 1  # a deletion notice hid it: adopting it would show it again
            return
        listed: list[str] = []
        foreign: str | None = None  # the ownership refusal, once met: it holds for the whole study
        added = 0
        for series in s.get("Series") or []:
            instances = self.orthanc.get_json(f"/series/{series}/instances", limit=SERIES_JSON_MAX)
            for i in instances if isinstance(instances, list) else []:
                sop = str((i.get("MainDicomTags") or {}).get("SOPInstanceUID") or "")
                listed.append(sop)
                if sop in held:
                    report.held += 1
                elif foreign is not None:
                    report.refused.append(Refused(uid, sop, foreign))
                else:
                    try:
                        self._adopt(str(i["ID"]))
                        added += 1
                        report.adopted += 1
                    except (PlatformUnavailable, NotConfigured):
                        raise  # Orthanc down, or refusing huren: stop (a next run resumes)
                    except HurenError as exc:
                        report.refused.append(Refused(uid, sop, exc.message))
                        if any(p.rule == "ownership" for p in exc.problems):
                            foreign = exc.message
        ours = row is None or row["org_code"] == self.sender.org_code
        if ours and (added or (row is not None and row["state"] != imaging.COMPLETE)) and foreign is None:
            self.imaging.commit_study(self.sender, uid, [(sop, None) for sop in listed if sop])

    def _adopt(self, instance_id: str) -> None:
        """Stream one instance's file into a spool file (bounded), then ingest it as held by Orthanc."""
        limit = self.imaging.max_instance_bytes + 1  # one byte over: the ingest refuses it with its own message
        with tempfile.NamedTemporaryFile(dir=self.spool_dir, prefix="adopt-", suffix=".dcm") as spool:
            try:
                with self.orthanc.http.stream("GET", f"/instances/{instance_id}/file") as resp:
                    if resp.status_code >= 300:
                        if resp.status_code == 404:
                            raise unavailable(f"实例 {instance_id} 在读取时已不在 Orthanc 中")
                        raise self.orthanc.refused(resp, "读取实例")
                    n = 0
                    for chunk in resp.iter_bytes(CHUNK):
                        n += len(chunk)
                        spool.write(chunk[: max(0, limit - (n - len(chunk)))])
                        if n >= limit:
                            break
            except httpx2.TimeoutException as exc:
                raise unavailable("读取实例超时", exc) from None
            except httpx2.TransportError as exc:
                raise unavailable(f"读取实例时与 {self.orthanc.url} 的连接中断", exc) from None
            spool.flush()
            self.held_archive.current = instance_id
            try:
                self.imaging.store_instance(self.sender, Path(spool.name))
            finally:
                self.held_archive.current = None


__all__ = ["AdoptReport", "AlreadyHeld", "OrthancAdoption", "Refused"]
