"""The blob store on S3-compatible object storage (issue 13 §6: ``HUREN_BLOB_BACKEND=s3``), so
several platform nodes share one store of report PDFs, kept rejected payloads and DICOM instances.

The same contract as the local directory (``huren.store.blobs.BlobStore``), object for file:

- content-addressed: the object ``<prefix>ab/cd/<sha256>`` holds what the local store's file of that
  address holds — ``HRNB`` + the SM4-GCM envelope of a whole blob, or the segmented stream format
  of ``huren.store.blob_stream`` — sealed here before it is sent, so the S3 server only ever holds
  ciphertext (an object copied to another address does not open);
- idempotent: a put asks HEAD first and sends nothing when the address is taken (every node
  computes the same address for the same bytes);
- durable when it returns: an S3 PUT (or a multipart upload's completion) is answered once the
  server keeps the object, so ``put`` / ``put_many`` return only after that and :meth:`sync` has
  nothing left to do;
- streamed: ``put_stream`` seals into a spool file under ``root/.incoming`` (local to the node,
  bounded memory) and uploads it in 8 MiB parts; ``open_stream`` decrypts segment by segment from
  the GET's body, never the whole object in memory;
- errors: an unreachable or refusing server is ``PlatformUnavailable`` in Chinese after bounded
  retries (``huren.store.s3_client``); a missing object is None, as a missing file is.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from huren.crypto.aead import FieldCipher, SealError
from huren.store.blob_stream import (
    SEALED,
    STREAM,
    STREAM_HEAD,
    STREAM_HEADER_LEN,
    chunks,
    read_exactly,
    segments,
    stream_ad,
)
from huren.store.blobs import _SHA256_HEX, SYNC_THREADS, BlobStore, log
from huren.store.s3_client import Body, S3Bucket


class S3BlobStore(BlobStore):
    """Blobs in a bucket; ``root`` is only this node's spool for streamed puts (``.incoming``)."""

    def __init__(self, root: Path, bucket: S3Bucket, cipher: FieldCipher | None = None) -> None:
        super().__init__(root, cipher)
        self.bucket = bucket

    def __repr__(self) -> str:
        return f"S3BlobStore({self.bucket.where}, bucket={self.bucket.bucket!r}, prefix={self.bucket.prefix!r})"

    @staticmethod
    def _name(digest: str) -> str:
        if _SHA256_HEX(digest) is None:
            raise ValueError("not a SHA-256 hex digest")
        return f"{digest[:2]}/{digest[2:4]}/{digest}"

    # -- whole blobs (PDFs, kept payloads) ----------------------------------------------------------
    def put(self, data: bytes) -> str:
        """Store ``data`` (idempotent: HEAD first) and return its SHA-256; durable when it returns."""
        digest = hashlib.sha256(data).hexdigest()
        name = self._name(digest)
        if self.bucket.head(name) is None:
            self.bucket.put(name, self.seal(digest, data))
        return digest

    def put_many(self, items: Sequence[bytes]) -> list[str]:
        """Store several blobs as ``put`` does, a few requests at once; all kept when it returns."""
        digests = [hashlib.sha256(d).hexdigest() for d in items]
        todo = dict(zip(digests, items, strict=True))
        if len(todo) <= 1:
            for data in todo.values():
                self.put(data)
            return digests
        with ThreadPoolExecutor(max_workers=min(SYNC_THREADS, len(todo))) as pool:
            list(pool.map(self.put, todo.values()))  # the first failure is raised here
        return digests

    def get(self, digest: str) -> bytes | None:
        try:
            body = self.bucket.get(self._name(digest))
        except ValueError:
            return None
        if body is None:
            return None
        try:
            head = read_exactly(body, STREAM_HEADER_LEN)
            if head.startswith(STREAM):
                parts = self._segments(digest, head, body)
                try:
                    return None if parts is None else b"".join(parts)
                except SealError as exc:
                    log.error("blob %s does not open (%s)", digest, exc)
                    return None
            return self.unseal(digest, head + body.read())
        finally:
            body.close()

    def exists(self, digest: str) -> bool:
        try:
            return self.bucket.head(self._name(digest)) is not None
        except ValueError:
            return False

    def remove(self, digest: str) -> None:
        with contextlib.suppress(ValueError):
            self.bucket.delete(self._name(digest))

    def sync(self, digests: Iterable[str]) -> None:
        """Nothing to do: every object was kept by the server when its PUT was answered."""

    def check(self) -> None:
        self.bucket.check()

    # -- streamed blobs (DICOM instances) -----------------------------------------------------------
    def put_stream(self, source: BinaryIO | Iterable[bytes], *, max_bytes: int | None = None) -> tuple[str, int, bool]:
        """Seal ``source`` into a spool file (never whole in memory), then upload it unless its
        address is taken; (digest, size, new). Durable when it returns. TooLarge past ``max_bytes``."""
        fd, tmp = self._incoming_file()
        try:
            with open(fd, "wb") as out:
                digest, size = self._write_stream(out, chunks(source), max_bytes)
            name = self._name(digest)
            new = self.bucket.head(name) is None
            if new:
                self.bucket.upload(name, tmp)
            return digest, size, new
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def open_stream(self, digest: str) -> Iterator[bytes] | None:
        """The plaintext in chunks, decrypted segment by segment from the GET's body; None when the
        object is missing or does not open. A segment that fails mid-stream raises SealError."""
        try:
            body = self.bucket.get(self._name(digest))
        except ValueError:
            return None
        if body is None:
            return None
        head = read_exactly(body, STREAM_HEADER_LEN)
        if head.startswith(SEALED):
            try:
                data = self.unseal(digest, head + body.read())
            finally:
                body.close()
            return None if data is None else iter([data])
        if not head.startswith(STREAM):  # kept as it is (a store without a data key)
            return _prepend(head, body.chunks())
        parts = self._segments(digest, head, body)
        if parts is None:
            body.close()
        return parts

    def _segments(self, digest: str, head: bytes, body: Body) -> Iterator[bytes] | None:
        opened = self._file_key(digest, head)
        if opened is None:
            return None
        return _closing(segments(body, *opened, digest), body)

    # -- re-encryption (huren keys rotate-data) ------------------------------------------------------
    def digests(self) -> list[str]:
        names = (n.rsplit("/", 1)[-1] for n in self.bucket.names())
        return sorted(n for n in names if _SHA256_HEX(n) is not None)

    def reseal(self, digest: str) -> str:
        """As the local store's: ``sealed``, ``rekeyed``, ``current`` or ``unreadable``; a rekeyed
        object is written anew at its address (S3 has no partial writes)."""
        if self.cipher is None:
            raise ValueError("a store without a data key cannot seal")
        name = self._name(digest)
        body = self.bucket.get(name)
        if body is None:
            return "unreadable"
        try:
            head = read_exactly(body, STREAM_HEADER_LEN)
            if head.startswith(STREAM):
                return self._reseal_object_stream(digest, head, body)
            stored = head + body.read()
        finally:
            body.close()
        data = self.unseal(digest, stored)
        if data is None or hashlib.sha256(data).hexdigest() != digest:
            return "unreadable"
        if not stored.startswith(SEALED):
            outcome = "sealed"
        elif self.cipher.needs_rekey(stored[len(SEALED) :]):
            outcome = "rekeyed"
        else:
            return "current"
        self.bucket.put(name, self.seal(digest, data))
        return outcome

    def _reseal_object_stream(self, digest: str, head: bytes, body: Body) -> str:
        """Check every segment and the digest while copying the object into a spool file, then
        upload it with the file key re-wrapped under the active data key."""
        assert self.cipher is not None
        opened = self._file_key(digest, head)
        if opened is None:
            return "unreadable"
        fd, tmp = self._incoming_file()
        try:
            with open(fd, "w+b") as out:
                out.write(head)
                h = hashlib.sha256()
                try:
                    for chunk in segments(_Tee(body, out), *opened, digest):
                        h.update(chunk)
                except SealError:
                    return "unreadable"
                if h.hexdigest() != digest:
                    return "unreadable"
                envelope = head[STREAM_HEAD.size :]
                if not self.cipher.needs_rekey(envelope):
                    return "current"
                key = self.cipher.open(envelope, stream_ad(digest))
                out.seek(STREAM_HEAD.size)
                out.write(self.cipher.seal(key, stream_ad(digest)))
            self.bucket.upload(self._name(digest), tmp)
            return "rekeyed"
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


class _Tee:
    """A readable that copies what is read from ``src`` into ``out``."""

    def __init__(self, src: Body, out: BinaryIO) -> None:
        self._src, self._out = src, out

    def read(self, n: int = -1, /) -> bytes:
        data = self._src.read(n)
        self._out.write(data)
        return data


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest


def _closing(parts: Iterator[bytes], body: Body) -> Iterator[bytes]:
    try:
        yield from parts
    finally:
        body.close()

