"""Durable means durable (issue 10 §1.15): a PDF is fsynced with its directory before ``put``
returns, and SQLite commits are synced (synchronous=FULL in WAL mode)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from huren.store.blobs import BlobStore
from huren.store.database import Database, make_engine


def test_put_syncs_the_file_and_every_directory_it_touches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[tuple[str, int]] = []
    real = os.fsync

    def record(fd: int) -> None:
        st = os.fstat(fd)
        synced.append(("dir" if stat.S_ISDIR(st.st_mode) else "file", st.st_ino))
        real(fd)

    monkeypatch.setattr(os, "fsync", record)
    store = BlobStore(tmp_path / "blobs")
    digest = store.put(b"%PDF-1.4 report")
    path = tmp_path / "blobs" / digest[:2] / digest[2:4] / digest
    assert path.read_bytes() == b"%PDF-1.4 report"
    inode = lambda p: os.stat(p).st_ino  # noqa: E731
    assert ("file", inode(path)) in synced  # the bytes
    assert ("dir", inode(path.parent)) in synced  # the rename into place
    for created in (path.parent.parent, tmp_path / "blobs", tmp_path):  # each new directory's entry
        assert ("dir", inode(created)) in synced
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600

    synced.clear()
    store.put(b"%PDF-1.4 report")  # already there: nothing to write
    assert synced == []


def test_a_failed_sync_leaves_no_blob(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken)
    store = BlobStore(tmp_path)
    with pytest.raises(OSError):
        store.put(b"data")
    monkeypatch.undo()
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []  # neither the blob nor its temporary file


def test_sqlite_commits_are_synced(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    finally:
        engine.dispose()


def test_put_many_syncs_every_file_and_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[tuple[str, int]] = []
    real = os.fsync

    def record(fd: int) -> None:
        st = os.fstat(fd)
        synced.append(("dir" if stat.S_ISDIR(st.st_mode) else "file", st.st_ino))
        real(fd)

    store = BlobStore(tmp_path / "blobs")
    before = store.put(b"already there")
    monkeypatch.setattr(os, "fsync", record)
    datas = [b"one", b"two", b"one", b"already there", b"three"]
    digests = store.put_many(datas)
    assert digests[3] == before and digests[0] == digests[2]
    assert [store.get(d) for d in digests] == datas
    for d in set(digests) - {before}:
        path = tmp_path / "blobs" / d[:2] / d[2:4] / d
        assert ("file", os.stat(path).st_ino) in synced
        assert ("dir", os.stat(path.parent).st_ino) in synced and ("dir", os.stat(path.parent.parent).st_ino) in synced
    assert sum(1 for kind, _ in synced if kind == "file") == 3  # each new blob once, the existing one not
    assert not [p for p in tmp_path.rglob(".tmp-*")]


def test_log_only_writes_skip_their_own_sync_and_leave_the_connection_durable(tmp_path: Path) -> None:
    """``write(durable=False)`` (access and reminder logs) relaxes the sync for its own
    transaction only; every other write on the same pooled connection is FULL again."""
    # used one at a time, the pool hands out its one connection again: the next write sees what
    # the relaxed one left behind
    db = Database(make_engine(f"sqlite:///{tmp_path / 'huren.db'}"))
    try:
        with db.write() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        with db.write(durable=False) as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL, this one only
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        with db.write() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL again
            assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 1
        with pytest.raises(RuntimeError), db.write(durable=False) as conn:  # also when the body fails
            raise RuntimeError("boom")
        with db.write() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2
    finally:
        db.dispose()
