"""multipart/related: the writer's framing, the incremental reader on any chunking, its bounds."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import BinaryIO

import pytest

from huren.errors import InvalidInput
from huren.wire.multipart import (
    RelatedReader,
    new_boundary,
    parse_content_type,
    related_content_type,
    write_related,
)


class Sink:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.n = 0

    def __call__(self) -> tuple[Path, BinaryIO]:
        self.n += 1
        path = self.root / f"p{self.n}"
        return path, open(path, "wb")  # the reader closes it


def _read(body: bytes, boundary: str, tmp: Path, step: int, max_part: int = 1 << 20) -> list[tuple[dict[str, str], bytes, bool]]:
    rr = RelatedReader(boundary, Sink(tmp), max_part_bytes=max_part)
    parts = []
    for i in range(0, len(body), step):
        parts.extend(rr.feed(body[i:i + step]))
    rr.finish()
    return [(p.headers, p.path.read_bytes(), p.oversize) for p in parts]


BODIES = [b"", b"\r\n", b"--", b"x" * 1000, os.urandom(5000), b"\r\n--not-the-boundary\r\n" * 3]


@pytest.mark.parametrize("step", [1, 2, 3, 7, 64, 100_000])
def test_round_trip_any_chunking(tmp_path: Path, step: int) -> None:
    boundary = new_boundary()
    parts = [({"Content-Type": "application/dicom"}, [b[: len(b) // 2], b[len(b) // 2:]]) for b in BODIES]
    body = b"".join(write_related(parts, boundary))
    got = _read(body, boundary, tmp_path, step)
    assert [g[1] for g in got] == BODIES
    assert all(g[0] == {"content-type": "application/dicom"} for g in got)


def test_reads_dicomweb_client_framing(tmp_path: Path) -> None:
    """dicomweb-client starts the body with CRLF before the first delimiter and quotes the boundary."""
    boundary = "0f3cf5c0-70e0-41ef-baef-c6f9f65ec3e1"
    body = (f"\r\n--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").encode() + b"ONE" + (
        f"\r\n--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").encode() + b"TWO" + f"\r\n--{boundary}--".encode()
    got = _read(body, boundary, tmp_path, 5)
    assert [g[1] for g in got] == [b"ONE", b"TWO"]


def test_epilogue_and_preamble_ignored(tmp_path: Path) -> None:
    b = "b1"
    body = b"preamble text\r\n--b1\r\n\r\nbody\r\n--b1--\r\nepilogue"
    assert [g[1] for g in _read(body, b, tmp_path, 4)] == [b"body"]


def test_truncated_body_refused(tmp_path: Path) -> None:
    boundary = "b2"
    body = b"--b2\r\nContent-Type: application/dicom\r\n\r\npartial data"
    with pytest.raises(InvalidInput, match="不完整"):
        _read(body, boundary, tmp_path, 10)


def test_bad_header_line_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="部件头"):
        _read(b"--b3\r\nno colon here\r\n\r\nx\r\n--b3--", "b3", tmp_path, 100)


def test_header_block_bounded(tmp_path: Path) -> None:
    body = b"--b4\r\nX: " + b"a" * 20_000
    rr = RelatedReader("b4", Sink(tmp_path), max_part_bytes=100)
    with pytest.raises(InvalidInput, match="部件头超过"):
        rr.feed(body)


def test_oversize_part_flagged_and_skipped(tmp_path: Path) -> None:
    boundary = "b5"
    parts = [({}, [b"a" * 50]), ({}, [b"b" * 500]), ({}, [b"c" * 10])]
    body = b"".join(write_related(parts, boundary))
    got = _read(body, boundary, tmp_path, 13, max_part=100)
    assert [(g[1], g[2]) for g in got] == [(b"a" * 50, False), (b"", True), (b"c" * 10, False)]


def test_part_count_bounded(tmp_path: Path) -> None:
    body = b"".join(write_related([({}, [b"x"])] * 5, "b6"))
    rr = RelatedReader("b6", Sink(tmp_path), max_part_bytes=10, max_parts=3)
    with pytest.raises(InvalidInput, match="最多 3 个部件"):
        rr.feed(body)
    rr.close()


def test_boundary_required() -> None:
    with pytest.raises(InvalidInput):
        RelatedReader("", lambda: (Path("x"), io.BytesIO()), max_part_bytes=1)


def test_content_type_parsing() -> None:
    media, params = parse_content_type('Multipart/Related; type="application/dicom"; boundary="a;b"; start=x')
    assert media == "multipart/related"
    assert params == {"type": "application/dicom", "boundary": "a;b", "start": "x"}
    assert parse_content_type("multipart/related; type=application/octet-stream; transfer-syntax=*")[1] == {
        "type": "application/octet-stream", "transfer-syntax": "*"}
    ct = related_content_type("application/dicom", "bb")
    assert parse_content_type(ct) == ("multipart/related", {"type": "application/dicom", "boundary": "bb"})
