"""huren.crypto's GM rooms (sm4, b64, sm2, sm3, envelope, keyfiles): SM4 (GB/T 32907 vector, padding),
Base64, SM2 formats, tampering, keys, signatures, the strKey unwrapper and its cache, key files."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes

from huren.crypto import asn1, b64, keyfiles, sm2, sm4
from huren.crypto.envelope import KeyUnwrapper
from huren.crypto.errors import GmError
from huren.crypto.sm2 import Sm2Key
from huren.crypto.sm3 import sm3

VECTOR_KEY = bytes.fromhex("0123456789abcdeffedcba9876543210")
VECTOR_CT = bytes.fromhex("681edf34d206965e86b3e94f536e4246")


@pytest.fixture(scope="module")
def key() -> Sm2Key:
    return sm2.generate_key()


@pytest.fixture(scope="module")
def other() -> Sm2Key:
    return sm2.generate_key()


# ------------------------------------------------------------------------------------ SM4


def test_sm4_gbt32907_vector_one_raw_block() -> None:
    assert sm4._sm4_ecb(VECTOR_KEY, VECTOR_KEY, encrypt=True) == VECTOR_CT
    assert sm4._sm4_ecb(VECTOR_KEY, VECTOR_CT, encrypt=False) == VECTOR_KEY


def test_sm4_padded_vector_is_the_block_plus_a_full_pad_block() -> None:
    ct = sm4.sm4_encrypt(VECTOR_KEY, VECTOR_KEY)
    assert len(ct) == 32 and ct[:16] == VECTOR_CT
    assert sm4._sm4_ecb(VECTOR_KEY, ct[16:], encrypt=False) == bytes([16]) * 16


@pytest.mark.parametrize("n", [0, 1, 15, 16, 17, 31, 32, 33, 1000])
def test_sm4_round_trip(n: int) -> None:
    data = bytes(range(256)) * 4
    ct = sm4.sm4_encrypt(VECTOR_KEY, data[:n])
    assert len(ct) == (n // 16 + 1) * 16
    assert sm4.sm4_decrypt(VECTOR_KEY, ct) == data[:n]


def test_sm4_chinese_xml_round_trip() -> None:
    xml = '<root><org code="457759922">第一人民医院</org></root>'.encode()
    assert sm4.sm4_decrypt(VECTOR_KEY, sm4.sm4_encrypt(VECTOR_KEY, xml)) == xml


def _raw(last_block: bytes) -> bytes:
    return sm4._sm4_ecb(VECTOR_KEY, b"A" * 16 + last_block, encrypt=True)


@pytest.mark.parametrize(
    "last",
    [
        b"B" * 15 + b"\x00",  # pad byte 0
        b"B" * 15 + b"\x11",  # pad byte 17 > block size
        b"B" * 15 + b"\xff",
        b"B" * 13 + b"\x01\x02\x03",  # says 3, the others differ
        b"B" * 12 + b"\x04\x03\x04\x04",
    ],
)
def test_sm4_bad_padding_rejected(last: bytes) -> None:
    with pytest.raises(GmError, match="padding"):
        sm4.sm4_decrypt(VECTOR_KEY, _raw(last))


def test_sm4_good_padding_edge_cases_accepted() -> None:
    assert sm4.sm4_decrypt(VECTOR_KEY, _raw(b"B" * 15 + b"\x01")) == b"A" * 16 + b"B" * 15
    assert sm4.sm4_decrypt(VECTOR_KEY, _raw(b"\x10" * 16)) == b"A" * 16


@pytest.mark.parametrize("n", [0, 1, 15, 17, 33])
def test_sm4_ciphertext_length_checked(n: int) -> None:
    with pytest.raises(GmError, match="multiple of 16"):
        sm4.sm4_decrypt(VECTOR_KEY, b"\x00" * n)


@pytest.mark.parametrize("n", [0, 15, 17, 24, 32])
def test_sm4_key_length_checked(n: int) -> None:
    with pytest.raises(GmError, match="16 bytes"):
        sm4.sm4_encrypt(b"k" * n, b"data")
    with pytest.raises(GmError, match="16 bytes"):
        sm4.sm4_decrypt(b"k" * n, b"\x00" * 16)


def _pkcs7_ok(block: bytes) -> bool:
    n = block[-1]
    return 1 <= n <= 16 and block[-n:] == bytes([n]) * n


def test_sm4_wrong_key_fails_or_garbles() -> None:
    """A wrong key: the padding check refuses it (most keys), or, where the garbled last block
    happens to end in valid padding, the answer is that garbage, never the plaintext. Wrong keys
    are tried until both cases have been seen, each checked against the raw SM4 decryption."""
    plain = b"secret report"
    ct = sm4.sm4_encrypt(VECTOR_KEY, plain)
    assert sm4.sm4_decrypt(VECTOR_KEY, ct) == plain  # the right key decrypts
    refused = garbled = 0
    for i in range(1, 5000):
        key = i.to_bytes(16, "big")
        raw = sm4._sm4_ecb(key, ct, encrypt=False)
        if _pkcs7_ok(raw):
            out = sm4.sm4_decrypt(key, ct)
            assert out == raw[: -raw[-1]] and out != plain
            garbled += 1
        else:
            with pytest.raises(GmError, match="bad padding"):
                sm4.sm4_decrypt(key, ct)
            refused += 1
        if garbled and refused > 100:
            break
    assert garbled >= 1 and refused > 100, (garbled, refused)


# --------------------------------------------------------------------------------- Base64


def test_b64_round_trip_and_whitespace() -> None:
    data = bytes(range(256))
    text = b64.b64e(data)
    assert "\n" not in text
    assert b64.b64d(text) == data
    folded = "\r\n".join(text[i : i + 76] for i in range(0, len(text), 76)) + "\n "
    assert b64.b64d(folded) == data


@pytest.mark.parametrize("bad", ["abc", "ab!=", "YWJj\x00", "YWJ=j", "测试", "YQ", "-_-_"])
def test_b64_strict(bad: str) -> None:
    with pytest.raises(GmError, match="Base64"):
        b64.b64d(bad)


# ------------------------------------------------------------------------------------- SM3


def test_sm3_standard_vector_and_cryptography_agree() -> None:
    assert sm3(b"abc").hex() == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    data = b"abcd" * 16
    h = hashes.Hash(hashes.SM3())
    h.update(data)
    assert sm3(data) == h.finalize()
    assert sm3(data).hex() == "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"


# ------------------------------------------------------------------------------------- SM2


def test_public_hex_is_uncompressed_point(key: Sm2Key) -> None:
    h = key.public_hex
    assert len(h) == 130 and h.startswith("04") and int(h, 16)
    assert sm2.load_public(h) == key.public
    assert sm2.load_public(h[2:]) == key.public
    assert sm2.load_public(bytes.fromhex(h)) == key.public
    assert "private" not in repr(key) and key.private.hex() not in repr(key)


@pytest.mark.parametrize("order", ["C1C3C2", "C1C2C3"])
@pytest.mark.parametrize("prefix", [True, False])
def test_sm2_raw_round_trip(key: Sm2Key, order: sm2.CipherOrder, prefix: bool) -> None:
    pt = b"0123456789abcdef"
    ct = sm2.sm2_encrypt(key.public, pt, order, prefix)
    assert len(ct) == (65 if prefix else 64) + 32 + 16
    assert (ct[0] == 4) or not prefix
    assert sm2.sm2_decrypt(key, ct, order) == pt


def test_sm2_raw_layouts_are_what_they_claim(key: Sm2Key) -> None:
    pt = bytes(16)
    ct = sm2.sm2_encrypt(key.public, pt)  # 04 x y C3 C2
    c1, c3, c2 = ct[:65], ct[65:97], ct[97:]
    assert sm2.sm2_decrypt(key, c1 + c2 + c3, "C1C2C3") == pt
    assert sm2.sm2_decrypt(key, c1[1:] + c3 + c2) == pt
    # C3 = SM3(x2 ‖ M ‖ y2) cannot be checked without x2, y2, but its place is: swap and it fails
    with pytest.raises(GmError):
        sm2.sm2_decrypt(key, c1 + c2 + c3, "C1C3C2")
    with pytest.raises(GmError):
        sm2.sm2_decrypt(key, ct, "C1C2C3")


def test_sm2_compressed_c1_accepted(key: Sm2Key) -> None:
    pt = b"k" * 16
    ct = sm2.sm2_encrypt(key.public, pt)
    x, y = ct[1:33], ct[33:65]
    compressed = bytes([2 + (y[-1] & 1)]) + x
    assert sm2.sm2_decrypt(key, compressed + ct[65:]) == pt


def test_sm2_der_round_trip_and_structure(key: Sm2Key) -> None:
    pt = b"0123456789abcdef"
    ct = sm2.sm2_encrypt(key.public, pt, der=True)
    items = asn1.der_items(ct)
    assert [t for t, _ in items] == [0x02, 0x02, 0x04, 0x04]
    assert len(items[2][1]) == 32 and len(items[3][1]) == 16
    assert sm2.sm2_decrypt(key, ct) == pt
    assert sm2.sm2_decrypt(key, ct, "C1C2C3") == pt  # DER is labelled, the order setting does not matter


def test_sm2_non_canonical_der_integers_accepted(key: Sm2Key) -> None:
    """Some encoders write x and y as fixed 33-byte integers; the reader must not care."""
    pt = b"z" * 16
    ct = sm2.sm2_encrypt(key.public, pt)
    x, y, c3, c2 = ct[1:33], ct[33:65], ct[65:97], ct[97:]
    padded = asn1.der(
        0x30, asn1.der(0x02, b"\x00" + x) + asn1.der(0x02, b"\x00" + y) + asn1.der(0x04, c3) + asn1.der(0x04, c2)
    )
    assert sm2.sm2_decrypt(key, padded) == pt


def test_sm2_many_round_trips_cover_short_coordinates(key: Sm2Key) -> None:
    """x or y of C1 starts with a zero byte once in 128: the DER integers are then shorter."""
    seen_short = 0
    for i in range(600):
        pt = i.to_bytes(2, "big") * 8
        der = sm2.sm2_encrypt(key.public, pt, der=True)
        raw = sm2.sm2_encrypt(key.public, pt, prefix=False)
        seen_short += raw[0] == 0 or raw[32] == 0
        assert sm2.sm2_decrypt(key, der) == pt
        assert sm2.sm2_decrypt(key, raw) == pt
    assert seen_short  # (1 - 1/128)^1200 ≈ 1e-4: essentially always true


def test_sm2_encryption_is_randomised(key: Sm2Key) -> None:
    a = sm2.sm2_encrypt(key.public, b"same plaintext!!")
    b = sm2.sm2_encrypt(key.public, b"same plaintext!!")
    assert a[:65] != b[:65] and a[97:] != b[97:]


@pytest.mark.parametrize("where", ["c3", "c2", "c1x", "c1y"])
@pytest.mark.parametrize("der", [False, True])
def test_sm2_tampered_ciphertext_rejected(key: Sm2Key, where: str, der: bool) -> None:
    ct = bytearray(sm2.sm2_encrypt(key.public, b"0123456789abcdef"))
    pos = {"c3": 70, "c2": 100, "c1x": 5, "c1y": 50}[where]
    ct[pos] ^= 0x01
    data = bytes(ct)
    if der:
        data = sm2._ct_der(int.from_bytes(data[1:33], "big"), int.from_bytes(data[33:65], "big"), data[65:97], data[97:])
    with pytest.raises(GmError, match="decryption failed"):
        sm2.sm2_decrypt(key, data)


def test_sm2_wrong_key_rejected(key: Sm2Key, other: Sm2Key) -> None:
    for der in (False, True):
        ct = sm2.sm2_encrypt(key.public, b"0123456789abcdef", der=der)
        with pytest.raises(GmError, match="decryption failed"):
            sm2.sm2_decrypt(other, ct)


@pytest.mark.parametrize("junk", [b"", b"\x04", b"\x30\x03\x02\x01\x01", bytes(200), b"\x04" + bytes(96)])
def test_sm2_garbage_rejected(key: Sm2Key, junk: bytes) -> None:
    with pytest.raises(GmError):
        sm2.sm2_decrypt(key, junk)


def test_sm2_plaintext_limits(key: Sm2Key) -> None:
    assert sm2.sm2_decrypt(key, sm2.sm2_encrypt(key, b"x" * 255)) == b"x" * 255
    for bad in (b"", b"x" * 256):
        with pytest.raises(GmError, match=r"1\.\.255"):
            sm2.sm2_encrypt(key, bad)


def test_sm2_unknown_order_rejected(key: Sm2Key) -> None:
    with pytest.raises(GmError, match="order"):
        sm2.sm2_encrypt(key, b"x", "C2C1C3")  # type: ignore[arg-type]
    with pytest.raises(GmError, match="order"):
        KeyUnwrapper(key, "c1c3c2", 10)


# -------------------------------------------------------------------------------- key files


def test_private_pem_round_trip_and_layout(key: Sm2Key) -> None:
    pem = key.to_pem()
    assert pem.startswith("-----BEGIN PRIVATE KEY-----\n") and pem.endswith("-----END PRIVATE KEY-----\n")
    assert Sm2Key.from_pem(pem) == key
    assert Sm2Key.from_pem(pem.encode()) == key
    der = b64.b64d(pem.split("-----")[2])
    assert len(der) == 138 and sm2._OID_SM2 in der  # the layout of `openssl genpkey -algorithm SM2`


def test_public_pem_round_trip(key: Sm2Key) -> None:
    pem = key.public.to_pem()
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")
    assert sm2.load_public(pem) == key.public
    assert sm2.load_public(key.to_pem()) == key.public  # a private key PEM yields its public key
    assert sm2.load_public(key.public.to_der()) == key.public


def test_pem_with_a_foreign_public_key_rejected(key: Sm2Key, other: Sm2Key) -> None:
    mixed = Sm2Key(key.private, other.public)
    with pytest.raises(GmError, match="does not belong"):
        Sm2Key.from_pem(mixed.to_pem())


def test_non_sm2_pem_rejected() -> None:
    # a P-256 key (OID 1.2.840.10045.3.1.7) in the SM2 layout
    p256 = bytes.fromhex("06082a8648ce3d030107")
    pem = sm2.generate_key().to_pem()
    der = b64.b64d(pem.split("-----")[2]).replace(asn1.der(0x06, sm2._OID_SM2), p256)
    with pytest.raises(GmError, match="not an SM2 key"):
        Sm2Key.from_pem(asn1.pem("PRIVATE KEY", der))
    with pytest.raises(GmError, match="encrypted"):
        Sm2Key.from_pem("-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAA=\n-----END ENCRYPTED PRIVATE KEY-----\n")
    with pytest.raises(GmError):
        Sm2Key.from_pem("no pem here")


@pytest.mark.parametrize(
    "bad",
    ["", "zz", "04" + "00" * 64, "04" + "11" * 64, "05" + "11" * 64, "02" + "ff" * 32, "-----BEGIN PUBLIC KEY-----"],
)
def test_bad_public_keys_rejected(bad: str) -> None:
    with pytest.raises(GmError):
        sm2.load_public(bad)


def test_init_platform_key_writes_0600_and_refuses_overwrite(tmp_path: Path) -> None:
    key_dir = tmp_path / "data" / "keys"
    key = keyfiles.init_platform_key(key_dir)
    pem = key_dir / keyfiles.PRIVATE_KEY_FILE
    assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    assert (key_dir / keyfiles.PUBLIC_KEY_FILE).read_text().strip() == key.public_hex
    assert keyfiles.load_platform_key(key_dir) == key
    with pytest.raises(GmError, match="已存在"):
        keyfiles.init_platform_key(key_dir)
    assert keyfiles.load_platform_key(key_dir) == key  # untouched
    new = keyfiles.init_platform_key(key_dir, force=True)
    assert new != key and keyfiles.load_platform_key(key_dir) == new
    assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    assert [p.name for p in key_dir.iterdir() if p.name.startswith(".")] == []  # no temporary files left


def test_load_platform_key_missing_or_broken(tmp_path: Path) -> None:
    with pytest.raises(GmError, match="huren keys init"):
        keyfiles.load_platform_key(tmp_path)
    (tmp_path / keyfiles.PRIVATE_KEY_FILE).write_text("garbage")
    with pytest.raises(GmError, match=keyfiles.PRIVATE_KEY_FILE):
        keyfiles.load_platform_key(tmp_path)


# ------------------------------------------------------------------------------ signatures


def test_sign_verify(key: Sm2Key, other: Sm2Key) -> None:
    data = b"timestamp\nnonce\nbody"
    sig = sm2.sm2_sign(key, data)
    assert sig[0] == 0x30
    assert sm2.sm2_verify(key.public, data, sig)
    assert not sm2.sm2_verify(key.public, data + b"x", sig)
    assert not sm2.sm2_verify(other.public, data, sig)
    assert not sm2.sm2_verify(key.public, data, sig, uid=b"another id")
    assert sm2.sm2_verify(key.public, data, sm2.sm2_sign(key, data, uid=b"another id"), uid=b"another id")
    assert not sm2.sm2_verify(key.public, data, b"")
    assert not sm2.sm2_verify(key.public, data, b"\x30\x00")
    bad = bytearray(sig)
    bad[-1] ^= 1
    assert not sm2.sm2_verify(key.public, data, bytes(bad))


def test_sign_default_id_is_gmssl_default_and_empty_id_works(key: Sm2Key) -> None:
    import gmssl_pyx  # type: ignore[import-untyped]

    data = b"payload"
    # GmSSL computes Z itself with its default ID; our Z must be the same
    assert gmssl_pyx.sm2_verify(key.public.point, data, sm2.sm2_sign(key, data))
    theirs = gmssl_pyx.sm2_sign(key.private, key.public.point, data)
    assert sm2.sm2_verify(key.public, data, theirs)
    assert not sm2.sm2_verify(key.public, data, theirs, uid=b"")
    empty = sm2.sm2_sign(key, data, uid=b"")
    assert sm2.sm2_verify(key.public, data, empty, uid=b"")
    assert not sm2.sm2_verify(key.public, data, empty)


def test_verify_accepts_raw_r_s(key: Sm2Key) -> None:
    sig = sm2.sm2_sign(key, b"data")
    r, s = (asn1.uint(c) for _, c in asn1.der_items(sig))
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    assert sm2.sm2_verify(key.public, b"data", raw)
    assert not sm2.sm2_verify(key.public, b"datA", raw)


# ------------------------------------------------------------------------------- unwrapper


def _str_key(key: Sm2Key, sm4_key: bytes, **kw: bool) -> str:
    return b64.b64e(sm2.sm2_encrypt(key.public, sm4_key, **kw))


def test_unwrapper_caches(key: Sm2Key) -> None:
    u = KeyUnwrapper(key, "C1C3C2", 8)
    sk = _str_key(key, b"K" * 16)
    assert u.unwrap(sk) == b"K" * 16
    assert (u.stats.hits, u.stats.misses) == (0, 1)
    assert u.unwrap(sk) == b"K" * 16
    assert (u.stats.hits, u.stats.misses) == (1, 1)
    folded = sk[:40] + "\r\n" + sk[40:]
    assert u.unwrap(folded) == b"K" * 16
    assert u.stats.hits == 2
    assert u.unwrap(_str_key(key, b"K" * 16)) == b"K" * 16  # same SM4 key, new ciphertext: a miss
    assert u.stats.misses == 2 and u.stats.size == 2


def test_unwrapper_lru_bound(key: Sm2Key) -> None:
    u = KeyUnwrapper(key, "C1C3C2", 3)
    keys = [_str_key(key, bytes([i]) * 16) for i in range(5)]
    for sk in keys:
        u.unwrap(sk)
    assert u.stats.size == 3 and u.stats.misses == 5
    u.unwrap(keys[2])  # still cached (one of the last three)
    assert u.stats.hits == 1
    u.unwrap(keys[0])  # evicted long ago
    assert u.stats.misses == 6 and u.stats.size == 3
    u.unwrap(keys[2])  # recently used, so it survived keys[0]'s insertion
    assert u.stats.hits == 2
    u.unwrap(keys[3])  # least recently used when keys[0] came back: evicted
    assert u.stats.misses == 7


def test_unwrapper_without_cache(key: Sm2Key) -> None:
    u = KeyUnwrapper(key, "C1C3C2", 0)
    sk = _str_key(key, b"K" * 16)
    u.unwrap(sk)
    u.unwrap(sk)
    assert (u.stats.hits, u.stats.misses, u.stats.size) == (0, 2, 0)


def test_unwrapper_rejects(key: Sm2Key, other: Sm2Key) -> None:
    u = KeyUnwrapper(key, "C1C3C2", 8)
    with pytest.raises(GmError, match="16-byte"):
        u.unwrap(_str_key(key, b"K" * 15))
    with pytest.raises(GmError, match="16-byte"):
        u.unwrap(_str_key(key, b"K" * 24))
    with pytest.raises(GmError, match="Base64"):
        u.unwrap("not base64!")
    with pytest.raises(GmError, match="decryption failed"):
        u.unwrap(_str_key(other, b"K" * 16))
    assert u.stats.size == 0  # failures are not cached
    with pytest.raises(GmError, match="decryption failed"):
        u.unwrap(_str_key(other, b"K" * 16))


def test_unwrapper_formats_and_order(key: Sm2Key) -> None:
    sm4_key = b"0123456789abcdef"
    u = KeyUnwrapper(key, "C1C3C2", 0)
    for kw in ({}, {"prefix": False}, {"der": True}):
        assert u.unwrap(_str_key(key, sm4_key, **kw)) == sm4_key
    u2 = KeyUnwrapper(key, "C1C2C3", 0)
    c1c2c3 = b64.b64e(sm2.sm2_encrypt(key.public, sm4_key, "C1C2C3"))
    assert u2.unwrap(c1c2c3) == sm4_key
    assert u2.unwrap(_str_key(key, sm4_key, der=True)) == sm4_key
    with pytest.raises(GmError):
        u.unwrap(c1c2c3)


def test_unwrapper_threads(key: Sm2Key) -> None:
    u = KeyUnwrapper(key, "C1C3C2", 4)
    keys = [(bytes([i]) * 16, _str_key(key, bytes([i]) * 16)) for i in range(6)]
    errors: list[str] = []

    def work(n: int) -> None:
        for j in range(60):
            plain, sk = keys[(n + j) % len(keys)]
            if u.unwrap(sk) != plain:
                errors.append(f"thread {n}: wrong key")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    st = u.stats
    assert st.hits + st.misses == 360 and st.size <= 4
