"""Content-addressed blob store (PDFs, kept payloads) in a directory: ``ab/cd/<sha256>``.

Sealed at rest (issue 10 §1.8): given the keyring's field cipher, each file holds ``HRNB`` and an
SM4-GCM envelope (``huren.crypto.aead``) of the bytes, bound to the blob's address (a sealed file
moved to another address does not open). The address stays the SHA-256 of the plaintext, so the
database's ``pdf_sha256`` / ``payload_sha256`` keep their meaning. A file without the mark (written
before blobs were sealed) is read as it is; a sealed file that does not open is logged and read as
missing (never a 500).

Durable: ``put`` returns only once the file's bytes and its directory entry are on disk (the
file is written under a temporary name, fsynced, renamed into place, and its directory —
and any directory it had to create — fsynced), so a report answered ``ok`` keeps its PDF
through a power loss. Directories are created 0700, files 0600.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from huren.crypto.aead import FieldCipher, SealError, column_ad

log = logging.getLogger("huren.store")
SEALED = b"HRNB"  # a sealed blob file begins with these bytes, then the envelope


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


class BlobStore:
    def __init__(self, root: Path, cipher: FieldCipher | None = None) -> None:
        self.root = root
        self.cipher = cipher

    def seal(self, digest: str, data: bytes) -> bytes:
        """The bytes kept on disk for ``data`` (sealed when there is a cipher)."""
        if self.cipher is None:
            return data
        return SEALED + self.cipher.seal(data, column_ad("blob", "content", digest))

    def unseal(self, digest: str, stored: bytes) -> bytes | None:
        """The plaintext of a stored file; None (logged) for a sealed file that does not open."""
        if not stored.startswith(SEALED):
            return stored  # written before blobs were sealed
        if self.cipher is None:
            log.error("blob %s is sealed but the store has no data key", digest)
            return None
        try:
            return self.cipher.open(stored[len(SEALED) :], column_ad("blob", "content", digest))
        except SealError as exc:
            log.error("blob %s does not open (%s): damaged, moved or sealed under an unknown key", digest, exc)
            return None

    def _path(self, digest: str) -> Path:
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError("not a SHA-256 hex digest")
        return self.root / digest[:2] / digest[2:4] / digest

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
        if directory.is_dir():
            return set()
        changed = self._makedirs_unsynced(directory.parent)
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            return changed
        return changed | {directory.parent}

    def get(self, digest: str) -> bytes | None:
        try:
            stored = self._path(digest).read_bytes()
        except (FileNotFoundError, ValueError):
            return None
        return self.unseal(digest, stored)

    def exists(self, digest: str) -> bool:
        try:
            return self._path(digest).exists()
        except ValueError:
            return False

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
