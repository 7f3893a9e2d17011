"""The keyring (huren.store.keys): the platform SM2 key loaded once and shared by the signed REST
transport and the SOAP profile, one NotConfigured error when it is missing (the same words on
every channel), the token secret, and the data keys of field encryption (0600, key ids, rotation)."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from huren import cli
from huren.client import HurenClient
from huren.crypto import aead, b64, keyfiles, sm2
from huren.crypto.errors import GmError
from huren.errors import NotConfigured
from huren.services.container import Container
from huren.store.keys import DATA_FILE, PLATFORM_KEY_MISSING, Keyring
from tests import samples
from tests.conftest import ORG_A, login


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.fixture
def keep_umask() -> Iterator[None]:
    """cli.main sets the process umask to 077: give the rest of the session its umask back."""
    old = os.umask(0o022)
    os.umask(old)
    yield
    os.umask(old)


# -- the platform SM2 key ----------------------------------------------------------------------
def test_missing_platform_key_is_one_not_configured_error(tmp_path: Path) -> None:
    ring = Keyring(tmp_path / "keys")
    for call in (ring.platform_key, ring.unwrapper):
        with pytest.raises(NotConfigured) as err:
            call()
        assert err.value.message == PLATFORM_KEY_MISSING and "huren keys init" in err.value.text()
        assert err.value.status == 503
    assert ring.platform_public_hex() is None
    assert not (tmp_path / "keys").exists()  # asking for a key creates nothing


def test_keys_init_elsewhere_takes_effect_without_restart(tmp_path: Path) -> None:
    serving = Keyring(tmp_path / "keys")
    with pytest.raises(NotConfigured):
        serving.platform_key()
    key = Keyring(tmp_path / "keys").init_platform_key()  # what `huren keys init` does
    assert serving.platform_key() == key and serving.platform_public_hex() == key.public_hex
    assert _mode(tmp_path / "keys") == 0o700
    assert _mode(tmp_path / "keys" / keyfiles.PRIVATE_KEY_FILE) == 0o600
    with pytest.raises(GmError, match="已存在"):
        serving.init_platform_key()
    assert serving.platform_key() == key


def test_one_keyring_loads_the_key_once_for_rest_and_soap(
    container: Container, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert container.transport._keys is container.keys  # handed in by bootstrap, not rebuilt
    platform = Keyring(container.settings.key_dir).init_platform_key()
    loads: list[Path] = []
    real = keyfiles.load_platform_key

    def counting(key_dir: Path) -> sm2.Sm2Key:
        loads.append(key_dir)
        return real(key_dir)

    monkeypatch.setattr(keyfiles, "load_platform_key", counting)  # the keyring reads through keyfiles
    # REST: an SM4 body whose X-Huren-Key unwraps (the body itself is garbage: refused after unwrapping)
    api = login(client, ORG_A)
    wrapped = b64.b64e(sm2.sm2_encrypt(platform.public, os.urandom(16)))
    h = api.headers | {"Content-Type": "application/json", "X-Huren-Encryption": "sm4", "X-Huren-Key": wrapped}
    r = client.post("/api/v1/lab-reports", content=b"x" * 16, headers=h)
    assert r.status_code == 400 and r.json()["problems"][0]["field"] == "body", r.text
    # SOAP: a full call
    hc = HurenClient(str(client.base_url), ORG_A[0], ORG_A[4], ORG_A[5], platform_key=platform.public, http=client)
    assert hc.ArchiveAutoReport(samples.DAILY_XML) == "ok"
    assert loads == [container.settings.key_dir]  # read from disk once, for both channels
    assert container.keys.unwrapper().stats.misses == 2  # one unwrapper (and cache) serves both


def test_without_a_key_rest_and_soap_say_the_same(client: TestClient) -> None:
    api = login(client, ORG_A)
    h = api.headers | {"Content-Type": "application/json", "X-Huren-Encryption": "sm4", "X-Huren-Key": "AAAA"}
    r = client.post("/api/v1/lab-reports", content=b"x" * 16, headers=h)
    assert r.status_code == 503 and r.json()["code"] == "not_configured"
    assert r.json()["message"] == PLATFORM_KEY_MISSING
    hc = HurenClient(str(client.base_url), ORG_A[0], ORG_A[4], ORG_A[5], platform_key=sm2.generate_key().public, http=client)
    assert hc.ArchiveAutoReport(samples.DAILY_XML) == f"error:{PLATFORM_KEY_MISSING}"
    key = login(client, ORG_A).get("/api/v1/transport/key")
    assert "Traceback" not in key.text


def test_cli_keys_public_without_a_key(tmp_path: Path, capsys: pytest.CaptureFixture[str], keep_umask: None) -> None:
    assert cli.main(["keys", "public", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"错误：{PLATFORM_KEY_MISSING}") and "Traceback" not in err
    assert cli.main(["keys", "init", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert cli.main(["keys", "public", "--data-dir", str(tmp_path)]) == 0
    public = capsys.readouterr().out.strip()
    assert len(public) == 130 and public in out
    assert _mode(tmp_path / "keys" / keyfiles.PUBLIC_KEY_FILE) == 0o600


# -- the token secret --------------------------------------------------------------------------
def test_token_secret_configured_or_generated_once(tmp_path: Path) -> None:
    assert Keyring(tmp_path / "a", secret_key="s" * 32).token_secret() == b"s" * 32
    assert not (tmp_path / "a").exists()
    ring = Keyring(tmp_path / "b")
    first = ring.token_secret()
    assert _mode(tmp_path / "b" / "token.key") == 0o600 and len(first) == 64
    assert Keyring(tmp_path / "b").token_secret() == first
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "token.key").write_bytes(b"short")
    with pytest.raises(NotConfigured, match=r"令牌密钥文件 .* 不可用"):
        Keyring(tmp_path / "c").token_secret()


# -- data keys ---------------------------------------------------------------------------------
def test_data_keys_generated_once_private_and_shared_by_processes(tmp_path: Path) -> None:
    one, two = Keyring(tmp_path / "keys"), Keyring(tmp_path / "keys")
    sealed = one.fields().seal_text("650102199001011234", "access_log", "id_no")
    assert _mode(tmp_path / "keys" / DATA_FILE) == 0o600 and _mode(tmp_path / "keys") == 0o700
    assert two.fields().open_text(sealed, "access_log", "id_no") == "650102199001011234"
    assert one.fields().blind("650102199001011234", "id_no") == two.fields().blind("650102199001011234", "id_no")
    other = Keyring(tmp_path / "elsewhere").fields()
    with pytest.raises(aead.SealError):  # another installation's keys do not open it
        other.open_text(sealed, "access_log", "id_no")
    assert other.blind("650102199001011234", "id_no") != one.fields().blind("650102199001011234", "id_no")


def test_rotate_data_key_keeps_old_values_readable(tmp_path: Path) -> None:
    ring = Keyring(tmp_path)
    old = ring.fields().seal(b"kept payload", b"ad")
    index = ring.fields().blind("张三", "name")
    assert ring.rotate_data_key() == 2
    f = ring.fields()
    assert f.active == 2 and f.key_ids == [1, 2]
    assert f.needs_rekey(old) and f.open(old, b"ad") == b"kept payload"
    new = f.seal(b"new", b"ad")
    assert f.header(new)[2] == 2 and not f.needs_rekey(new)
    assert f.blind("张三", "name") == index  # lookups survive a rotation
    stale = Keyring(tmp_path)
    stale._fields = aead.FieldCipher({1: bytes.fromhex(json.loads((tmp_path / DATA_FILE).read_text())["keys"]["1"])}, 1,
                                     bytes(32))
    with pytest.raises(aead.SealError, match="unknown data key id 2"):
        stale.fields().open(new, b"ad")
    assert stale.reload_fields().open(new, b"ad") == b"new"
    assert _mode(tmp_path / DATA_FILE) == 0o600


def test_broken_data_key_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str], keep_umask: None) -> None:
    (tmp_path / DATA_FILE).write_text('{"format": 1, "active": 3, "keys": {"1": "00"}, "index": "00"}')
    with pytest.raises(NotConfigured, match=rf"数据密钥文件 .*{DATA_FILE} 无法读取.*切勿删除"):
        Keyring(tmp_path).fields()
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / DATA_FILE).write_text("not json")
    assert cli.main(["keys", "rotate-data", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("错误：数据密钥文件") and "Traceback" not in err
    assert (tmp_path / "keys" / DATA_FILE).read_text() == "not json"  # never replaced


def test_a_serving_process_reads_values_sealed_after_a_rotation_elsewhere(tmp_path: Path) -> None:
    serving = Keyring(tmp_path).fields()
    operator = Keyring(tmp_path)
    assert operator.rotate_data_key() == 2
    new = operator.fields().seal(b"sealed under key 2", b"ad")
    assert serving.open(new, b"ad") == b"sealed under key 2"  # the key is read when first met
    assert serving.active == 1  # new values: the key active at start, until a restart


def test_cli_rotate_data_reseals_every_blob_with_progress(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keep_umask: None
) -> None:
    from huren.store.blobs import SEALED, BlobStore

    data = tmp_path / "data"
    ring = Keyring(data / "keys")
    legacy = BlobStore(data / "blobs").put(b"%PDF-1.4 plaintext from before sealing")
    store = BlobStore(data / "blobs", cipher=ring.fields())
    sealed = [store.put(f"payload {i} {ID}".encode()) for i, ID in enumerate(["650102196702011238"] * 5)]
    before = {d: store.get(d) for d in [legacy, *sealed]}

    assert cli.main(["keys", "rotate-data", "--data-dir", str(data), "--batch", "2"]) == 0
    out, err = capsys.readouterr()
    assert "编号 2" in out and "重新加密 5，首次加密 1，已是当前密钥 0，无法打开 0" in out
    assert "6/6" in err and "[" + "#" * 30 + "]" in err
    after = BlobStore(data / "blobs", cipher=Keyring(data / "keys").fields())
    for d, content in before.items():
        stored = after._path(d).read_bytes()
        assert stored.startswith(SEALED) and aead.FieldCipher.header(stored[len(SEALED) :])[2] == 2
        assert after.get(d) == content
        assert _mode(after._path(d)) == 0o600
    assert [p for p in (data / "blobs").rglob(".tmp-*")] == []

    # again with --resume: nothing to do; a damaged file is named, left alone, and fails the run
    damaged = after._path(sealed[0])
    damaged.write_bytes(damaged.read_bytes()[:-1] + b"\0")
    assert cli.main(["keys", "rotate-data", "--data-dir", str(data), "--resume"]) == 1
    out, err = capsys.readouterr()
    assert "已是当前密钥 5，无法打开 1" in out and sealed[0] in err


@pytest.mark.parametrize(
    "content",
    [b"not json", b'{"format": "other", "active": 1, "keys": {}, "index": ""}', b'{"format": "huren-data-keys/1", "active": 1, "keys": {"1": "zz"}, "index": "00"}'],
)
def test_an_unusable_data_key_file_is_named_in_chinese(tmp_path: Path, content: bytes) -> None:
    """The operator reads the reason in Chinese, never a parser's English text."""
    import re

    from huren.crypto.datakeys import DataKeys
    from huren.errors import NotConfigured

    path = tmp_path / "data.keys"
    path.write_bytes(content)
    with pytest.raises(NotConfigured) as err:
        DataKeys(path).read(create=False)
    assert str(path) in str(err.value) and "请从备份恢复" in str(err.value)
    assert not re.search(r"[A-Za-z]{4,}", str(err.value).replace(str(path), "")), str(err.value)
