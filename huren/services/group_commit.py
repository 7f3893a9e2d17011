"""Group commit: concurrent writes on SQLite share one transaction, so one synced commit (WAL,
``synchronous=FULL``) answers many callers instead of one fsync each.

A caller hands ``run`` its work (a function of the open connection). While a transaction is
being committed, arriving work queues; the next caller to find no commit running takes the whole
queue (at most ``max_jobs``) into one transaction, in arrival order, and every caller gets its own
result. When any piece of work raises, that transaction is rolled back and each piece is run
again alone, so one bad piece fails only its own caller. On PostgreSQL, whose transactions run
concurrently, the work runs in its own transaction at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection

from huren.store.database import Database

T = TypeVar("T")


@dataclass(slots=True)
class _Job(Generic[T]):
    work: Callable[[Connection], T]
    done: bool = False
    value: Any = None
    error: BaseException | None = None

    def result(self) -> T:
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[no-any-return]


class GroupCommit:
    def __init__(self, db: Database, max_jobs: int = 64) -> None:
        self._db = db
        self._max = max_jobs
        self._cond = threading.Condition()
        self._queue: list[_Job[Any]] = []
        self._committing = False

    def run(self, work: Callable[[Connection], T]) -> T:
        """``work(conn)`` inside a committed transaction, possibly shared with other callers."""
        if not self._db.is_sqlite:
            with self._db.write() as conn:
                return work(conn)
        job: _Job[T] = _Job(work)
        with self._cond:
            self._queue.append(job)
            while self._committing and not job.done:
                self._cond.wait()
            if job.done:
                return job.result()
            self._committing = True
            # the queue in arrival order, at most max_jobs, always with this caller's own work
            others = [j for j in self._queue if j is not job][: self._max - 1]
            taken = {id(j) for j in others} | {id(job)}
            jobs = [j for j in self._queue if id(j) in taken]
            self._queue = [j for j in self._queue if id(j) not in taken]
        try:
            self._commit(jobs)
        finally:
            with self._cond:
                self._committing = False
                self._cond.notify_all()
        return job.result()

    def _commit(self, jobs: list[_Job[Any]]) -> None:
        values: list[Any] = []
        try:
            with self._db.write() as conn:
                for j in jobs:
                    values.append(j.work(conn))
        except BaseException as exc:
            if len(jobs) == 1:
                jobs[0].error, jobs[0].done = exc, True
                return
            for j in jobs:  # one of them failed: each alone, so only that one fails
                try:
                    with self._db.write() as conn:
                        j.value = j.work(conn)
                except BaseException as alone:  # handed to its caller
                    j.error = alone
                j.done = True
            return
        for j, v in zip(jobs, values, strict=True):
            j.value, j.done = v, True

