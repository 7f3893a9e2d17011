"""The rules of the signed REST transport that need no server: what is signed, timestamps,
nonces, gzip limits, and the middleware's request target."""

from __future__ import annotations

import gzip
import hashlib
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from huren.api.signing import _target
from huren.context import Clock
from huren.crypto import b64, sm2, sm4
from huren.errors import MalformedBody, TooLarge, Unauthorized
from huren.services.transport import NONCE_RE, TransportService, gunzip, sign_headers, string_to_sign


def test_string_to_sign_layout() -> None:
    body = b'{"a":1}'
    got = string_to_sign("1732240000", "nonce-0123456789ab", "post", "/api/v1/lab-reports?x=1", body)
    want = "1732240000\nnonce-0123456789ab\nPOST\n/api/v1/lab-reports?x=1\n" + hashlib.sha256(body).hexdigest()
    assert got == want.encode()
    empty = string_to_sign("t", "n", "GET", "/p", b"")
    assert empty.endswith(b"\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")


def test_sign_headers_verify_with_gm() -> None:
    key = sm2.generate_key()
    h = sign_headers(key, "PUT", "/api/v1/transport/key", b"x", timestamp="100", nonce="abcdefghijklmnop")
    assert h["X-Huren-Timestamp"] == "100" and h["X-Huren-Nonce"] == "abcdefghijklmnop"
    tbs = string_to_sign("100", "abcdefghijklmnop", "PUT", "/api/v1/transport/key", b"x")
    assert sm2.sm2_verify(key.public, tbs, b64.b64d(h["X-Huren-Signature"]))
    assert not sm2.sm2_verify(key.public, tbs + b"!", b64.b64d(h["X-Huren-Signature"]))
    fresh = sign_headers(key, "GET", "/p", b"")
    assert NONCE_RE.fullmatch(fresh["X-Huren-Nonce"])
    assert fresh["X-Huren-Nonce"] != sign_headers(key, "GET", "/p", b"")["X-Huren-Nonce"]


@pytest.mark.parametrize(
    ("nonce", "ok"),
    [
        ("a" * 15, False),
        ("a" * 16, True),
        ("a" * 64, True),
        ("a" * 65, False),
        ("0f8fad5b-d9cb-469f-a165-70867728950e", True),  # a UUID
        ("q83vEjRWeJA+/w==AAAAAA", True),  # Base64
        ("with space 0123456789", False),
        ("line\nbreak0123456789", False),
        ("中文随机数中文随机数中文随机数中文随", False),
    ],
)
def test_nonce_format(nonce: str, ok: bool) -> None:
    assert bool(NONCE_RE.fullmatch(nonce)) is ok


def _service(tmp_path: Path) -> TransportService:
    return TransportService(None, Clock("Asia/Shanghai"), None, tmp_path)  # type: ignore[arg-type]


def test_timestamp_forms(tmp_path: Path) -> None:
    svc = _service(tmp_path)
    assert svc.parse_timestamp("1732240000") == 1732240000.0
    # the date-time form is the platform's local time (UTC+8 in Asia/Shanghai)
    assert svc.parse_timestamp("2024-11-22 09:46:40") == datetime(2024, 11, 22, 1, 46, 40, tzinfo=UTC).timestamp()
    for bad in ("2024-11-22T09:46:40", "2024-11-22", "1732240000.5", "-5", "", "12345678901234"):
        with pytest.raises(Unauthorized) as info:
            svc.parse_timestamp(bad)
        assert info.value.problems[0].rule == "format"


def test_gunzip_roundtrip_and_members() -> None:
    data = b"hello " * 1000
    assert gunzip(gzip.compress(data), len(data)) == data
    assert gunzip(gzip.compress(b"ab") + gzip.compress(b"cd"), 10) == b"abcd"  # two members
    assert gunzip(gzip.compress(b""), 0) == b""


def test_gunzip_limit_is_exact_and_bounded() -> None:
    data = b"\0" * 100_000
    z = gzip.compress(data)
    assert gunzip(z, 100_000) == data
    with pytest.raises(TooLarge) as info:
        gunzip(z, 99_999)
    assert info.value.status == 413 and info.value.problems[0].rule == "max_size"


def test_gunzip_bomb_stops_early() -> None:
    # 128 MiB of zeros in ~130 KB: refused after inflating just past the 1 MiB limit
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"\0" * (1 << 20)
    bomb = b"".join(z.compress(block) for _ in range(128)) + z.flush()
    with pytest.raises(TooLarge):
        gunzip(bomb, 1 << 20)


@pytest.mark.parametrize("bad", [b"plain text", gzip.compress(b"abc" * 100, mtime=0)[:-10], gzip.compress(b"abc", mtime=0) + b"junk"])
def test_gunzip_malformed(bad: bytes) -> None:
    with pytest.raises(MalformedBody) as info:
        gunzip(bad, 1 << 20)
    assert info.value.problems[0].field == "Content-Encoding"


def test_decrypt_checks_padding() -> None:
    key = bytes(range(16))
    assert TransportService.decrypt(key, sm4.sm4_encrypt(key, b"{}")) == b"{}"
    with pytest.raises(MalformedBody):
        TransportService.decrypt(bytes(16), sm4.sm4_encrypt(key, b"{}"))
    with pytest.raises(MalformedBody):
        TransportService.decrypt(key, b"short")


def test_target_is_raw_path_and_query() -> None:
    scope = {"path": "/api/v1/x y", "raw_path": b"/api/v1/x%20y", "query_string": b"a=1&b=%E4%B8%AD"}
    assert _target(scope) == "/api/v1/x%20y?a=1&b=%E4%B8%AD"
    assert _target({"path": "/api/v1/x", "query_string": b""}) == "/api/v1/x"
