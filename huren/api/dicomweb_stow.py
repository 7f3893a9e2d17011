"""STOW-RS (PS3.18 §10.5) at ``POST /dicom-web/studies[/{S}]``.

The body, ``multipart/related; type="application/dicom"``, is read as it arrives into one
temporary file per part (each bounded by ``max_instance_bytes``, the whole request by
:func:`stow_limit`, the number of parts by :data:`MAX_PARTS`; over a bound: 413 in the error
form, naming it) in the request's own directory under ``<data_dir>/spool`` (0700, files 0600:
never the current directory, never /tmp), removed however the request ends — answered, refused,
the client gone mid-upload, an exception, the task cancelled. Only once the body has arrived
whole — a truncated or malformed body stores nothing — each part is stored (``ImagingService.store_instance``, sender ``stow:<org>/<user>``), then
each study of the request is committed with the instances and SHA-256 stored for it: a STOW
request is its studies' commit (study atomicity, PS3.4 / Orthanc's transfer-atomicity table).

The answer (application/dicom+json) lists ReferencedSOPSequence (0008,1199) with each stored
instance's RetrieveURL, FailedSOPSequence (0008,1198) with a FailureReason (0008,1197) and the
Chinese reason in ErrorComment (0000,0902); 200 when all were stored, 202 when some were, 409
when none was. FailureReason: 0xA700 out of resources (over the size limit), 0xA900 the
instance does not belong to the study of the URL or lacks valid UIDs, 0xC000 cannot understand
(not DICOM, truncated, bad VR), 0x0122 SOP class not supported, 0x0111 a different instance with
that SOP Instance UID is held, 0x0110 processing failure (another institution's study, a store
failure).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, BinaryIO

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from huren.api.dicomweb import PREFIX, bad, call, dicom_json, public_base, resolve_reader
from huren.api.openapi import op
from huren.domain.imaging import check_uid, valid_uid
from huren.errors import Conflict, Forbidden, HurenError, InvalidInput, Problem, TooLarge, UnsupportedEncoding
from huren.services.container import Container
from huren.services.imaging import KeyGrant, Sender, StoredInstance
from huren.settings import Settings
from huren.wire import dicom_render as dr
from huren.wire.multipart import Part, RelatedReader, parse_content_type

log = logging.getLogger("huren.api.stow")
# DICOMweb is specified by PS3.18, not by this OpenAPI document (docs/imaging.md lists it): out of the schema
router = APIRouter(prefix=PREFIX, tags=["DICOMweb"], include_in_schema=False)

DICOM = "application/dicom"
OUT_OF_RESOURCES = 0xA700
NOT_MATCHING = 0xA900
CANNOT_UNDERSTAND = 0xC000
PROCESSING_FAILURE = 0x0110
DUPLICATE = 0x0111
SOP_CLASS_NOT_SUPPORTED = 0x0122
#: a spool directory older than this belongs to no running request (STOW requests are bounded in size)
STALE_SECONDS = 6 * 3600
#: the most parts (instances) one STOW request may carry: each is a file in the spool
MAX_PARTS = 10_000
#: the spool's directory under the data dir
SPOOL_DIR = "spool"


def spool_root(settings: Settings) -> Path:
    """Where STOW requests spool their parts: ``<data_dir>/spool`` (absolute, whatever the cwd later)."""
    return settings.data_dir.resolve() / SPOOL_DIR


def stow_limit(settings: Settings) -> int:
    """The largest STOW-RS request body: four of the largest instances (2 GiB by default), and
    never less than the REST request limit."""
    return max(settings.max_request_bytes, 4 * settings.max_instance_bytes)


def _ui(value: str | None) -> dict[str, Any]:
    return {"vr": "UI", "Value": [value]} if value else {"vr": "UI"}


def _failure(cls: str | None, sop: str | None, reason: int, message: str) -> dict[str, Any]:
    return {
        "00081150": _ui(cls), "00081155": _ui(sop),
        "00081197": {"vr": "US", "Value": [reason]},
        "00000902": {"vr": "LO", "Value": [message[:64]]},
    }


def _reason(exc: HurenError) -> int:
    rules = {p.rule for p in exc.problems}
    if isinstance(exc, TooLarge):
        return OUT_OF_RESOURCES
    if isinstance(exc, Conflict):
        return DUPLICATE
    if isinstance(exc, InvalidInput):
        if "sop_class" in rules:
            return SOP_CLASS_NOT_SUPPORTED
        if "uid" in rules:
            return NOT_MATCHING
        return CANNOT_UNDERSTAND
    return PROCESSING_FAILURE


class _Spool:
    """The request's parts, one temporary file each (0600), in a directory of the data dir (0700),
    removed when the request ends; what a crashed process left there is removed by the next
    STOW request after :data:`STALE_SECONDS`."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.dir = Path(tempfile.mkdtemp(prefix="stow-", dir=root))
        self.n = 0
        now = time.time()
        for old in root.glob("stow-*"):
            with contextlib.suppress(OSError):
                if old != self.dir and now - old.stat().st_mtime > STALE_SECONDS:
                    shutil.rmtree(old, ignore_errors=True)

    def sink(self) -> tuple[Path, BinaryIO]:
        self.n += 1
        path = self.dir / f"part-{self.n:05d}.dcm"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        return path, os.fdopen(fd, "wb")

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _too_large(limit: int) -> TooLarge:
    return TooLarge(f"请求体超过上限 {limit} 字节", [Problem("body", "max_size", f"STOW-RS 请求体不能超过 {limit} 字节")])


