"""huren.crypto's SM2 / SM3 / SM4 against independent peers, both ways: the OpenSSL command line (SM4-ECB, SM2
``pkeyutl`` encryption in DER, SM3withSM2 signatures, PEM key files) and pure-Python gmalg (raw
C1C3C2 with the 04 prefix, compressed C1, r/s signatures). Also the ``huren keys`` command line.

Without an ``openssl`` that knows SM2 the OpenSSL tests skip with the reason, unless
``HUREN_REQUIRE_ALL=1`` (then they fail).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from huren.crypto import asn1, b64, envelope, keyfiles, sm2, sm4
from huren.crypto.errors import GmError
from huren.crypto.sm2 import Sm2Key

ROOT = Path(__file__).resolve().parents[2]
REQUIRE_ALL = os.environ.get("HUREN_REQUIRE_ALL") == "1"
SM4_KEY = bytes.fromhex("0123456789abcdeffedcba9876543210")


def _missing(reason: str) -> None:
    if REQUIRE_ALL:
        pytest.fail(f"HUREN_REQUIRE_ALL=1 but {reason}")
    pytest.skip(reason)


def _run(*args: str, data: bytes = b"", check: bool = True) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run(list(args), input=data, capture_output=True, timeout=60, check=False)
    if check:
        assert proc.returncode == 0, (args, proc.stderr.decode(errors="replace"))
    return proc


@pytest.fixture(scope="module")
def openssl(tmp_path_factory: pytest.TempPathFactory) -> str:
    exe = shutil.which("openssl")
    if exe is None:
        _missing("no openssl command on PATH")
        raise AssertionError  # unreachable
    probe = tmp_path_factory.mktemp("probe") / "k.pem"
    proc = _run(exe, "genpkey", "-algorithm", "SM2", "-out", str(probe), check=False)
    if proc.returncode != 0:
        version = _run(exe, "version", check=False).stdout.decode(errors="replace").strip()
        _missing(f"{version or 'openssl'} cannot generate SM2 keys")
    cipher = _run(exe, "enc", "-sm4-ecb", "-K", SM4_KEY.hex(), "-nosalt", data=b"x", check=False)
    if cipher.returncode != 0:
        _missing("openssl has no SM4-ECB cipher")
    return exe


@pytest.fixture(scope="module")
def key() -> Sm2Key:
    return sm2.generate_key()


@pytest.fixture
def gmalg_mod():  # type: ignore[no-untyped-def]
    try:
        import gmalg  # type: ignore[import-untyped]
    except ImportError:
        _missing("gmalg (dev extra) is not installed")
    return gmalg


# ----------------------------------------------------------------------------- OpenSSL: SM4


@pytest.mark.parametrize("n", [0, 5, 16, 1000])
def test_sm4_openssl_encrypts_we_decrypt(openssl: str, n: int) -> None:
    data = os.urandom(n)
    ct = _run(openssl, "enc", "-sm4-ecb", "-K", SM4_KEY.hex(), "-nosalt", data=data).stdout
    assert sm4.sm4_decrypt(SM4_KEY, ct) == data


@pytest.mark.parametrize("n", [0, 5, 16, 1000])
def test_sm4_we_encrypt_openssl_decrypts(openssl: str, n: int) -> None:
    data = os.urandom(n)
    ct = sm4.sm4_encrypt(SM4_KEY, data)
    assert _run(openssl, "enc", "-d", "-sm4-ecb", "-K", SM4_KEY.hex(), "-nosalt", data=ct).stdout == data


def test_sm4_vector_through_openssl(openssl: str) -> None:
    ct = _run(openssl, "enc", "-sm4-ecb", "-K", SM4_KEY.hex(), "-nosalt", "-nopad", data=SM4_KEY).stdout
    assert ct.hex() == "681edf34d206965e86b3e94f536e4246"


# ------------------------------------------------------------------------------ OpenSSL: keys


def test_openssl_reads_our_key_files(openssl: str, key: Sm2Key, tmp_path: Path) -> None:
    (tmp_path / "k.pem").write_text(key.to_pem())
    text = _run(openssl, "pkey", "-in", str(tmp_path / "k.pem"), "-text", "-noout").stdout.decode()
    assert "SM2" in text
    pub = _run(openssl, "pkey", "-in", str(tmp_path / "k.pem"), "-pubout").stdout.decode()
    assert pub == key.public.to_pem()  # OpenSSL derives the same public key, in the same SPKI bytes
    # and the private key file is byte for byte what OpenSSL writes for the same key
    again = _run(openssl, "pkey", "-in", str(tmp_path / "k.pem")).stdout.decode()
    assert again == key.to_pem()


def test_we_read_openssl_key_files(openssl: str, tmp_path: Path) -> None:
    k = tmp_path / "k.pem"
    _run(openssl, "genpkey", "-algorithm", "SM2", "-out", str(k))
    key = Sm2Key.from_pem(k.read_bytes())
    pub_pem = _run(openssl, "pkey", "-in", str(k), "-pubout").stdout
    assert sm2.load_public(pub_pem) == key.public
    sec1 = _run(openssl, "ec", "-in", str(k)).stdout  # SEC1 with the [0] curve, labelled "SM2 PRIVATE KEY"
    assert b"-----BEGIN SM2 PRIVATE KEY-----" in sec1
    assert Sm2Key.from_pem(sec1) == key
    sec1_der = _run(openssl, "pkey", "-in", str(k), "-outform", "DER").stdout  # SEC1 DER
    assert Sm2Key.from_pem(asn1.pem("EC PRIVATE KEY", sec1_der)) == key
    text = _run(openssl, "pkey", "-in", str(k), "-text", "-noout").stdout.decode()
    hex_pub = "".join(text.split("pub:")[1].split("ASN1 OID")[0].split()).replace(":", "")
    assert hex_pub == key.public_hex


# ------------------------------------------------------------------------------- OpenSSL: SM2


def test_sm2_openssl_encrypts_we_decrypt(openssl: str, key: Sm2Key, tmp_path: Path) -> None:
    pub = tmp_path / "pub.pem"
    pub.write_text(key.public.to_pem())
    for n in (16, 1, 100):
        plain = os.urandom(n)
        ct = _run(openssl, "pkeyutl", "-encrypt", "-pubin", "-inkey", str(pub), data=plain).stdout
        assert ct[0] == 0x30  # OpenSSL speaks DER
        assert sm2.sm2_decrypt(key, ct) == plain
        assert sm2.sm2_decrypt(key, ct, "C1C2C3") == plain


def test_sm2_we_encrypt_openssl_decrypts(openssl: str, key: Sm2Key, tmp_path: Path) -> None:
    priv = tmp_path / "k.pem"
    priv.write_text(key.to_pem())
    for _ in range(20):  # some ciphertexts have short DER integers
        plain = os.urandom(16)
        ct = sm2.sm2_encrypt(key.public, plain, der=True)
        assert _run(openssl, "pkeyutl", "-decrypt", "-inkey", str(priv), data=ct).stdout == plain


def test_sm2_openssl_rejects_our_tampered_ciphertext_too(openssl: str, key: Sm2Key, tmp_path: Path) -> None:
    priv = tmp_path / "k.pem"
    priv.write_text(key.to_pem())
    ct = bytearray(sm2.sm2_encrypt(key.public, b"0123456789abcdef", der=True))
    ct[-1] ^= 1  # last byte of C2
    assert _run(openssl, "pkeyutl", "-decrypt", "-inkey", str(priv), data=bytes(ct), check=False).returncode != 0
    with pytest.raises(GmError):
        sm2.sm2_decrypt(key, bytes(ct))


def test_sm2_openssl_ciphertext_as_raw_c1c3c2(openssl: str, key: Sm2Key, tmp_path: Path) -> None:
    """What a hospital's converter would send: OpenSSL's DER re-laid as 04‖x‖y‖C3‖C2, and as C1C2C3."""
    pub = tmp_path / "pub.pem"
    pub.write_text(key.public.to_pem())
    plain = os.urandom(16)
    der = _run(openssl, "pkeyutl", "-encrypt", "-pubin", "-inkey", str(pub), data=plain).stdout
    x, y, c3, c2 = sm2._ct_from_der(der)
    c1 = b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")
    assert sm2.sm2_decrypt(key, c1 + c3 + c2) == plain
    assert sm2.sm2_decrypt(key, c1[1:] + c3 + c2) == plain
    assert sm2.sm2_decrypt(key, c1 + c2 + c3, "C1C2C3") == plain


# -------------------------------------------------------------------------- OpenSSL: signatures


DISTID = "distid:1234567812345678"


def test_openssl_signs_we_verify(openssl: str, key: Sm2Key, tmp_path: Path) -> None:
    priv, data = tmp_path / "k.pem", tmp_path / "d"
    priv.write_text(key.to_pem())
    data.write_bytes(b'20261122093000\nnonce-1\n{"a": 1}')
    body = data.read_bytes()
    sign = ("pkeyutl", "-sign", "-rawin", "-digest", "sm3", "-inkey", str(priv), "-in", str(data))
    with_id = [
        _run(openssl, "dgst", "-sm3", "-sign", str(priv), "-sigopt", DISTID, str(data)).stdout,
        _run(openssl, *sign, "-pkeyopt", DISTID).stdout,
    ]
    for sig in with_id:
        assert sm2.sm2_verify(key.public, body, sig)
        assert not sm2.sm2_verify(key.public, body + b" ", sig)
        assert not sm2.sm2_verify(key.public, body, sig, uid=b"")
    # OpenSSL 3's default ID is empty, not GM/T 0009's: only uid=b"" verifies those
    without_id = [_run(openssl, "dgst", "-sm3", "-sign", str(priv), str(data)).stdout, _run(openssl, *sign).stdout]
    for sig in without_id:
        assert sm2.sm2_verify(key.public, body, sig, uid=b"")
        assert not sm2.sm2_verify(key.public, body, sig)


def test_we_sign_openssl_verifies(openssl: str, key: Sm2Key, tmp_path: Path) -> None:
    pub, data, sig = tmp_path / "pub.pem", tmp_path / "d", tmp_path / "s"
    pub.write_text(key.public.to_pem())
    data.write_bytes(b"20261122093000\nnonce-2\n<root/>")
    sig.write_bytes(sm2.sm2_sign(key, data.read_bytes()))
    verify = ("dgst", "-sm3", "-verify", str(pub), "-signature", str(sig))
    proc = _run(openssl, *verify, "-sigopt", DISTID, str(data))
    assert b"Verified OK" in proc.stdout
    raw = ("pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pubin", "-inkey", str(pub), "-sigfile", str(sig))
    assert b"Successfully" in _run(openssl, *raw, "-pkeyopt", DISTID, "-in", str(data)).stdout
    assert _run(openssl, *verify, str(data), check=False).returncode != 0  # OpenSSL's empty default ID
    bad = tmp_path / "d2"
    bad.write_bytes(data.read_bytes() + b"!")
    assert _run(openssl, *verify, "-sigopt", DISTID, str(bad), check=False).returncode != 0
    sig.write_bytes(sm2.sm2_sign(key, data.read_bytes(), uid=b""))
    assert b"Verified OK" in _run(openssl, *verify, str(data)).stdout


# -------------------------------------------------------------------------------------- gmalg


def test_gmalg_encrypts_we_decrypt(gmalg_mod, key: Sm2Key) -> None:  # type: ignore[no-untyped-def]
    peer = gmalg_mod.SM2(pk=bytes.fromhex(key.public_hex))
    for _ in range(3):
        plain = os.urandom(16)
        ct = peer.encrypt(plain)  # 04 ‖ x ‖ y ‖ C3 ‖ C2
        assert len(ct) == 65 + 32 + 16 and ct[0] == 4
        assert sm2.sm2_decrypt(key, ct) == plain
        assert sm2.sm2_decrypt(key, ct[1:]) == plain
        assert envelope.KeyUnwrapper(key, "C1C3C2", 0).unwrap(b64.b64e(ct)) == plain


def test_gmalg_compressed_c1_we_decrypt(gmalg_mod, key: Sm2Key) -> None:  # type: ignore[no-untyped-def]
    peer = gmalg_mod.SM2(pk=bytes.fromhex(key.public_hex), pc_mode=gmalg_mod.PC_MODE.COMPRESS)
    plain = os.urandom(16)
    ct = peer.encrypt(plain)
    assert len(ct) == 33 + 32 + 16 and ct[0] in (2, 3)
    assert sm2.sm2_decrypt(key, ct) == plain


def test_we_encrypt_gmalg_decrypts(gmalg_mod, key: Sm2Key) -> None:  # type: ignore[no-untyped-def]
    peer = gmalg_mod.SM2(sk=key.private, pk=bytes.fromhex(key.public_hex))
    for _ in range(3):
        plain = os.urandom(16)
        assert peer.decrypt(sm2.sm2_encrypt(key.public, plain)) == plain


def test_gmalg_signatures_both_ways(gmalg_mod, key: Sm2Key) -> None:  # type: ignore[no-untyped-def]
    peer = gmalg_mod.SM2(sk=key.private, pk=bytes.fromhex(key.public_hex), uid=sm2.DEFAULT_UID)
    data = b"signed body"
    r, s = peer.sign(data)
    raw = r.rjust(32, b"\x00") + s.rjust(32, b"\x00")
    assert sm2.sm2_verify(key.public, data, raw)
    der = asn1.der(0x30, asn1.der_int(int.from_bytes(r, "big")) + asn1.der_int(int.from_bytes(s, "big")))
    assert sm2.sm2_verify(key.public, data, der)
    ours = asn1.der_items(sm2.sm2_sign(key, data))
    assert peer.verify(data, ours[0][1].lstrip(b"\x00"), ours[1][1].lstrip(b"\x00"))
    assert not peer.verify(data + b"x", ours[0][1].lstrip(b"\x00"), ours[1][1].lstrip(b"\x00"))


def test_gmalg_derives_our_public_key_and_sm4(gmalg_mod, key: Sm2Key) -> None:  # type: ignore[no-untyped-def]
    assert gmalg_mod.SM2().generate_pk(key.private) == bytes.fromhex(key.public_hex)
    assert gmalg_mod.SM4(SM4_KEY).encrypt(SM4_KEY).hex() == "681edf34d206965e86b3e94f536e4246"
    block = sm4.sm4_encrypt(SM4_KEY, b"A" * 16)[:16]
    assert gmalg_mod.SM4(SM4_KEY).decrypt(block) == b"A" * 16


# ------------------------------------------------------------------------------------ the CLI


def _huren(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("HUREN_")}
    env.update({"HUREN_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"})
    return subprocess.run(
        [sys.executable, "-m", "huren.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )


def test_cli_keys_init_and_public(tmp_path: Path) -> None:
    data = tmp_path / "data"
    init = _huren("keys", "init", data_dir=data)
    assert init.returncode == 0, init.stderr
    pem = data / "keys" / keyfiles.PRIVATE_KEY_FILE
    assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    assert str(pem.resolve()) in init.stdout
    key = Sm2Key.from_pem(pem.read_bytes())
    assert key.public_hex in init.stdout

    pub = _huren("keys", "public", data_dir=data)
    assert pub.returncode == 0, pub.stderr
    assert pub.stdout == key.public_hex + "\n" and len(pub.stdout.strip()) == 130
    assert (data / "keys" / keyfiles.PUBLIC_KEY_FILE).read_text().strip() == key.public_hex
    pem_out = _huren("keys", "public", "--pem", data_dir=data)
    assert sm2.load_public(pem_out.stdout) == key.public

    again = _huren("keys", "init", data_dir=data)
    assert again.returncode == 2
    assert "已存在" in again.stderr and "--force" in again.stderr
    assert "Traceback" not in again.stderr
    assert Sm2Key.from_pem(pem.read_bytes()) == key

    forced = _huren("keys", "init", "--force", data_dir=data)
    assert forced.returncode == 0, forced.stderr
    assert Sm2Key.from_pem(pem.read_bytes()) != key
    assert stat.S_IMODE(pem.stat().st_mode) == 0o600


def test_cli_keys_data_dir_option_and_missing_key(tmp_path: Path) -> None:
    other = tmp_path / "other"
    init = _huren("keys", "init", "--data-dir", str(other), data_dir=tmp_path / "env")
    assert init.returncode == 0, init.stderr
    assert (other / "keys" / keyfiles.PRIVATE_KEY_FILE).is_file()
    assert not (tmp_path / "env" / "keys").exists()
    missing = _huren("keys", "public", data_dir=tmp_path / "env")
    assert missing.returncode == 2
    assert "huren keys init" in missing.stderr and "Traceback" not in missing.stderr
