"""Group commit (huren.services.group_commit): concurrent writers share synced commits on
SQLite, each gets its own result, and a failing piece of work fails only its own caller."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

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


def _insert_all(calls: list[int]) -> Callable[[Connection, Sequence[int]], list[int]]:
    def work(conn: Connection, items: Sequence[int]) -> list[int]:
        calls.append(len(items))
        for n in items:
            conn.execute(text("INSERT INTO t (n) VALUES (:n)"), {"n": n})
        return [n * 2 for n in items]

    return work


def test_run_many_merges_queued_batches_of_one_key(db: Database) -> None:
    """Batches queued behind a commit are merged into one call (per key); each caller gets the
    results of its own items, in its own order."""
    group = GroupCommit(db)
    calls: list[int] = []
    hold = threading.Event()
    entered = threading.Event()

    def slow(conn: Connection) -> None:  # keeps a commit running while the others queue
        entered.set()
        hold.wait(5)

    first = threading.Thread(target=group.run, args=(slow,))
    first.start()
    entered.wait(5)
    results: dict[int, list[int]] = {}

    def writer(n: int) -> None:
        results[n] = group.run_many("k", [n * 10 + 1, n * 10 + 2], _insert_all(calls))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(1, 7)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 5
    while len(group._queue) < 6 and time.monotonic() < deadline:  # all six queued behind the commit
        time.sleep(0.01)
    hold.set()
    first.join()
    for t in threads:
        t.join()
    assert results == {n: [(n * 10 + 1) * 2, (n * 10 + 2) * 2] for n in range(1, 7)}
    assert calls == [12]  # one merged call for the six batches
    with db.read() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 12
    db.dispose()


def test_run_many_keeps_keys_apart_and_a_bad_batch_fails_alone(db: Database) -> None:
    group = GroupCommit(db, max_items=4)
    assert [len(g) for g in group._groups([_job("a", 2), _job("a", 2), _job("a", 1), _job("b", 1), _job(None, 0)])] == [2, 1, 1, 1]
    with db.write() as conn:
        conn.execute(text("INSERT INTO t (n) VALUES (5)"))
    calls: list[int] = []
    gate = threading.Barrier(6)
    outcome: dict[int, object] = {}

    def writer(n: int) -> None:
        gate.wait()
        try:  # n == 0 carries a duplicate key
            outcome[n] = group.run_many("k", [5 if n == 0 else 100 + n], _insert_all(calls))
        except Exception as exc:
            outcome[n] = exc

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert isinstance(outcome[0], Exception)
    assert all(outcome[n] == [(100 + n) * 2] for n in range(1, 6))
    with db.read() as conn:
        assert sorted(conn.execute(text("SELECT n FROM t")).scalars()) == [5, *range(101, 106)]
    db.dispose()


def _job(key: object, n: int) -> Any:
    from huren.services.group_commit import _Job

    if key is None:
        return _Job(lambda conn: None)
    return _Job(lambda conn: None, key=key, items=list(range(n)), batch=lambda conn, items: list(items))
