"""The spool of DICOM files the gateway read from the PACS (``huren.gateway.imaging``): fetched
by ``FILEPATH`` (a local or UNC-mounted path, or an http(s) URL, at most ``max_file_bytes``),
checked to be DICOM Part 10 holding the view row's SOP Instance UID and Study Instance UID, and
kept sealed at rest under the gateway's data keys (the outbox's) until the platform has the study.

A spool file is ``HURENSPOOL1\\n``, a random 16-byte file id, then the content in chunks of 1 MiB,
each ``<u32 length><envelope>`` sealed with the associated data (file id, chunk number, last or
not): a chunk moved, dropped or cut off does not open. Its name is a keyed digest of the content's
SHA-256 (the same bytes twice: one file). Nothing of a file is ever written in the clear; the
DICOM header is read from the first 4 MiB kept in memory while the file streams in.
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2

from huren.crypto.aead import SealError
from huren.gateway.model import os_reason
from huren.gateway.sealing import Sealer

CHUNK = 1 << 20
DICM_AT = 128


class FetchError(Exception):
    """A file could not be had or is not the file the view promised (a Chinese reason)."""


@dataclass(frozen=True, slots=True)
class Staged:
    sha256: str
    size: int
    name: str  # the spool file's name


def dicom_uids(head: bytes) -> tuple[str, str]:
    """(SOP Instance UID, Study Instance UID) from the first bytes of a Part-10 file (read up to
    the Study Instance UID); FetchError when it is not one."""
    import pydicom.filereader
    from pydicom.errors import InvalidDicomError

    if head[DICM_AT:DICM_AT + 4] != b"DICM":
        raise FetchError("不是 DICOM 文件（缺少 128 字节前导与“DICM”标记）")
    try:
        ds = pydicom.filereader.read_partial(io.BytesIO(head), stop_when=lambda tag, vr, length: tag > 0x0020000D)
        return str(ds.get("SOPInstanceUID", "")), str(ds.get("StudyInstanceUID", ""))
    except (InvalidDicomError, EOFError, ValueError, KeyError, AttributeError, TypeError) as exc:
        raise FetchError(f"DICOM 文件头无法解析（{exc.__class__.__name__}）") from exc


class Spool:
    """The folder of staged DICOM files: sealed at rest under the gateway's data keys (the
    outbox's), in chunks of 1 MiB each bound to the file, its place and whether it is the last
    (``<u32 length><envelope>`` …), named by a keyed digest of the content's SHA-256."""

    MAGIC = b"HURENSPOOL1\n"
    HEAD = 4 * 1024 * 1024  # the bytes kept in memory to read the DICOM header from

    def __init__(self, path: Path, sealer: Sealer, *, max_file_bytes: int = 512 * 1024 * 1024, http_timeout: float = 60.0) -> None:
        self.path, self.sealer = path, sealer
        self.max_file_bytes = max_file_bytes
        self.http_timeout = http_timeout
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path, 0o700)

    def file(self, name: str) -> Path:
        if "/" in name or "\\" in name or not name.endswith(".dcm"):
            raise ValueError(f"bad spool name {name!r}")
        return self.path / name

    def _ad(self, fid: bytes, index: int, last: bool) -> str:
        return f"{fid.hex()}/{index}/{'last' if last else 'more'}"

    def stage(self, source: str, sop_uid: str, study_uid: str) -> Staged:
        """Copy ``source`` (a path or an http(s) URL) into the spool, sealed and checked; FetchError
        with a Chinese reason when it cannot be read, is too big, is not DICOM or holds other UIDs.
        Nothing of it is ever written in the clear."""
        tmp = self.path / f".part-{secrets.token_hex(8)}"
        fid = secrets.token_bytes(16)
        digest = hashlib.sha256()
        size = 0
        head = bytearray()
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(self.MAGIC + fid)
                pending = b""
                index = 0
                for block in self._blocks(self._read(source)):
                    size += len(block)
                    if size > self.max_file_bytes:
                        raise FetchError(f"文件超过上限 {self.max_file_bytes} 字节")
                    digest.update(block)
                    if len(head) < self.HEAD:
                        head += block[: self.HEAD - len(head)]
                    if pending:  # one block behind: the last one is sealed as the last
                        self._write(out, fid, index, pending, last=False)
                        index += 1
                    pending = block
                if not pending:
                    raise FetchError("文件为空")
                self._write(out, fid, index, pending, last=True)
                out.flush()
                os.fsync(out.fileno())
            sop, study = dicom_uids(bytes(head))
            if sop != sop_uid:
                raise FetchError(f"文件中的 SOP Instance UID（{sop[:64]}）与视图 INSTANCESOPIUID（{sop_uid}）不符")
            if study != study_uid:
                raise FetchError(f"文件中的 Study Instance UID（{study[:64]}）与视图 STUDIUIID（{study_uid}）不符")
            sha = digest.hexdigest()
            name = f"{self.sealer.index(sha, 'imaging-spool')}.dcm"
            os.replace(tmp, self.path / name)  # the same bytes twice: one file
            return Staged(sha, size, name)
        finally:
            tmp.unlink(missing_ok=True)

    def _write(self, out: Any, fid: bytes, index: int, block: bytes, *, last: bool) -> None:
        env = self.sealer.seal(block, "imaging_spool", "chunk", self._ad(fid, index, last))
        out.write(len(env).to_bytes(4, "big") + env)

    def _open_chunks(self, path: Path) -> Iterator[bytes]:
        """The plaintext chunks; a chunk moved, dropped or cut off does not open (FetchError). A
        whole file put under another name is caught by the SHA-256 the platform checks at commit."""
        with path.open("rb") as fh:
            if fh.read(len(self.MAGIC)) != self.MAGIC:
                raise FetchError(f"暂存文件 {path.name} 已损坏")
            fid = fh.read(16)
            index = 0
            length = fh.read(4)
            while length:
                env = fh.read(int.from_bytes(length, "big"))
                length = fh.read(4)
                try:
                    yield self.sealer.open(env, "imaging_spool", "chunk", self._ad(fid, index, not length))
                except SealError as exc:
                    raise FetchError(f"暂存文件 {path.name} 无法解封（被改动、截断或密钥不符）") from exc
                index += 1

    def chunks(self, name: str) -> Iterator[bytes]:
        """The staged file's bytes, opened chunk by chunk."""
        yield from self._open_chunks(self.file(name))

    @staticmethod
    def _blocks(source: Iterator[bytes]) -> Iterator[bytes]:
        """``source`` in blocks of exactly ``CHUNK`` bytes (the last shorter)."""
        buf = bytearray()
        for piece in source:
            buf += piece
            while len(buf) >= CHUNK:
                yield bytes(buf[:CHUNK])
                del buf[:CHUNK]
        if buf:
            yield bytes(buf)

    def _read(self, source: str) -> Any:
        if source.lower().startswith(("http://", "https://")):
            return self._http(source)
        return self._local(Path(source))

    def _local(self, path: Path) -> Any:
        try:
            fh = path.open("rb")
        except OSError as exc:
            raise FetchError(f"无法读取文件 {path}（{os_reason(exc)}）") from exc
        with fh:
            while block := fh.read(CHUNK):
                yield block

    def _http(self, url: str) -> Any:
        try:
            with httpx2.stream("GET", url, timeout=self.http_timeout, follow_redirects=False) as r:
                if r.status_code != 200:
                    raise FetchError(f"下载影像文件失败：HTTP {r.status_code}")
                length = r.headers.get("content-length", "")
                if length.isdigit() and int(length) > self.max_file_bytes:
                    raise FetchError(f"文件超过上限 {self.max_file_bytes} 字节")
                yield from r.iter_bytes(CHUNK)
        except httpx2.HTTPError as exc:
            raise FetchError(f"下载影像文件失败（{exc.__class__.__name__}）") from exc

    def remove(self, names: Sequence[str], keep: set[str]) -> None:
        for n in names:
            if n not in keep:
                self.file(n).unlink(missing_ok=True)

    def sweep(self, keep: set[str], older_than: float = 3600.0) -> int:
        """Remove spool files no pending record names, last changed more than ``older_than`` s ago."""
        cutoff = time.time() - older_than
        n = 0
        for f in self.path.iterdir():
            try:
                if f.name not in keep and f.stat().st_mtime < cutoff:
                    f.unlink()
                    n += 1
            except OSError:
                continue
        return n
