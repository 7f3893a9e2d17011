"""The association reactor's wake-up (huren.dimse.reactor) never takes a put's wake-up from a thread
blocked in ``get(block=True)`` on the same message queue (a requestor's send_c_store): seen as one
C-STORE answered only after its 15 s DIMSE timeout."""

from __future__ import annotations

import queue
import threading
import time
from types import SimpleNamespace

import pytest

from huren.dimse import reactor


def test_a_put_wakes_a_blocked_get_while_the_reactor_sleeps(monkeypatch: pytest.MonkeyPatch) -> None:
    class Assoc(threading.Thread):
        def __init__(self, q: queue.Queue[object]) -> None:
            super().__init__(daemon=True)
            self.dimse = SimpleNamespace(msg_queue=q)

        def run(self) -> None:
            reactor._AssociationTime.sleep(reactor.REACTOR_SLEEP)

    monkeypatch.setattr(reactor._association, "Association", Assoc)
    monkeypatch.setattr(reactor, "REACTOR_SLEEP", 2.0)  # the reactor's wait: long, and first in line
    q: queue.Queue[object] = queue.Queue()
    sleeper = Assoc(q)
    sleeper.start()
    time.sleep(0.1)
    waited: list[float] = []

    def get() -> None:
        t0 = time.monotonic()
        q.get(block=True, timeout=5)
        waited.append(time.monotonic() - t0)

    getter = threading.Thread(target=get, daemon=True)
    getter.start()
    time.sleep(0.1)  # both wait on the queue's condition, the reactor first
    q.put(object())
    getter.join(6)
    sleeper.join(3)
    assert waited and waited[0] < 1.0, waited
