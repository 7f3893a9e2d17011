"""Group commit (huren.services.group_commit): concurrent writers share synced commits on
SQLite, each gets its own result, and a failing piece of work fails only its own caller."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import Connection, event, text

from huren.services.group_commit import GroupCommit
from huren.store.database import Database, make_engine


@pytest.fixture
def db(tmp_path: Path) -> Database:
    d = Database(make_engine(f"sqlite:///{tmp_path / 'g.db'}"))
    with d.write() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER PRIMARY KEY)"))
    return d


def test_concurrent_work_shares_commits_and_gets_its_own_results(db: Database) -> None:
    commits = 0

    def count(_conn: object) -> None:
        nonlocal commits
        commits += 1

    event.listen(db.engine, "commit", count)
    group = GroupCommit(db)
    gate = threading.Barrier(16)
    results: dict[int, int] = {}

    def writer(n: int) -> None:
        gate.wait()
        for k in range(10):
            value = n * 100 + k

            def work(conn: Connection, value: int = value) -> int:
                conn.execute(text("INSERT INTO t (n) VALUES (:n)"), {"n": value})
                return value

            results[value] = group.run(work)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {v: v for v in results} and len(results) == 160
    with db.read() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 160
    assert commits < 160  # some commits carried several writers' work
    db.dispose()


def test_a_failing_piece_fails_only_its_caller(db: Database) -> None:
    group = GroupCommit(db)
    with db.write() as conn:
        conn.execute(text("INSERT INTO t (n) VALUES (1)"))
    gate = threading.Barrier(8)
    outcome: dict[int, object] = {}

    def writer(n: int) -> None:
        gate.wait()
        try:  # n == 0 inserts a duplicate key
            outcome[n] = group.run(lambda conn: conn.execute(text("INSERT INTO t (n) VALUES (:n)"), {"n": 1 if n == 0 else 10 + n}).rowcount)
        except Exception as exc:
            outcome[n] = exc

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert isinstance(outcome[0], Exception)
    assert all(outcome[n] == 1 for n in range(1, 8))
    with db.read() as conn:
        assert sorted(conn.execute(text("SELECT n FROM t")).scalars()) == [1, *range(11, 18)]
    db.dispose()
