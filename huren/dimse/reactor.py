"""pynetdicom's two reactors poll: the association's loop sleeps 1 ms per turn before it looks for
a complete DIMSE message, and the DUL's loop sleeps 1 ms whenever it found nothing to do before it
looks at the socket again. Each C-STORE waits for both (its PDUs to be read, its message to be
served), ~1.5 ms of sleeping per instance on top of the work — with a no-op archive the AE managed
~280 instances/s, with these waits turned into wake-ups ~420/s, at the same CPU per instance and
the same idle cost.

``install()`` replaces the ``time`` module those two pynetdicom modules see by one whose ``sleep``
does the same wait but returns early: in an association's thread, as soon as a DIMSE message is
queued (the queue's condition); in a DUL thread, as soon as its socket is readable (``select``).
Every other sleep (and every other ``time`` function) is the real one.
"""

from __future__ import annotations

import select
import threading
import time as _time
from typing import Any

import pynetdicom.association as _association
import pynetdicom.dul as _dul

#: the association reactor's per-turn sleep (pynetdicom 3.0.4, ``Association._run_reactor``)
REACTOR_SLEEP = 0.001


class _Time:
    """The ``time`` module, but for ``sleep``."""

    def __getattr__(self, name: str) -> Any:
        return getattr(_time, name)


class _AssociationTime(_Time):
    @staticmethod
    def sleep(seconds: float) -> None:
        thread = threading.current_thread()
        if seconds != REACTOR_SLEEP or not isinstance(thread, _association.Association):
            _time.sleep(seconds)
            return
        queue = thread.dimse.msg_queue
        with queue.not_empty:  # holds the queue's mutex: look at the deque itself (qsize() would lock again)
            if not queue.queue:
                queue.not_empty.wait(seconds)
                if queue.queue:
                    # woken by a put, which wakes ONE waiter: pass it on, or a thread blocked in
                    # ``get(block=True)`` on the same queue (a requestor's send_c_store, whose
                    # reactor pynetdicom pauses racily) would wait out its DIMSE timeout
                    queue.not_empty.notify()


class _DulTime(_Time):
    @staticmethod
    def sleep(seconds: float) -> None:
        thread = threading.current_thread()
        if not isinstance(thread, _dul.DULServiceProvider) or seconds != thread._run_loop_delay:
            _time.sleep(seconds)
            return
        if thread.to_provider_queue.qsize():  # something to send: no wait
            return
        sock = getattr(thread.socket, "socket", None)
        if sock is None:
            _time.sleep(seconds)
            return
        try:
            select.select([sock], [], [], seconds)
        except (OSError, ValueError):  # closed meanwhile: wait as pynetdicom would
            _time.sleep(seconds)


def install() -> None:
    """Idempotent; process-wide (every pynetdicom association of the process)."""
    setattr(_association, "time", _AssociationTime())  # noqa: B010 (the module's own name, replaced)
    setattr(_dul, "time", _DulTime())  # noqa: B010
