"""Field encryption at rest (huren.crypto.aead): the SM4-GCM envelope (AES-256-GCM where SM4 is
missing), tamper detection, associated data binding a value to its table/column, key ids, and the
keyed blind index (deterministic, normalised, separated by domain and by key)."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from huren.crypto import aead
from huren.crypto.aead import AES_256_GCM, SM4_GCM, FieldCipher, SealError, column_ad

ID_NO = "65010219900101123X"


def cipher(algorithm: int | None = None, *, keys: dict[int, bytes] | None = None, active: int = 1) -> FieldCipher:
    return FieldCipher(keys or {1: b"k" * 32}, active, b"i" * 32, algorithm=algorithm)


def test_this_openssl_gives_sm4_gcm_and_it_is_the_default() -> None:
    assert aead.sm4_gcm_supported()
    assert aead.default_algorithm() == SM4_GCM and cipher().algorithm == SM4_GCM


@pytest.mark.parametrize("algorithm", [SM4_GCM, AES_256_GCM])
def test_round_trip_and_envelope_layout(algorithm: int) -> None:
    f = cipher(algorithm)
    ad = column_ad("lab_master", "id_no")
    for value in (b"", ID_NO.encode(), "艾力·买买提".encode(), os.urandom(70_000)):
        env = f.seal(value, ad)
        assert f.open(env, ad) == value
        assert len(env) == aead.HEADER_LEN + len(value) + aead.TAG_LEN
        assert FieldCipher.header(env) == (1, algorithm, 1)
        if value:
            assert value not in env
    assert f.seal(b"same", ad) != f.seal(b"same", ad)  # a fresh nonce each time


def test_sm4_gcm_is_the_standard_construction() -> None:
    """The envelope opens with a plain SM4-GCM decryptor given the HKDF-derived key: it is SM4-GCM,
    not something of our own."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    f = cipher(SM4_GCM)
    env = f.seal(b"plain", b"ad")
    key = HKDF(algorithm=hashes.SHA256(), length=16, salt=None, info=b"huren/aead/v1/SM4-GCM").derive(b"k" * 32)
    header, body, tag = env[: aead.HEADER_LEN], env[aead.HEADER_LEN : -16], env[-16:]
    d = Cipher(algorithms.SM4(key), modes.GCM(header[6:], tag)).decryptor()
    d.authenticate_additional_data(header + b"ad")
    assert d.update(body) + d.finalize() == b"plain"


@pytest.mark.parametrize("size", [1, 18, aead.SHORT, aead.SHORT + 1, 70_000])
def test_sm4_gcm_short_and_long_paths_are_one_construction(size: int) -> None:
    """Fields (GmSSL's one-call SM4-GCM) and bulk values (OpenSSL's streaming SM4-GCM) give the same
    envelope: each opens what the other sealed, and a flipped tag bit fails on both paths."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    f = cipher(SM4_GCM)
    key = HKDF(algorithm=hashes.SHA256(), length=16, salt=None, info=b"huren/aead/v1/SM4-GCM").derive(b"k" * 32)
    value = os.urandom(size)
    env = f.seal(value, b"ad")
    header, body, tag = env[: aead.HEADER_LEN], env[aead.HEADER_LEN : -16], env[-16:]
    d = Cipher(algorithms.SM4(key), modes.GCM(header[6:], tag)).decryptor()
    d.authenticate_additional_data(header + b"ad")
    assert d.update(body) + d.finalize() == value
    nonce = os.urandom(12)
    header = bytes([1, SM4_GCM]) + (1).to_bytes(4, "big") + nonce
    e = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
    e.authenticate_additional_data(header + b"ad")
    streamed = header + e.update(value) + e.finalize() + e.tag
    assert f.open(streamed, b"ad") == value
    for bad in (streamed[:-1] + bytes([streamed[-1] ^ 1]), env[:-1] + bytes([env[-1] ^ 1])):
        with pytest.raises(SealError):
            f.open(bad, b"ad")
    with pytest.raises(SealError):
        f.open(env, b"other")


def test_aes_gcm_is_the_standard_construction_both_ways() -> None:
    """AES-256-GCM values are sealed with cryptography's one-shot AESGCM (the fast path): they open
    with a plain streaming AES-GCM decryptor given the HKDF-derived key, and a value sealed that way
    opens through FieldCipher — the fast path writes the same envelope, not one of its own."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    f = cipher(AES_256_GCM)
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"huren/aead/v1/AES-256-GCM").derive(b"k" * 32)
    env = f.seal(b"plain", b"ad")
    header, body, tag = env[: aead.HEADER_LEN], env[aead.HEADER_LEN : -16], env[-16:]
    d = Cipher(algorithms.AES(key), modes.GCM(header[6:], tag)).decryptor()
    d.authenticate_additional_data(header + b"ad")
    assert d.update(body) + d.finalize() == b"plain"
    nonce = os.urandom(12)
    header = bytes([1, AES_256_GCM]) + (1).to_bytes(4, "big") + nonce
    e = Cipher(algorithms.AES(key), modes.GCM(nonce)).encryptor()
    e.authenticate_additional_data(header + b"ad")
    streamed = header + e.update(b"other") + e.finalize() + e.tag
    assert f.open(streamed, b"ad") == b"other"
    with pytest.raises(SealError):
        f.open(streamed[:-1] + bytes([streamed[-1] ^ 1]), b"ad")


