"""Socket options on every association of the AE (accepted or opened): TCP_NODELAY, and
TCP_QUICKACK re-armed after each PDU sent. Bound as pynetdicom handlers (EVT_CONN_OPEN, EVT_PDU_SENT)."""

from __future__ import annotations

import contextlib
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pynetdicom.events import Event


def nodelay(event: Event) -> None:
    """EVT_CONN_OPEN: TCP_NODELAY on the association's socket (no small PDU held back behind an
    unacknowledged one: with Nagle's algorithm on, a C-STORE can wait ~40 ms for a delayed ACK —
    measured ~12–20 instances/s instead of hundreds), and TCP_QUICKACK to start with."""
    sock = event.assoc.dul.socket
    raw = getattr(sock, "socket", None)
    if isinstance(raw, socket.socket):
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if QUICKACK is not None:
                raw.setsockopt(socket.IPPROTO_TCP, QUICKACK, 1)
        except OSError:  # the peer went away between accept and here
            pass


#: Linux: acknowledge at once instead of delaying the ACK (re-armed after each PDU: the kernel drops
#: the flag by itself). A peer with Nagle's algorithm on (Debian's dcmtk ``storescu`` unless
#: ``TCP_NODELAY=1`` is in its environment) holds its dataset PDU until the ACK of its command PDU:
#: without this, ~40 ms (the delayed ACK) per instance.
QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)


def quickack(event: Event) -> None:
    """EVT_PDU_SENT: back out of the kernel's delayed-ACK ("ping-pong") mode that sending an
    answer puts the connection in, so the peer's next command PDU is acknowledged at once."""
    raw = getattr(event.assoc.dul.socket, "socket", None)
    if isinstance(raw, socket.socket) and QUICKACK is not None:
        with contextlib.suppress(OSError):
            raw.setsockopt(socket.IPPROTO_TCP, QUICKACK, 1)
