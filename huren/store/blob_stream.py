"""The streamed blob format of ``huren.store.blobs`` (DICOM instances): its header, its segments'
nonces, and reading them back (see ``BlobStore``'s docstring for the layout)."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from huren.crypto.aead import HEADER_LEN, TAG_LEN, SealError
from huren.errors import Problem, TooLarge

STREAM = b"HRNS"  # a streamed sealed blob begins with these bytes (segmented AEAD: huren.store.blobs)
STREAM_VERSION = 1
SEGMENT = 64 * 1024
STREAM_HEAD = struct.Struct(">4sBIH")  # magic, version, segment size, envelope length
FILE_KEY = 32
ENVELOPE_LEN = HEADER_LEN + FILE_KEY + TAG_LEN
STREAM_HEADER_LEN = STREAM_HEAD.size + ENVELOPE_LEN
SEGMENT_AD = b"huren/blob-stream/v1"
READ_CHUNK = 1024 * 1024  # plaintext chunks of an unsealed / whole-file blob as streamed out


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


def open_segments(path: Path, aead: AESGCM, segment: int) -> Iterator[bytes]:
    """The plaintext segments of a streamed file (its header already checked)."""
    size = segment + TAG_LEN
    with open(path, "rb") as fh:
        fh.seek(STREAM_HEADER_LEN)
        index = 0
        current = fh.read(size)
        while True:
            following = fh.read(size) if len(current) == size else b""
            final = not following
            try:
                yield aead.decrypt(nonce(index, final), current, SEGMENT_AD)
            except InvalidTag:
                raise SealError(f"{path.name}: segment {index} does not open (damaged, truncated or reordered)") from None
            if final:
                return
            current, index = following, index + 1