async def _receive(request: Request, c: Container, spool: _Spool, boundary: str) -> list[Part]:
    limit = stow_limit(c.settings)
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise _too_large(limit)  # before reading a byte
    try:
        rr = RelatedReader(boundary, spool.sink, max_part_bytes=c.settings.max_instance_bytes, max_parts=MAX_PARTS)
    except InvalidInput as exc:
        raise bad("Content-Type", "boundary", exc.message) from exc
    parts: list[Part] = []
    total = 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise _too_large(limit)
            parts.extend(rr.feed(chunk))
        rr.finish()
    except InvalidInput as exc:
        if rr.count > rr.max_parts:
            msg = f"一个 STOW-RS 请求最多 {rr.max_parts} 个部件（实例）"
            raise TooLarge(msg, [Problem("body", "max_parts", msg)]) from exc
        raise bad("body", "multipart", exc.message) from exc
    except ClientDisconnect:
        # nobody reads the answer; the spool is removed by the caller's finally
        log.info("STOW-RS: the client disconnected before the body was complete", extra={"received": total, "parts": len(parts)})
        msg = "客户端在请求体上传完成前断开了连接"
        raise bad("body", "incomplete", msg) from None
    finally:
        rr.close()
    return parts


def _store_all(c: Container, sender: Sender, parts: list[Part], study: str | None) -> dict[str, Any]:
    base = public_base(c)
    stored: list[tuple[StoredInstance, str]] = []
    failed: list[dict[str, Any]] = []
    for part in parts:
        s_uid, cls, sop = dr.header_uids(str(part.path))
        if part.oversize:
            failed.append(_failure(cls, sop, OUT_OF_RESOURCES, f"文件超过上限 {c.settings.max_instance_bytes} 字节"))
            continue
        media = part.content_type or DICOM
        if media != DICOM:
            failed.append(_failure(cls, sop, CANNOT_UNDERSTAND, f"部件类型应为 {DICOM}"))
            continue
        if study is not None and s_uid is not None and s_uid != study:
            failed.append(_failure(cls, sop, NOT_MATCHING, "实例不属于请求地址中的检查"))
            continue
        try:
            got = c.imaging.store_instance(sender, part.path, size_hint=part.size)
        except HurenError as exc:
            failed.append(_failure(cls, sop if sop and valid_uid(sop) else None, _reason(exc), exc.message))
            continue
        except Exception:  # never a 500 for one bad part: logged, reported as a processing failure
            log.exception("STOW-RS: storing a part failed")
            failed.append(_failure(cls, sop if sop and valid_uid(sop) else None, PROCESSING_FAILURE, "存储失败"))
            continue
        stored.append((got, cls or got.sop_class_uid))
    by_study: dict[str, list[StoredInstance]] = {}
    for got, _cls in stored:
        by_study.setdefault(got.study_uid, []).append(got)
    lost: set[str] = set()
    for study_uid, items in by_study.items():
        result = c.imaging.commit_study(sender, study_uid, [(i.sop_uid, i.sha256) for i in items])
        for sop_uid, code in result.failed:
            lost.add(sop_uid)
            cls = next((k for g, k in stored if g.sop_uid == sop_uid), None)
            failed.append(_failure(cls, sop_uid, PROCESSING_FAILURE, "提交时未找到该实例" if code == "missing" else "提交时校验值不符"))
    referenced = [
        {
            "00081150": _ui(cls), "00081155": _ui(g.sop_uid),
            "00081190": {"vr": "UR", "Value": [f"{base}/studies/{g.study_uid}/series/{g.series_uid}/instances/{g.sop_uid}"]},
        }
        for g, cls in stored if g.sop_uid not in lost
    ]
    out: dict[str, Any] = {}
    studies = sorted(by_study) if by_study else ([study] if study else [])
    if len(studies) == 1:
        out["00081190"] = {"vr": "UR", "Value": [f"{base}/studies/{studies[0]}"]}
    if failed:
        out["00081198"] = {"vr": "SQ", "Value": failed}
    if referenced:
        out["00081199"] = {"vr": "SQ", "Value": referenced}
    return out


