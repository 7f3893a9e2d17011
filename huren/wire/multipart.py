"""multipart/related (RFC 2387) as DICOMweb uses it (PS3.18 §8.7): a streaming writer for WADO-RS
answers and a bounded, incremental reader for STOW-RS requests.

The reader never holds a whole part in memory: :class:`RelatedReader` is fed the request body
chunk by chunk and writes each part's body to a file of its own (made by the caller's ``sink``
factory), handing back every part as it completes, so the caller can store one instance while
the next is still arriving. Bounds: the size of one part (a larger one is skipped
and flagged ``oversize``, so the others can still be stored), the number of parts, the size of a
part's header block; a body that ends before the closing delimiter is refused.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from huren.errors import InvalidInput, Problem

CRLF = b"\r\n"
#: the longest header block of one part (Content-Type, Content-Location, Content-Length, …)
MAX_PART_HEADER_BYTES = 16 * 1024
#: a boundary is 1-70 characters (RFC 2046 §5.1.1)
MAX_BOUNDARY = 70


def new_boundary() -> str:
    """A boundary that cannot occur by chance in the parts (128 random bits)."""
    return "huren-" + secrets.token_hex(16)


def parse_content_type(value: str) -> tuple[str, dict[str, str]]:
    """``type/subtype; a=b; c="d"`` → ("type/subtype", {"a": "b", "c": "d"}); names lower-cased,
    quotes removed (a quoted value may hold ';')."""
    media, _, rest = value.partition(";")
    params: dict[str, str] = {}
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in " \t;":
            i += 1
        start = i
        while i < n and rest[i] not in "=;":
            i += 1
        name = rest[start:i].strip().lower()
        val = ""
        if i < n and rest[i] == "=":
            i += 1
            while i < n and rest[i] in " \t":
                i += 1
            if i < n and rest[i] == '"':
                i += 1
                buf = []
                while i < n and rest[i] != '"':
                    if rest[i] == "\\" and i + 1 < n:
                        i += 1
                    buf.append(rest[i])
                    i += 1
                i += 1
                val = "".join(buf)
            else:
                start = i
                while i < n and rest[i] != ";":
                    i += 1
                val = rest[start:i].strip()
        if name:
            params[name] = val
    return media.strip().lower(), params


def related_content_type(part_type: str, boundary: str, **params: str) -> str:
    """The Content-Type of a multipart/related answer whose root parts are ``part_type``."""
    extra = "".join(f"; {k.replace('_', '-')}={v}" for k, v in params.items())
    return f'multipart/related; type="{part_type}"; boundary={boundary}{extra}'


def write_related(
    parts: Iterable[tuple[dict[str, str], Iterable[bytes]]], boundary: str
) -> Iterator[bytes]:
    """The body of a multipart/related message, part after part, as each part's chunks come
    (nothing buffered beyond one chunk). ``parts``: (headers, chunks) pairs."""
    delimiter = f"--{boundary}".encode("ascii")
    for headers, chunks in parts:
        head = b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in headers.items())
        yield delimiter + CRLF + head + CRLF
        yield from chunks
        yield CRLF
    yield delimiter + b"--" + CRLF


@dataclass(slots=True)
class Part:
    """One received part: its headers (names lower-cased), where its body was written, its size."""

    headers: dict[str, str]
    path: Path
    size: int = 0
    #: the body went over ``max_part_bytes``: what came was discarded, the file is empty
    oversize: bool = False

    @property
    def content_type(self) -> str:
        return parse_content_type(self.headers.get("content-type", ""))[0]


@dataclass(slots=True)
class _Open:
    part: Part
    file: BinaryIO


def _bad(message: str) -> InvalidInput:
    return InvalidInput(message, [Problem("body", "multipart", message)])


class RelatedReader:
    """Incremental multipart/related parser writing each part to its own file.

    ``sink()`` returns (path, open binary file) for the next part's body; the reader closes the
    file when the part ends. ``feed`` returns the parts completed by that chunk; ``finish``
    checks that the closing delimiter came. On any refusal the parts' files already made are
    the caller's to remove (``paths``).
    """

    def __init__(
        self,
        boundary: str,
        sink: Callable[[], tuple[Path, BinaryIO]],
        *,
        max_part_bytes: int,
        max_parts: int = 10_000,
    ) -> None:
        if not boundary or len(boundary) > MAX_BOUNDARY:
            raise _bad("multipart/related 的 boundary 参数缺失或超过70个字符")
        self.delimiter = CRLF + b"--" + boundary.encode("latin-1")
        self.sink = sink
        self.max_part_bytes = max_part_bytes
        self.max_parts = max_parts
        self.paths: list[Path] = []
        self.count = 0
        self.done = False
        self._buf = bytearray(CRLF)  # so the first delimiter, at offset 0, reads like the others
        self._state = "preamble"  # preamble → after_delim → headers → body → after_delim … → epilogue
        self._open: _Open | None = None

    def feed(self, data: bytes) -> list[Part]:
        if self.done:
            return []  # the epilogue is ignored (RFC 2046)
        self._buf += data
        completed: list[Part] = []
        while True:
            if self._state in ("preamble", "body"):
                at = self._buf.find(self.delimiter)
                if at < 0:
                    keep = len(self.delimiter) - 1
                    if len(self._buf) > keep:
                        self._consume(len(self._buf) - keep)
                    return completed
                self._consume(at)
                del self._buf[: len(self.delimiter)]
                if self._state == "body":
                    completed.append(self._close_part())
                self._state = "after_delim"
            if self._state == "after_delim":
                if len(self._buf) < 2:
                    return completed
                if self._buf[:2] == b"--":
                    self.done = True
                    self._buf.clear()
                    return completed
                eol = self._buf.find(CRLF)
                if eol < 0:
                    if len(self._buf) > 256:
                        raise _bad("multipart/related 分隔行后应为换行")
                    return completed
                if self._buf[:eol].strip(b" \t"):
                    raise _bad("multipart/related 分隔行后含有多余字符")
                del self._buf[: eol + 2]
                self._state = "headers"
            if self._state == "headers":
                end = self._buf.find(CRLF + CRLF) if not self._buf.startswith(CRLF) else -2
                if end == -1:
                    if len(self._buf) > MAX_PART_HEADER_BYTES:
                        raise _bad(f"multipart/related 部件头超过 {MAX_PART_HEADER_BYTES} 字节")
                    return completed
                raw = b"" if end == -2 else bytes(self._buf[:end])
                del self._buf[: (2 if end == -2 else end + 4)]
                self._begin_part(raw)
                self._state = "body"

    def finish(self) -> None:
        if not self.done:
            self.close()
            raise _bad("multipart/related 请求体不完整：缺少结束分隔符")

    def close(self) -> None:
        """Close the file of a part still open (after a refusal)."""
        if self._open is not None:
            self._open.file.close()
            self._open = None

    def _consume(self, n: int) -> None:
        if n <= 0:
            return
        if self._state == "body" and self._open is not None:
            part = self._open.part
            if not part.oversize and part.size + n > self.max_part_bytes:
                part.oversize = True  # the rest of this part is skipped; the caller refuses it alone
                self._open.file.truncate(0)
            if not part.oversize:
                self._open.file.write(self._buf[:n])
            part.size += n
        del self._buf[:n]

    def _begin_part(self, raw: bytes) -> None:
        self.count += 1
        if self.count > self.max_parts:
            raise _bad(f"一个请求最多 {self.max_parts} 个部件")
        headers: dict[str, str] = {}
        for line in raw.split(CRLF):
            if not line:
                continue
            name, sep, value = line.partition(b":")
            if not sep or not name.strip():
                raise _bad("multipart/related 部件头格式无效")
            headers[name.strip().decode("latin-1").lower()] = value.strip().decode("latin-1")
        path, file = self.sink()
        self.paths.append(path)
        self._open = _Open(Part(headers, path), file)

    def _close_part(self) -> Part:
        assert self._open is not None
        self._open.file.close()
        part = self._open.part
        self._open = None
        return part