@pytest.mark.parametrize("algorithm", [SM4_GCM, AES_256_GCM])
def test_every_flipped_bit_is_detected(algorithm: int) -> None:
    f = cipher(algorithm)
    env = f.seal(ID_NO.encode(), b"ad")
    for i in range(len(env)):
        bad = bytearray(env)
        bad[i] ^= 0x01
        with pytest.raises(SealError):
            f.open(bytes(bad), b"ad")
    with pytest.raises(SealError):
        f.open(env[:-1], b"ad")
    with pytest.raises(SealError):
        f.open(env[:10], b"ad")
    with pytest.raises(SealError):
        f.open(env + b"\0", b"ad")


def test_wrong_associated_data_does_not_open() -> None:
    f = cipher()
    text = f.seal_text(ID_NO, "access_log", "id_no")
    assert text.startswith("enc1:") and ID_NO not in text
    assert f.open_text(text, "access_log", "id_no") == ID_NO
    for table, column, context in (("access_log", "name", ""), ("lab_master", "id_no", ""), ("access_log", "id_no", "x")):
        with pytest.raises(SealError):
            f.open_text(text, table, column, context)
    with pytest.raises(SealError, match="holds no sealed value"):
        f.open_text(ID_NO, "access_log", "id_no")
    with pytest.raises(SealError, match="envelope"):
        f.open_text("enc1:!!!", "access_log", "id_no")
    # the parts are length-prefixed: no two (table, column, context) give the same bytes
    assert column_ad("a", "b\0c") != column_ad("a\0b", "c") and column_ad("a", "bc") != column_ad("ab", "c")


def test_key_ids_another_key_and_rotation() -> None:
    old = cipher(keys={1: b"a" * 32})
    env = old.seal(b"v", b"ad")
    with pytest.raises(SealError):  # the same key id, another secret
        cipher(keys={1: b"b" * 32}).open(env, b"ad")
    with pytest.raises(SealError, match="unknown data key id 1"):
        cipher(keys={2: b"a" * 32}, active=2).open(env, b"ad")
    rotated = cipher(keys={1: b"a" * 32, 2: b"c" * 32}, active=2)
    assert rotated.open(env, b"ad") == b"v" and rotated.needs_rekey(env)
    fresh = rotated.seal(b"v", b"ad")
    assert FieldCipher.header(fresh)[2] == 2 and not rotated.needs_rekey(fresh)
    # the key id is authenticated: relabelling an envelope with another (known) key id fails
    relabelled = fresh[:2] + (1).to_bytes(4, "big") + fresh[6:]
    with pytest.raises(SealError):
        rotated.open(relabelled, b"ad")
    # an AES envelope still opens under an SM4 cipher with the same keys (and is due a re-key)
    aes = FieldCipher({1: b"a" * 32}, 1, b"i" * 32, algorithm=AES_256_GCM).seal(b"v", b"ad")
    assert old.open(aes, b"ad") == b"v" and old.needs_rekey(aes)
    assert "a" * 8 not in repr(rotated) and "secret" not in repr(rotated).lower()


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(SealError, match="active"):
        FieldCipher({1: b"k" * 32}, 2, b"i" * 32)
    with pytest.raises(SealError, match="32 bytes"):
        FieldCipher({1: b"k" * 16}, 1, b"i" * 32)
    with pytest.raises(SealError, match="key ids"):
        FieldCipher({0: b"k" * 32}, 0, b"i" * 32)
    with pytest.raises(SealError, match="algorithm"):
        FieldCipher({1: b"k" * 32}, 1, b"i" * 32, algorithm=9)
    env = bytearray(cipher().seal(b"v", b"ad"))
    env[0] = 2
    with pytest.raises(SealError, match="version"):
        cipher().open(bytes(env), b"ad")


def test_blind_index_deterministic_normalised_and_separated() -> None:
    f = cipher()
    a = f.blind(ID_NO, "id_no")
    assert a == f.blind(ID_NO, "id_no") == cipher().blind(ID_NO, "id_no")  # deterministic
    assert len(a) == 32 and all(c in "0123456789abcdef" for c in a)
    # normalised: case, outer and inner whitespace, full-width characters
    assert f.blind(" 65010219900101123x ", "id_no") == a
    assert f.blind("６５０１０２１９９００１０１１２３Ｘ", "id_no") == a
    assert f.blind("艾力  买买提", "name") == f.blind("艾力 买买提", "name")
    # separated: another value, another domain, another index secret
    assert f.blind("650102199001011231", "id_no") != a
    assert f.blind(ID_NO, "phone") != a
    assert FieldCipher({1: b"k" * 32}, 1, b"j" * 32).blind(ID_NO, "id_no") != a
    # and it does not rotate with the data key
    assert FieldCipher({1: b"k" * 32, 2: b"z" * 32}, 2, b"i" * 32).blind(ID_NO, "id_no") == a
    assert aead.normalise(" a\u3000b ") == "A B"
