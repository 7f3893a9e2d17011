"""The formats of blob files, shared by every blob backend (the directory of ``huren.store.blobs``,
the bucket of ``huren.store.blobs_s3``), so a file copied between them opens the same.

**Whole blobs** (PDFs, kept payloads; issue 10 §1.8): given the keyring's field cipher, a file
holds ``HRNB`` and an SM4-GCM envelope (``huren.crypto.aead``) of the bytes, bound to the blob's
address (a sealed file moved to another address does not open). A file without the mark (written
before blobs were sealed) is read as it is; a sealed file that does not open is logged and read as
missing (never a 500).

**Streamed blobs** (DICOM instances, issue 12): ``HRNS | version (1) | segment size (4) | envelope
length (2) | envelope`` and then the segments. The envelope is the field cipher's seal (SM4-GCM) of
a random 32-byte file key, bound to the blob's address; the content is cut into 64 KiB segments,
each sealed with AES-256-GCM under the file key, its 12-byte nonce the segment's index (8 bytes)
and a final flag (4 bytes: 1 on the last segment only), so a reordered, dropped, truncated or
appended segment does not open. Written from chunks and read back from a file or any readable
(an S3 object's body), never whole in memory.
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from huren.crypto.aead import HEADER_LEN, TAG_LEN, FieldCipher, SealError, column_ad
from huren.errors import Problem, TooLarge

log = logging.getLogger("huren.store")

STREAM = b"HRNS"  # a streamed sealed blob begins with these bytes (segmented AEAD: huren.store.blobs)
STREAM_VERSION = 1
SEGMENT = 64 * 1024
STREAM_HEAD = struct.Struct(">4sBIH")  # magic, version, segment size, envelope length
FILE_KEY = 32
ENVELOPE_LEN = HEADER_LEN + FILE_KEY + TAG_LEN
STREAM_HEADER_LEN = STREAM_HEAD.size + ENVELOPE_LEN
SEGMENT_AD = b"huren/blob-stream/v1"
READ_CHUNK = 1024 * 1024  # plaintext chunks of an unsealed / whole-file blob as streamed out


SEALED = b"HRNB"  # a sealed whole blob begins with these bytes, then the envelope


def seal_blob(cipher: FieldCipher | None, digest: str, data: bytes) -> bytes:
    """The bytes kept for ``data`` at ``digest`` (sealed when there is a cipher)."""
    if cipher is None:
        return data
    return SEALED + cipher.seal(data, column_ad("blob", "content", digest))


def unseal_blob(cipher: FieldCipher | None, digest: str, stored: bytes) -> bytes | None:
    """The plaintext of a stored whole blob; None (logged) for a sealed one that does not open."""
    if not stored.startswith(SEALED):
        return stored  # written before blobs were sealed
    if cipher is None:
        log.error("blob %s is sealed but the store has no data key", digest)
        return None
    try:
        return cipher.open(stored[len(SEALED) :], column_ad("blob", "content", digest))
    except SealError as exc:
        log.error("blob %s does not open (%s): damaged, moved or sealed under an unknown key", digest, exc)
        return None


def too_large(limit: int) -> TooLarge:
    msg = f"文件超过允许的大小（最大 {limit} 字节）"
    return TooLarge(msg, [Problem("file", "size", msg)])


def nonce(index: int, final: bool) -> bytes:
    return struct.pack(">QI", index, 1 if final else 0)


def chunks(source: BinaryIO | Iterable[bytes]) -> Iterator[bytes]:
    read = getattr(source, "read", None)
    if read is None:
        yield from source
        return
    while True:
        chunk = read(READ_CHUNK)
        if not chunk:
            return
        yield chunk


def read_file(path: Path, offset: int) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        fh.seek(offset)
        while chunk := fh.read(READ_CHUNK):
            yield chunk


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


def open_segments(path: Path, aead: AESGCM, segment: int) -> Iterator[bytes]:
    """The plaintext segments of a streamed file (its header already checked)."""
    with open(path, "rb") as fh:
        fh.seek(STREAM_HEADER_LEN)
        yield from segments(fh, aead, segment, path.name)


def segments(fh: Readable, aead: AESGCM, segment: int, name: str) -> Iterator[bytes]:
    """The plaintext segments read from ``fh``, positioned just past the header."""
    size = segment + TAG_LEN
    index = 0
    current = read_exactly(fh, size)
    while True:
        following = read_exactly(fh, size) if len(current) == size else b""
        final = not following
        try:
            yield aead.decrypt(nonce(index, final), current, SEGMENT_AD)
        except InvalidTag:
            raise SealError(f"{name}: segment {index} does not open (damaged, truncated or reordered)") from None
        if final:
            return
        current, index = following, index + 1


def read_exactly(fh: Readable, n: int) -> bytes:
    """``n`` bytes of ``fh``, fewer only at its end (a network body may answer short reads)."""
    data = fh.read(n)
    if len(data) in (0, n):
        return data
    parts = [data]
    got = len(data)
    while got < n:
        more = fh.read(n - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def stream_ad(digest: str) -> bytes:
    return column_ad("blob", "stream", digest)


def write_stream(out: BinaryIO, chunks: Iterator[bytes], max_bytes: int | None, cipher: FieldCipher | None) -> tuple[str, int]:
    """Write ``chunks`` to ``out`` (a seekable file) in the streamed format — or as they are when
    there is no cipher — and return their SHA-256 and size. TooLarge past ``max_bytes``."""
    h = hashlib.sha256()
    size = 0
    if cipher is None:  # a store without a data key keeps the bytes as they are
        for chunk in chunks:
            size += len(chunk)
            if max_bytes is not None and size > max_bytes:
                raise too_large(max_bytes)
            h.update(chunk)
            out.write(chunk)
        return h.hexdigest(), size
    file_key = os.urandom(FILE_KEY)
    aead = AESGCM(file_key)
    # the header names the digest: a placeholder first, rewritten once it is known — unless the
    # content is one segment (most instances), then header and segment go out in one write
    started = False
    buf = bytearray()
    pending: bytes | None = None
    index = 0
    for chunk in chunks:
        size += len(chunk)
        if max_bytes is not None and size > max_bytes:
            raise too_large(max_bytes)
        h.update(chunk)
        buf += chunk
        while len(buf) >= SEGMENT:
            if pending is not None:
                if not started:
                    out.write(b"\0" * STREAM_HEADER_LEN)
                    started = True
                out.write(aead.encrypt(nonce(index, False), pending, SEGMENT_AD))
                index += 1
            pending = bytes(buf[:SEGMENT])
            del buf[:SEGMENT]
    if pending is not None:
        if buf:
            if not started:
                out.write(b"\0" * STREAM_HEADER_LEN)
                started = True
            out.write(aead.encrypt(nonce(index, False), pending, SEGMENT_AD))
            index += 1
            pending = bytes(buf)
    else:
        pending = bytes(buf)
    last = aead.encrypt(nonce(index, True), pending, SEGMENT_AD)
    digest = h.hexdigest()
    envelope = cipher.seal(file_key, stream_ad(digest))
    head = STREAM_HEAD.pack(STREAM, STREAM_VERSION, SEGMENT, len(envelope)) + envelope
    if not started:
        out.write(head + last)
    else:
        out.write(last)
        out.seek(0)
        out.write(head)
    return digest, size


def file_key(cipher: FieldCipher | None, digest: str, head: bytes) -> tuple[AESGCM, int] | None:
    """The segment cipher and segment size of a streamed blob's header; None (logged) when it does not open."""
    try:
        magic, version, segment, n = STREAM_HEAD.unpack_from(head)
    except struct.error:
        log.error("blob %s: truncated stream header", digest)
        return None
    if magic != STREAM or version != STREAM_VERSION or n != ENVELOPE_LEN or not 0 < segment <= 2**24:
        log.error("blob %s: unknown stream header", digest)
        return None
    if cipher is None:
        log.error("blob %s is sealed but the store has no data key", digest)
        return None
    try:
        key = cipher.open(head[STREAM_HEAD.size : STREAM_HEADER_LEN], stream_ad(digest))
    except SealError as exc:
        log.error("blob %s does not open (%s): damaged, moved or sealed under an unknown key", digest, exc)
        return None
    return AESGCM(key), int(segment)
