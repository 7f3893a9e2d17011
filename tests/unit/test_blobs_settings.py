"""Content-addressed blob store; settings from HUREN_* variables; the token signing secret."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from huren.bootstrap import token_secret
from huren.settings import Settings, SettingsError
from huren.store.blobs import BlobStore

# --- BlobStore -----------------------------------------------------------------------------------------


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_put_returns_sha256_and_lays_out_path(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    data = b"%PDF-1.4 hello"
    digest = store.put(data)
    assert digest == hashlib.sha256(data).hexdigest()
    assert len(digest) == 64
    path = tmp_path / "blobs" / digest[:2] / digest[2:4] / digest
    assert path.read_bytes() == data
    assert _files(tmp_path) == [path]


def test_known_digest() -> None:
    # sha256("abc") from FIPS 180-2
    assert hashlib.sha256(b"abc").hexdigest() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_put_known_value_path(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    digest = store.put(b"abc")
    assert digest == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert (tmp_path / "ba" / "78" / digest).is_file()


def test_put_is_idempotent(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    first = store.put(b"same bytes")
    path = tmp_path / first[:2] / first[2:4] / first
    before = path.stat()
    second = store.put(b"same bytes")
    assert second == first
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # not rewritten
    assert _files(tmp_path) == [path]


def test_get_round_trips_and_exists(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    blobs = [b"", b"\x00\xff" * 1000, "中文报告".encode(), os.urandom(70_000)]
    digests = [store.put(b) for b in blobs]
    assert len(set(digests)) == len(blobs)
    for data, digest in zip(blobs, digests, strict=True):
        assert store.get(digest) == data
        assert store.exists(digest) is True
    # a fresh store on the same directory sees the same blobs
    assert BlobStore(tmp_path).get(digests[2]) == "中文报告".encode()


@pytest.mark.parametrize(
    "digest",
    [
        "",
        "0" * 63,
        "0" * 65,
        "ABCDEF" + "0" * 58,  # upper case is not the canonical spelling
        "g" * 64,
        "../" + "0" * 61,
        "/etc/passwd",
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a/",
    ],
)
def test_bad_digest(tmp_path: Path, digest: str) -> None:
    store = BlobStore(tmp_path)
    store.put(b"abc")
    assert store.get(digest) is None
    assert store.exists(digest) is False


def test_missing_digest(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "never-created")
    digest = hashlib.sha256(b"never stored").hexdigest()
    assert store.get(digest) is None
    assert store.exists(digest) is False
    assert not (tmp_path / "never-created").exists()  # reading creates nothing


def test_no_temp_files_left(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    for i in range(20):
        store.put(f"blob {i}".encode())
        store.put(f"blob {i}".encode())
    names = [p.name for p in tmp_path.rglob("*") if p.is_file()]
    assert len(names) == 20
    assert not [n for n in names if n.startswith(".tmp")]


def test_failed_write_leaves_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = BlobStore(tmp_path)

    def refuse(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        store.put(b"will not land")
    monkeypatch.undo()
    assert _files(tmp_path) == []
    digest = store.put(b"will not land")  # and a retry works
    assert store.get(digest) == b"will not land"


# --- Settings ------------------------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.upper().startswith("HUREN_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_settings_from_environment(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("HUREN_DATA_DIR", str(tmp_path / "d"))
    clean_env.setenv("HUREN_DATABASE_URL", "postgresql+psycopg://u:p@db.example.invalid:5432/huren")
    clean_env.setenv("HUREN_HOST", "0.0.0.0")
    clean_env.setenv("HUREN_PORT", "9123")
    clean_env.setenv("HUREN_WORKERS", "3")
    clean_env.setenv("HUREN_MAX_PDF_BYTES", "1000")
    s = Settings()
    assert s.data_dir == tmp_path / "d"
    assert s.database_url == "postgresql+psycopg://u:p@db.example.invalid:5432/huren"
    assert s.db_url == "postgresql+psycopg://u:p@db.example.invalid:5432/huren"
    assert s.host == "0.0.0.0"
    assert s.port == 9123
    assert s.workers == 3
    assert s.max_pdf_bytes == 1000
    assert s.blob_dir == tmp_path / "d" / "blobs"
    assert s.key_dir == tmp_path / "d" / "keys"


def test_settings_defaults(clean_env: pytest.MonkeyPatch) -> None:
    s = Settings()
    assert s.data_dir == Path("./data")
    assert s.database_url is None
    assert (s.host, s.port, s.workers) == ("127.0.0.1", 8000, 1)
    assert s.secret_key is None  # no built-in default secret
    assert s.demo is False
    assert s.token_ttl_seconds == 7200


def test_explicit_values_override_environment(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("HUREN_DATA_DIR", str(tmp_path / "env"))
    clean_env.setenv("HUREN_PORT", "9123")
    s = Settings(data_dir=tmp_path / "cli", port=8001)
    assert s.data_dir == tmp_path / "cli" and s.port == 8001


def test_db_url_defaults_to_sqlite_under_data_dir(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path / "data")
    assert s.db_url == f"sqlite:///{tmp_path.resolve()}/data/huren.db"
    clean_env.chdir(tmp_path)
    rel = Settings(data_dir=Path("rel"))
    assert rel.db_url == f"sqlite:///{tmp_path.resolve()}/rel/huren.db"  # absolute, whatever the cwd later
    clean_env.setenv("HUREN_DATABASE_URL", "")
    assert Settings(data_dir=tmp_path).db_url == f"sqlite:///{tmp_path.resolve()}/huren.db"


@pytest.mark.parametrize("port", ["not-a-port", "80x"])
def test_bad_port_refused(clean_env: pytest.MonkeyPatch, port: str) -> None:
    clean_env.setenv("HUREN_PORT", port)
    with pytest.raises(SettingsError, match="HUREN_PORT 应为 1 到 65535 之间的整数"):
        Settings()


@pytest.mark.parametrize("workers", [0, 65])
def test_workers_bounds(clean_env: pytest.MonkeyPatch, workers: int) -> None:
    with pytest.raises(SettingsError, match="HUREN_WORKERS 应为 1 到 64 之间的整数"):
        Settings(workers=workers)


def test_short_secret_refused(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError, match="HUREN_SECRET_KEY 至少应有 32 个字符"):
        Settings(secret_key="s" * 31)
    clean_env.setenv("HUREN_SECRET_KEY", "short-secret")
    with pytest.raises(SettingsError, match="HUREN_SECRET_KEY 至少应有 32 个字符"):
        Settings()
    clean_env.setenv("HUREN_SECRET_KEY", "k" * 32)
    assert Settings().secret_key == "k" * 32


# --- the token signing secret --------------------------------------------------------------------------


def test_configured_secret_is_used_and_no_key_file_written(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, secret_key="c" * 40)
    assert token_secret(s) == b"c" * 40
    assert not (tmp_path / "keys").exists()


def test_token_secret_generated_once_with_mode_0600(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path / "data")
    key_file = tmp_path / "data" / "keys" / "token.key"
    assert not key_file.exists()

    first = token_secret(s)
    assert key_file.is_file()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    assert key_file.read_bytes() == first
    assert len(first) == 64 and all(c in b"0123456789abcdef" for c in first)

    assert token_secret(s) == first
    assert token_secret(Settings(data_dir=tmp_path / "data")) == first  # a restart reads the same key

    other = token_secret(Settings(data_dir=tmp_path / "other"))
    assert other != first  # generated per installation: no built-in default


def test_token_secret_file_written_by_an_operator(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "token.key").write_bytes(b"operator-chosen-secret-0123456789abcdef\n")
    assert token_secret(Settings(data_dir=tmp_path)) == b"operator-chosen-secret-0123456789abcdef"
