"""The one signed-claims codec (huren.crypto.tokens): purposes, expiry, canonical encoding only."""

from __future__ import annotations

import pytest

from huren.crypto import b64url
from huren.crypto.tokens import MAX_LENGTH, Signer, derive_key

SECRET = b"s" * 32


class Now:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


def _flip_unused_bits(text: str) -> str:
    """The same bytes in a non-canonical spelling: the last character's unused low bits set."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    unused = {2: 4, 3: 2}[len(text) % 4]  # 1 or 2 trailing bytes leave 4 or 2 bits unused
    last = alphabet.index(text[-1])
    assert last % (1 << unused) == 0
    return text[:-1] + alphabet[last + 1]


def test_round_trip_and_expiry() -> None:
    now = Now()
    s = Signer(SECRET, "access-token", now)
    v = s.sign({"o": "457759922", "u": "his", "名": "第一"}, 60)
    got = s.open(v)
    assert got is not None and got.claims == {"o": "457759922", "u": "his", "名": "第一"} and not got.expired
    assert got.expires == int(now.t) + 60
    now.t += 59.9
    assert s.verify(v) == got.claims
    now.t += 0.1
    opened = s.open(v)
    assert opened is not None and opened.expired and s.verify(v) is None


def test_purposes_never_open_each_other() -> None:
    now = Now()
    token, session, link = (Signer(SECRET, p, now) for p in ("access-token", "web-session", "report-link"))
    v = token.sign({"o": "x"}, 60)
    assert token.open(v) is not None
    assert session.open(v) is None and link.open(v) is None
    assert len({derive_key(SECRET, p) for p in ("access-token", "web-session", "report-link", "imaging-key")}) == 4
    assert Signer(b"t" * 32, "access-token", now).open(v) is None


def test_padded_and_non_canonical_signatures_refused() -> None:
    """§1.14: ``<body>.<mac>=`` and a MAC spelled with non-zero unused bits decode to the same
    bytes under a lenient decoder (the old codecs accepted both); the codec refuses them."""
    s = Signer(SECRET, "access-token", Now())
    v = s.sign({"o": "457759922"}, 60)
    body, mac = v.split(".")
    assert b64url.decode(mac + "=") == b64url.decode(mac) == b64url.decode(_flip_unused_bits(mac))
    for bad in (
        f"{body}.{mac}=",
        f"{body}.{mac}==",
        f"{body}.{_flip_unused_bits(mac)}",
        f"{body}=.{mac}" if len(body) % 4 else f"{body}====.{mac}",
        f"{_flip_unused_bits(body) if len(body) % 4 in (2, 3) else body + '='}.{mac}",
        f"{body}.{mac[:-1]}",
        f"{body}.{mac}A",
        f"{body}.{mac.replace(mac[0], '+', 1)}",
        f" {body}.{mac}",
        f"{body}.{mac}.{mac}",
        f"{body}{mac}",
        "",
        ".",
    ):
        assert s.open(bad) is None, bad
    assert s.open(v) is not None


def test_tampered_or_odd_claims_refused() -> None:
    now = Now()
    s = Signer(SECRET, "p", now)
    _body, mac = s.sign({"r": "doctor"}, 60).split(".")
    forged = b64url.encode(b'{"e":9999999999,"r":"supervisor"}')
    assert s.open(f"{forged}.{mac}") is None
    # a valid MAC over something that is not an object with an integer expiry
    for raw in (b"[1,2]", b'{"r":"x"}', b'{"e":"9999999999"}', b'{"e":1.5e10}', b"not json"):
        b = b64url.encode(raw)
        assert s.open(f"{b}.{b64url.encode(s._mac(b))}") is None, raw
    assert s.open("A" * (MAX_LENGTH + 1)) is None
    with pytest.raises(ValueError):
        s.sign({"e": 1}, 60)
    with pytest.raises(ValueError):
        s.sign({}, 0)
    with pytest.raises(ValueError):
        Signer(b"short", "p", now)
