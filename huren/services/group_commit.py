"""Group commit: concurrent writes share one transaction, so one synced commit answers many
callers instead of one flush each.

A caller hands ``run`` its work (a function of the open connection). While a transaction is
being committed, arriving work queues; the next caller to find no commit running takes the whole
queue (at most ``max_jobs``) into one transaction, in arrival order, and every caller gets its own
result. When any piece of work raises, that transaction is rolled back and each piece is run
again alone, so one bad piece fails only its own caller.

``run_many`` goes one step further for work that takes a list (a batch of reports): queued calls
with the same key that follow each other are merged, their items concatenated and handed to one
call, and each caller gets its own slice of the results. Single-report registrations arriving
together then cost what one batch registration costs (one lookup, one insert of the masters, one
of the items) rather than a round of statements each.

SQLite: the commit is an fsync of the WAL (``synchronous=FULL``). PostgreSQL (``share_on_postgres``,
the default): each commit waits for its WAL flush (``synchronous_commit = on``: an ``ok`` stays
durable), and one transaction for the work that arrived meanwhile makes one flush and one commit
round trip answer it all. PostgreSQL also shares flushes between concurrent transactions of its
own (``commit_delay``, docs/deployment.md); this does it within one worker process, before the
statements reach the server.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection

from huren.store.database import Database

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741 - an item of a batch
R = TypeVar("R")


@dataclass(slots=True)
class _Job(Generic[T]):
    work: Callable[[Connection], T]
    done: bool = False
    value: Any = None
    error: BaseException | None = None
    # run_many: the merge key, the items and the list work (None for run)
    key: Hashable = None
    items: Sequence[Any] = ()
    batch: Callable[[Connection, Sequence[Any]], list[Any]] | None = None

    def result(self) -> T:
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[no-any-return]


class GroupCommit:
    def __init__(self, db: Database, max_jobs: int = 64, *, max_items: int = 500, share_on_postgres: bool = True) -> None:
        """``max_items``: at most this many items in one merged ``run_many`` call."""
        self._db = db
        self._max = max_jobs
        self._max_items = max_items
        self._share = db.is_sqlite or share_on_postgres
        self._cond = threading.Condition()
        self._queue: list[_Job[Any]] = []
        self._committing = False

    def run(self, work: Callable[[Connection], T]) -> T:
        """``work(conn)`` inside a committed transaction, possibly shared with other callers."""
        return self._submit(_Job(work))

    def run_many(self, key: Hashable, items: Sequence[I], work: Callable[[Connection, Sequence[I]], list[R]]) -> list[R]:
        """``work(conn, items)`` (one result per item, in order) inside a committed transaction;
        queued calls with an equal ``key`` may be merged into one call of the first one's
        ``work`` over all their items, so ``work`` must not depend on anything else of its
        caller that the key does not pin down."""
        items = list(items)
        job: _Job[list[R]] = _Job(lambda conn: work(conn, items), key=key, items=items, batch=work)
        return self._submit(job)

    def _submit(self, job: _Job[T]) -> T:
        if not self._share:
            with self._db.write() as conn:
                return job.work(conn)
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

    def _groups(self, jobs: list[_Job[Any]]) -> list[list[_Job[Any]]]:
        """Runs of consecutive ``run_many`` jobs with one key (at most ``max_items`` items); every
        other job alone."""
        out: list[list[_Job[Any]]] = []
        for j in jobs:
            last = out[-1] if out else None
            if (
                last is not None
                and j.batch is not None
                and last[0].batch is not None
                and last[0].key == j.key
                and sum(len(x.items) for x in last) + len(j.items) <= self._max_items
            ):
                last.append(j)
            else:
                out.append([j])
        return out

    def _commit(self, jobs: list[_Job[Any]]) -> None:
        values: list[tuple[_Job[Any], Any]] = []
        try:
            with self._db.write() as conn:
                for group in self._groups(jobs):
                    if len(group) == 1:
                        values.append((group[0], group[0].work(conn)))
                        continue
                    first = group[0]
                    assert first.batch is not None
                    merged = first.batch(conn, [item for j in group for item in j.items])
                    start = 0
                    for j in group:
                        values.append((j, merged[start : start + len(j.items)]))
                        start += len(j.items)
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
        for j, v in values:
            j.value, j.done = v, True
