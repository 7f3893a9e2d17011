"""Content-addressed blob store (PDFs, kept payloads) in a directory: ``ab/cd/<sha256>``.

Sealed at rest (issue 10 §1.8) in the formats of ``huren.store.blob_stream`` (whole blobs and
streamed ones), shared with the S3 backend (``huren.store.blobs_s3``; ``open_blob_store`` in
``huren.store.blob_backends`` picks one from the settings). The address stays the SHA-256 of the
plaintext, so the database's ``pdf_sha256`` / ``payload_sha256`` keep their meaning.

Durable: ``put`` returns only once the file's bytes and its directory entry are on disk (the
file is written under a temporary name, fsynced, renamed into place, and its directory —
and any directory it had to create — fsynced), so a report answered ``ok`` keeps its PDF
through a power loss. Directories are created 0700, files 0600.

**Streamed blobs** (DICOM instances, issue 12; :meth:`BlobStore.put_stream`, :meth:`BlobStore.open_stream`):
never the whole file in memory. Rotating the data key re-wraps the file key only (the envelope is
rewritten in place, same length; the segments stay). ``put_stream`` does not fsync:
:meth:`BlobStore.sync` makes a set of blobs durable (the study's commit).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from huren.crypto.aead import FieldCipher, SealError
from huren.errors import PlatformUnavailable, Problem
from huren.store.blob_stream import (
    SEALED,
    STREAM,
    STREAM_HEAD,
    STREAM_HEADER_LEN,
    chunks,
    file_key,
    open_segments,
    read_file,
    seal_blob,
    stream_ad,
    unseal_blob,
    write_stream,
)

log = logging.getLogger("huren.store")
_TMP_COUNTER = itertools.count()  # the temporary names of streamed puts (with the pid and random bytes)


#: threads syncing the files of one batch at once
SYNC_THREADS = 8


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Flush a directory's entries (a rename or a new file in it) to disk."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: a SHA-256 as the blob store names its files: 64 lowercase hex digits
_SHA256_HEX = re.compile(r"[0-9a-f]{64}").fullmatch


class BlobStore:
    def __init__(self, root: Path, cipher: FieldCipher | None = None) -> None:
        self.root = root
        self.cipher = cipher

    def seal(self, digest: str, data: bytes) -> bytes:
        """The bytes kept for ``data`` (sealed when there is a cipher)."""
        return seal_blob(self.cipher, digest, data)

    def unseal(self, digest: str, stored: bytes) -> bytes | None:
        """The plaintext of stored bytes; None (logged) for a sealed blob that does not open."""
        return unseal_blob(self.cipher, digest, stored)

    def _path(self, digest: str) -> Path:
        if _SHA256_HEX(digest) is None:
            raise ValueError("not a SHA-256 hex digest")
        return Path(f"{self.root}/{digest[:2]}/{digest[2:4]}/{digest}")  # one Path, not three (every read)

    def _makedirs(self, directory: Path) -> None:
        """Create ``directory`` and its missing parents, each new entry synced in its parent."""
        if directory.is_dir():
            return
        self._makedirs(directory.parent)
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:  # another writer made it first
            return
        fsync_dir(directory.parent)

    def put(self, data: bytes) -> str:
        """Store ``data`` durably (idempotent) and return its SHA-256 hex digest."""
        digest = hashlib.sha256(data).hexdigest()
        path = self._path(digest)
        if path.exists():
            return digest
        self._makedirs(path.parent)
        self._write_sealed(path, digest, data)
        return digest

    def _write_sealed(self, path: Path, digest: str, data: bytes) -> None:
        """``data`` sealed into ``path``: a temporary file, fsynced, renamed into place, then the
        directory fsynced (a reader never sees half a blob; a failure leaves none)."""
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(self.seal(digest, data))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        fsync_dir(path.parent)

    def put_many(self, items: Sequence[bytes]) -> list[str]:
        """Store several blobs durably, as ``put`` does, with their syncs overlapped: every file is
        written, then all are fsynced from a few threads at once (the file system can merge them
        into fewer journal commits), renamed into place, and their directories synced likewise."""
        digests = [hashlib.sha256(d).hexdigest() for d in items]
        todo: dict[str, bytes] = {}
        for digest, data in zip(digests, items, strict=True):
            if digest not in todo and not self._path(digest).exists():
                todo[digest] = data
        if len(todo) <= 1:
            for data in todo.values():
                self.put(data)
            return digests
        dirs: set[Path] = set()
        temps: list[tuple[str, str]] = []
        try:
            for digest, data in todo.items():
                parent = self._path(digest).parent
                dirs |= self._makedirs_unsynced(parent)
                fd, tmp = tempfile.mkstemp(dir=parent, prefix=".tmp-")
                temps.append((digest, tmp))
                with os.fdopen(fd, "wb") as fh:
                    fh.write(self.seal(digest, data))
            with ThreadPoolExecutor(max_workers=SYNC_THREADS) as pool:
                list(pool.map(_fsync_file, [tmp for _, tmp in temps]))
            while temps:
                digest, tmp = temps.pop()
                os.replace(tmp, self._path(digest))
                dirs.add(self._path(digest).parent)
            with ThreadPoolExecutor(max_workers=SYNC_THREADS) as pool:
                list(pool.map(fsync_dir, sorted(dirs)))
        finally:
            for _, tmp in temps:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
        return digests

    def _makedirs_unsynced(self, directory: Path) -> set[Path]:
        """Create ``directory`` and its missing parents; the directories whose entries changed."""
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:  # there already (or another writer made it first)
            return set()
        except FileNotFoundError:  # its parent is missing too
            changed = self._makedirs_unsynced(directory.parent)
            try:
                os.mkdir(directory, 0o700)
            except FileExistsError:
                return changed
            return changed | {directory.parent}
        return {directory.parent}

    def get(self, digest: str) -> bytes | None:
        try:
            stored = self._path(digest).read_bytes()
        except (FileNotFoundError, ValueError):
            return None
        if stored.startswith(STREAM):
            chunks = self.open_stream(digest)
            try:
                return None if chunks is None else b"".join(chunks)
            except SealError as exc:
                log.error("blob %s does not open (%s)", digest, exc)
                return None
        return self.unseal(digest, stored)

    def exists(self, digest: str) -> bool:
        try:
            return self._path(digest).exists()
        except ValueError:
            return False

    def check(self) -> None:
        """PlatformUnavailable unless the store can be used (its directory is there)."""
        if not self.root.is_dir():
            msg = f"文件存储目录不可用：{self.root}"
            raise PlatformUnavailable(msg, [Problem("blob_dir", "unavailable", msg)])

    # -- re-encryption (huren keys rotate-data) ------------------------------------------------
    def digests(self) -> list[str]:
        """Every blob's address, in the store's order."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.glob("??/??/*") if p.is_file() and not p.name.startswith("."))

    def reseal(self, digest: str) -> str:
        """Bring one file under the active data key, atomically: ``sealed`` (it was plaintext),
        ``rekeyed`` (another key or algorithm), ``current`` (nothing to do) or ``unreadable``."""
        if self.cipher is None:
            raise ValueError("a store without a data key cannot seal")
        path = self._path(digest)
        with open(path, "rb") as fh:
            magic = fh.read(len(STREAM))
        if magic == STREAM:
            return self._reseal_stream(digest)
        stored = path.read_bytes()
        data = self.unseal(digest, stored)  # every file is opened: the run checks them all
        if data is None or hashlib.sha256(data).hexdigest() != digest:
            return "unreadable"
        if not stored.startswith(SEALED):
            outcome = "sealed"
        elif self.cipher.needs_rekey(stored[len(SEALED) :]):
            outcome = "rekeyed"
        else:
            return "current"
        self._write_sealed(path, digest, data)
        return outcome

    # -- streamed blobs (DICOM instances) ---------------------------------------------------------
    def put_stream(self, source: BinaryIO | Iterable[bytes], *, max_bytes: int | None = None) -> tuple[str, int, bool]:
        """Store the bytes of ``source`` (a binary file read in chunks, or an iterable of chunks),
        sealed in segments, at their SHA-256 address; (digest, size, new). Not fsynced: call
        :meth:`sync` before answering that they are kept. TooLarge past ``max_bytes`` (nothing kept).

        Written under a unique temporary name in ``.incoming`` (``O_CREAT | O_EXCL``, 0600), then
        renamed to its address. The directories are not checked on every put: a rename or create
        that finds one missing (removed meanwhile) creates it and retries once."""
        fd, tmp = self._incoming_file()
        try:
            with open(fd, "wb") as out:
                digest, size = self._write_stream(out, chunks(source), max_bytes)
            path = f"{self.root}/{digest[:2]}/{digest[2:4]}/{digest}"
            if os.path.exists(path):
                os.unlink(tmp)
                return digest, size, False
            try:
                os.replace(tmp, path)
            except FileNotFoundError:  # its directory is new (or was removed): made, then again
                if not os.path.exists(tmp):
                    raise
                self._makedirs_unsynced(Path(path).parent)
                os.replace(tmp, path)
            return digest, size, True
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _incoming_file(self) -> tuple[int, str]:
        """A new temporary file in ``.incoming`` (created when missing): its descriptor and path."""
        incoming = f"{self.root}/.incoming"
        for attempt in range(3):
            tmp = f"{incoming}/.tmp-{os.getpid()}-{next(_TMP_COUNTER)}-{os.urandom(4).hex()}"
            try:
                return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600), tmp
            except FileNotFoundError:
                if attempt:
                    raise
                self._makedirs(Path(incoming))
            except FileExistsError:  # another process with this pid and counter (a pid reused): another name
                continue
        raise FileExistsError(incoming)

    def _write_stream(self, out: BinaryIO, chunks: Iterator[bytes], max_bytes: int | None) -> tuple[str, int]:
        return write_stream(out, chunks, max_bytes, self.cipher)

    def _file_key(self, digest: str, head: bytes) -> tuple[AESGCM, int] | None:
        """The segment cipher and segment size of a streamed file's header; None (logged) when it does not open."""
        return file_key(self.cipher, digest, head)

    def open_stream(self, digest: str) -> Iterator[bytes] | None:
        """The plaintext of a blob in chunks, never whole in memory; None when it is missing or
        does not open. A segment that fails to authenticate mid-stream raises SealError."""
        try:
            path = self._path(digest)
            with open(path, "rb") as fh:
                head = fh.read(STREAM_HEADER_LEN)
        except (FileNotFoundError, ValueError):
            return None
        if head.startswith(SEALED):
            data = self.get(digest)
            return None if data is None else iter([data])
        if not head.startswith(STREAM):
            return read_file(path, 0)
        opened = self._file_key(digest, head)
        if opened is None:
            return None
        return open_segments(path, *opened)

    def clean_incoming(self, max_age_seconds: float = 3600) -> int:
        """Remove temporary files of streamed puts older than ``max_age_seconds`` (left by a crash:
        nothing refers to them); how many were removed."""
        incoming = self.root / ".incoming"
        if not incoming.is_dir():
            return 0
        now, n = time.time(), 0
        for p in incoming.glob(".tmp-*"):
            with contextlib.suppress(OSError):
                if now - p.stat().st_mtime > max_age_seconds:
                    p.unlink()
                    n += 1
        return n

    def remove(self, digest: str) -> None:
        """Drop a blob just stored that nothing refers to (an instance refused after its copy)."""
        with contextlib.suppress(FileNotFoundError, ValueError):
            os.unlink(self._path(digest))

    def sync(self, digests: Iterable[str]) -> None:
        """Make the given blobs durable: each file fsynced, then the directories that hold them
        (their entries, and those of any directory created for them), a few threads at once."""
        files: list[str] = []
        dirs: set[Path] = set()
        for d in set(digests):
            path = self._path(d)
            if path.exists():
                files.append(str(path))
                dirs |= {path.parent, path.parent.parent, self.root}
        if not files:
            return
        with ThreadPoolExecutor(max_workers=SYNC_THREADS) as pool:
            list(pool.map(_fsync_file, files))
            list(pool.map(fsync_dir, sorted(dirs)))

    def _reseal_stream(self, digest: str) -> str:
        """Re-wrap a streamed blob's file key under the active data key, in place (same length), after
        checking every segment and the digest."""
        assert self.cipher is not None
        path = self._path(digest)
        with open(path, "rb") as fh:
            head = fh.read(STREAM_HEADER_LEN)
        opened = self._file_key(digest, head)
        if opened is None:
            return "unreadable"
        h = hashlib.sha256()
        try:
            for chunk in open_segments(path, *opened):
                h.update(chunk)
        except SealError:
            return "unreadable"
        if h.hexdigest() != digest:
            return "unreadable"
        envelope = head[STREAM_HEAD.size :]
        if not self.cipher.needs_rekey(envelope):
            return "current"
        key = self.cipher.open(envelope, stream_ad(digest))
        fresh = self.cipher.seal(key, stream_ad(digest))
        fd = os.open(path, os.O_WRONLY)
        try:
            os.pwrite(fd, fresh, STREAM_HEAD.size)
            os.fsync(fd)
        finally:
            os.close(fd)
        return "rekeyed"

