"""Every file huren creates is 0600 and every directory 0700 (issue 10 §1.8), on the platform (the
SQLite database and its WAL/SHM, the blob store with a PDF and a kept rejected payload, the keys)
and on the gateway (the outbox, the preload cache, the code-map cache, a failed drop's reason) —
under a loose umask (022) as a host process might have, and the CLI sets umask 077 itself."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from huren import cli
from huren.bootstrap import build
from huren.context import Clock, Principal
from huren.errors import InvalidInput
from huren.gateway.mapping import CodeTable, cached
from huren.gateway.outbox import Outbox
from huren.gateway.preload_store import PreloadStore
from huren.settings import Settings
from tests import samples
from tests.conftest import ORG_A


@pytest.fixture
def loose_umask() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def modes(root: Path) -> dict[str, int]:
    """Relative path → permission bits of root and everything under it."""
    out = {".": stat.S_IMODE(root.stat().st_mode)}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = stat.S_IMODE(p.lstat().st_mode)
    return out


def loose(root: Path) -> dict[str, str]:
    """What is not private under root: files not 0600, directories not 0700."""
    wrong = {}
    for rel, mode in modes(root).items():
        want = 0o700 if (root / rel).is_dir() else 0o600
        if mode != want:
            wrong[rel] = oct(mode)
    return wrong


def test_platform_data_dir_is_private_after_a_registration(tmp_path: Path, loose_umask: None) -> None:
    data = tmp_path / "data"
    c = build(Settings(data_dir=data), clock=Clock(), upgrade=True)
    try:
        code, name, region, level, user, pw = ORG_A
        c.directory.add_org(code, name, region, level, user=user, password=pw, role="hospital")
        who = Principal(code, user, "hospital")
        c.registry.register("lab", samples.lab(), who)  # its PDF goes to the blob store
        bad = samples.lab()
        bad["labmaster"]["report_form_no"] = ""
        with pytest.raises(InvalidInput) as refused:
            c.registry.register("lab", bad, who, raw=b'{"kept": "payload"}')
        assert refused.value.rejected_id is not None  # kept: its payload is a blob too
        c.keys.fields()  # the data keys
        files = modes(data)
        assert {"huren.db", "huren.db-wal", "huren.db-shm", "keys/token.key", "keys/data.keys"} <= set(files)
        blobs = [p for p in files if p.startswith("blobs/") and (data / p).is_file()]
        assert len(blobs) >= 2, files
        assert loose(data) == {}
    finally:
        c.close()
    assert loose(data) == {}


def test_an_older_installation_is_tightened(tmp_path: Path, loose_umask: None) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    for name in ("huren.db", "huren.db-wal", "huren.db-shm"):
        (data / name).touch(mode=0o644)
    (data / "huren.db-wal").unlink()  # a clean shutdown leaves no WAL
    (data / "huren.db-shm").unlink()
    (data / "huren.db").chmod(0o644)
    c = build(Settings(data_dir=data), clock=Clock(), upgrade=True)
    c.close()
    m = modes(data)
    assert m["huren.db"] == 0o600 and m.get("huren.db-wal", 0o600) == 0o600
    assert m["."] == 0o755  # a directory that existed is the operator's: left as it is


def test_gateway_files_are_private(tmp_path: Path, loose_umask: None) -> None:
    gw = tmp_path / "gw"
    with Outbox(gw / "state" / "outbox.db") as box:
        assert box.path.is_file()
        store = PreloadStore(gw / "state" / "preload.db")
        assert store.path.is_file()
        load = cached(lambda: CodeTable({"lab": {"L1": "250301001"}}), gw / "cache" / "codes.json")
        assert load().resolve("lab", "L1") == "250301001"
        m = modes(gw)
        assert {"state/outbox.db", "state/outbox.db-wal", "state/outbox.db-shm", "state/preload.db", "cache/codes.json"} <= set(m)
        assert loose(gw) == {}


def test_the_cli_sets_umask_077(tmp_path: Path, loose_umask: None) -> None:
    assert cli.main(["keys", "init", "--data-dir", str(tmp_path / "d")]) == 0
    assert os.umask(0o077) == 0o077
    (tmp_path / "d" / "later").touch()  # what a library creates afterwards is private as well
    assert loose(tmp_path / "d") == {}


def test_the_worker_factory_sets_umask_077(tmp_path: Path, loose_umask: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from huren.bootstrap import app_from_env

    monkeypatch.setenv("HUREN_DATA_DIR", str(tmp_path / "w"))
    monkeypatch.setenv("HUREN_SECRET_KEY", "s" * 32)
    app = app_from_env()
    assert os.umask(0o077) == 0o077
    app.state.container.close()
    assert loose(tmp_path / "w") == {}