async def _stow(request: Request, study: str | None) -> Response:
    c: Container = request.app.state.container
    media, params = parse_content_type(request.headers.get("content-type", ""))
    if media != "multipart/related" or params.get("type", DICOM).lower() != DICOM:
        raise UnsupportedEncoding(
            "STOW-RS 只接受 multipart/related; type=\"application/dicom\"",
            [Problem("Content-Type", "media_type", "请求体应为 multipart/related，部件为 application/dicom")],
        )
    coding = request.headers.get("content-encoding", "identity").strip().lower()
    if coding not in ("", "identity"):
        raise UnsupportedEncoding(
            f"STOW-RS 不接受压缩的请求体（Content-Encoding: {coding[:20]}）",
            [Problem("Content-Encoding", "unsupported", "请以未压缩的 multipart/related 发送")],
        )
    boundary = params.get("boundary")
    if not boundary:
        raise bad("Content-Type", "boundary", "Content-Type 缺少 boundary 参数")

    def who() -> Sender:
        reader = resolve_reader(c, request)
        if isinstance(reader, KeyGrant):
            raise Forbidden("影像密钥只能用于调阅与下载，上传影像须使用机构访问令牌", [Problem("key", "kind", "影像密钥不能用于上传")])
        return c.imaging.sender_for(reader, "stow")  # image.write; actor "stow:<org>/<user>"

    sender = await call(who)
    spool = await run_in_threadpool(_Spool, spool_root(c.settings))
    try:
        parts = await _receive(request, c, spool, boundary)
        if not parts:
            raise bad("body", "multipart", "请求体中没有 DICOM 部件")
        answer = await call(lambda: _store_all(c, sender, parts, study))
    finally:
        try:
            await run_in_threadpool(spool.close)
        except BaseException:  # cancelled (the task or its scope): remove it here and now
            spool.close()
            raise
    stored, failed = "00081199" in answer, "00081198" in answer
    status = 200 if not failed else 202 if stored else 409
    return dicom_json(answer, status)


@router.post("/studies", **op(["BJ-1.1", "XJ-2.4"], "STOW-RS 上传 DICOM 实例（一次请求即为所含检查的提交）"))
async def stow_studies(request: Request) -> Response:
    return await _stow(request, None)


@router.post("/studies/{study}", **op(["BJ-1.1", "XJ-2.4"], "STOW-RS 向指定检查上传 DICOM 实例"))
async def stow_study(study: str, request: Request) -> Response:
    return await _stow(request, translate_uid(study))


def translate_uid(study: str) -> str:
    try:
        return check_uid(study, "StudyInstanceUID")
    except InvalidInput as exc:
        raise bad("StudyInstanceUID", "uid", exc.message) from exc
