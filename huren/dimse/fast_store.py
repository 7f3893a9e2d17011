"""C-STORE without pynetdicom's per-message machinery: served in the association's DUL thread.

pynetdicom turns every received C-STORE into a dozen steps: the P-DATA-TF PDU decoded into item
objects and a primitive, the command set decoded into a pydicom ``Dataset``, a C-STORE primitive,
a hand-over to the association's thread, a service class, the handler, a response ``Dataset``
encoded by pydicom, a P-DATA primitive queued back to the DUL thread, the PDU encoded again. Each
instance paid ~1.5 ms of it here; the sender (``storescu`` waits for each response) paid it too.

:func:`install` replaces ``DULServiceProvider._read_pdu_data`` (process-wide) by one that, for an
association the AE accepted (:func:`attach`) and once it is established (state Sta6), reads a
P-DATA-TF PDU itself and feeds its presentation data values to the association's
:class:`Receiver`:

* a command whose set (implicit VR little endian, PS3.7 §6.3.1) is a C-STORE-RQ with a data set,
  on an accepted presentation context, is taken: its data set fragments are written, as received,
  behind a Part-10 preamble and file meta (the command's SOP class and instance UIDs, the context's
  transfer syntax: :mod:`huren.dimse.file_meta`) into a spool (memory up to
  :data:`SPOOL_IN_MEMORY`, then a temporary file); when the last fragment is in, the store function
  bound at :func:`attach` (``handlers.store_received``: the same code as pynetdicom's EVT_C_STORE
  path) keeps it and the C-STORE-RSP goes out at once, encoded here;
* everything else — other commands, a command split so that its Command Field is not in its first
  fragment, any other PDU type, any association not attached — goes to pynetdicom exactly as it
  would have (the PDU decoded by pynetdicom, its events triggered, the state machine fed).

The bound on one instance (``max_instance_bytes``) holds here too: past it the association is
aborted and the spool dropped. A data set fragment on another context than its command's, or a
command arriving while a data set is still expected, is a protocol error: A-ABORT.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import tempfile
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pynetdicom.dul as _dul

from huren.dimse import file_meta, sockets

if TYPE_CHECKING:
    from pynetdicom.association import Association

LOG = logging.getLogger("huren.dimse")

#: a received data set is kept in memory up to this size, then in a temporary file
SPOOL_IN_MEMORY = 4 * 1024 * 1024
#: a P-DATA-TF PDU longer than this is not read (the AE offers 1 MiB; pynetdicom would read any)
MAX_PDU_LENGTH = 16 * 1024 * 1024

C_STORE_RQ = 0x0001
C_STORE_RSP = 0x8001
NO_DATA_SET = 0x0101
PREAMBLE = b"\0" * 128 + b"DICM"

#: what the store function answers: the status and the Error Comment (None: no comment)
StoreFn = Callable[["Request", IO[bytes]], tuple[int, str | None]]


@dataclass(frozen=True, slots=True)
class Request:
    """The C-STORE-RQ's command elements the store needs."""

    context_id: int
    message_id: int
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax: str


def parse_command(raw: bytes | bytearray | memoryview) -> dict[int, bytes] | None:
    """A command set (group 0000, implicit VR little endian) as element number → value bytes;
    None when it is not one (another group, a length past the end)."""
    out: dict[int, bytes] = {}
    view = memoryview(raw)
    n, off = len(view), 0
    while off < n:
        if off + 8 > n:
            return None
        group, elem, length = struct.unpack_from("<HHI", view, off)
        off += 8
        if group != 0x0000 or off + length > n:
            return None
        out[elem] = bytes(view[off:off + length])
        off += length
    return out


def _us(value: bytes | None) -> int | None:
    return struct.unpack("<H", value)[0] if value is not None and len(value) == 2 else None


def _uid(value: bytes | None) -> str:
    return (value or b"").decode("ascii", "replace").rstrip("\0 ")


def _element(elem: int, value: bytes) -> bytes:
    return struct.pack("<HHI", 0x0000, elem, len(value)) + value


def _even(raw: bytes, pad: bytes) -> bytes:
    return raw + pad if len(raw) % 2 else raw


def encode_store_response(req: Request, status: int, comment: str | None) -> bytes:
    """The C-STORE-RSP as one P-DATA-TF PDU (one command fragment, last): the elements of PS3.7
    §9.3.1.2 in tag order, implicit VR little endian, as pynetdicom would encode them."""
    body = b"".join((
        _element(0x0002, _even(req.sop_class_uid.encode("ascii"), b"\0")),
        _element(0x0100, struct.pack("<H", C_STORE_RSP)),
        _element(0x0120, struct.pack("<H", req.message_id)),
        _element(0x0800, struct.pack("<H", NO_DATA_SET)),
        _element(0x0900, struct.pack("<H", status)),
        _element(0x0902, _even(comment.encode("ascii", "replace"), b" ")) if comment else b"",
        _element(0x1000, _even(req.sop_instance_uid.encode("ascii"), b"\0")),
    ))
    command = _element(0x0000, struct.pack("<I", len(body))) + body
    pdv = struct.pack(">IBB", len(command) + 2, req.context_id, 0x03) + command
    return struct.pack(">BBI", 0x04, 0x00, len(pdv)) + pdv


class Receiver:
    """One association's C-STORE in progress: fed by its DUL thread (under :attr:`lock`, which
    :meth:`drop` takes too: an association ended from another thread — the AE shutting down —
    waits for the instance being kept rather than closing its spool under it)."""

    def __init__(self, assoc: Association, store: StoreFn, *, max_instance_bytes: int, spool_dir: Path | None) -> None:
        self._assoc = weakref.ref(assoc)
        self._store = store
        self.max_instance_bytes = max_instance_bytes
        self.spool_dir = spool_dir
        #: command fragments not yet complete: (context id, control header, bytes)
        self._pending: list[tuple[int, int, bytes]] = []
        self._request: Request | None = None
        self._sink: tempfile.SpooledTemporaryFile[bytes] | None = None
        self._received = 0
        self._responses: list[bytes] = []
        self.lock = threading.RLock()

    # -- feeding --------------------------------------------------------------------------------
    def feed(self, context_id: int, control: int, fragment: memoryview, passthrough: list[tuple[int, bytes]]) -> None:
        """One presentation data value; what is not taken is appended to ``passthrough``
        (context id, control header + fragment) for pynetdicom."""
        is_command, is_last = bool(control & 0x01), bool(control & 0x02)
        if self._request is not None:  # a data set is expected
            if is_command or context_id != self._request.context_id:
                expected = self._request.context_id
                self.drop()
                raise ProtocolError(f"应在表示上下文 {expected} 上收到数据集片段")
            self._write(fragment)
            if is_last:
                self._complete()
            return
        if not is_command or self._busy_elsewhere():
            passthrough.append((context_id, bytes((control,)) + bytes(fragment)))
            return
        self._pending.append((context_id, control, bytes(fragment)))
        if not is_last:
            if len(self._pending) == 1 and not _names_store(self._pending[0][2]):
                self._release_pending(passthrough)  # not a C-STORE (or not told by its first fragment)
            return
        request = self._request_of(self._pending)
        if request is None:
            self._release_pending(passthrough)
            return
        self._pending = []
        self._begin(request)

    def _busy_elsewhere(self) -> bool:
        """pynetdicom is assembling a message of its own (fragments it was given): not ours."""
        assoc = self._assoc()
        return assoc is None or getattr(assoc.dimse, "message", None) is not None

    def _release_pending(self, passthrough: list[tuple[int, bytes]]) -> None:
        passthrough.extend((cid, bytes((ctl,)) + data) for cid, ctl, data in self._pending)
        self._pending = []

    def _request_of(self, fragments: list[tuple[int, int, bytes]]) -> Request | None:
        """The C-STORE-RQ these fragments make, or None (not one, or not one this path serves)."""
        context_id = fragments[0][0]
        if any(cid != context_id for cid, _, _ in fragments):
            return None
        cmd = parse_command(b"".join(data for _, _, data in fragments))
        if cmd is None or _us(cmd.get(0x0100)) != C_STORE_RQ:
            return None
        message_id, data_set_type = _us(cmd.get(0x0110)), _us(cmd.get(0x0800))
        if message_id is None or data_set_type is None or data_set_type == NO_DATA_SET:
            return None
        sop_class, sop_instance = _uid(cmd.get(0x0002)), _uid(cmd.get(0x1000))
        assoc = self._assoc()
        context = getattr(assoc, "_accepted_cx", {}).get(context_id) if assoc is not None else None
        if not sop_class or not sop_instance or context is None or not context.transfer_syntax:
            return None
        if context.abstract_syntax != sop_class:
            return None  # pynetdicom's own answer for a class outside its context
        return Request(context_id, message_id, sop_class, sop_instance, str(context.transfer_syntax[0]))

    # -- the data set ---------------------------------------------------------------------------
    def _begin(self, request: Request) -> None:
        self._request = request
        self._received = 0
        spool = str(self.spool_dir) if self.spool_dir is not None and self.spool_dir.is_dir() else None
        sink: tempfile.SpooledTemporaryFile[bytes] = tempfile.SpooledTemporaryFile(  # noqa: SIM115 (closed at _complete / drop)
            max_size=SPOOL_IN_MEMORY, dir=spool
        )
        sink.write(PREAMBLE)
        sink.write(file_meta.encode(file_meta.FileMeta(request.sop_class_uid, request.sop_instance_uid, request.transfer_syntax)))
        self._sink = sink

    def _write(self, fragment: memoryview) -> None:
        self._received += len(fragment)
        if self._received > self.max_instance_bytes:
            self.drop()
            raise TooLargeInstance(self.max_instance_bytes)
        assert self._sink is not None
        self._sink.write(fragment)

    def _complete(self) -> None:
        request, sink = self._request, self._sink
        self._request, self._sink = None, None
        assert request is not None and sink is not None
        try:
            sink.seek(0)
            status, comment = self._store(request, sink)
        finally:
            sink.close()
        self._responses.append(encode_store_response(request, status, comment))

    def take_responses(self) -> list[bytes]:
        out, self._responses = self._responses, []
        return out

    def drop(self) -> None:
        """The association ends (or is aborted): what was being received is thrown away."""
        with self.lock:
            sink, self._sink, self._request, self._pending = self._sink, None, None, []
            if sink is not None:
                with contextlib.suppress(OSError):
                    sink.close()


class ProtocolError(Exception):
    pass


class TooLargeInstance(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


def _names_store(first: bytes) -> bool:
    """The first fragment of a command holds its Command Field (tags ascending: after the group
    length and the SOP class UID, within the first ~90 bytes) saying C-STORE-RQ."""
    view, off = memoryview(first), 0
    while off + 8 <= len(view):
        group, elem, length = struct.unpack_from("<HHI", view, off)
        if group != 0 or elem > 0x0100:
            return False
        if elem == 0x0100:
            return length == 2 and off + 10 <= len(view) and struct.unpack_from("<H", view, off + 8)[0] == C_STORE_RQ
        off += 8 + length
    return False


# -- the DUL side ---------------------------------------------------------------------------------
_RECEIVERS: weakref.WeakKeyDictionary[Any, Receiver] = weakref.WeakKeyDictionary()


def attach(assoc: Association, receiver: Receiver) -> None:
    _RECEIVERS[assoc] = receiver


def detach(assoc: Association) -> None:
    receiver = _RECEIVERS.pop(assoc, None)
    if receiver is not None:
        receiver.drop()


def _recv_exact(sock: Any, n: int) -> bytearray | None:
    """``n`` bytes from the socket, or None when the connection ends first."""
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = sock.recv_into(view[got:])
        if not k:
            return None
        got += k
    return buf


def _read_pdu_data(dul: Any) -> None:
    """``DULServiceProvider._read_pdu_data`` for an attached, established association (see the
    module); pynetdicom's own for every other."""
    receiver = _RECEIVERS.get(dul.assoc)
    if receiver is None or dul.state_machine.current_state != "Sta6":
        _ORIGINAL(dul)
        return
    sock = dul.socket.socket
    try:
        header = _recv_exact(sock, 6)
        if header is None:
            dul.event_queue.put("Evt17")
            return
        pdu_type, _, length = struct.unpack(">BBI", header)
        if pdu_type not in (0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07) or length > MAX_PDU_LENGTH:
            dul.event_queue.put("Evt19")
            return
        body = _recv_exact(sock, length)
    except (OSError, TimeoutError):
        dul.event_queue.put("Evt17")
        return
    if body is None:
        dul.event_queue.put("Evt17")
        return
    if pdu_type != 0x04:
        _to_pynetdicom(dul, header + body)
        return
    passthrough: list[tuple[int, bytes]] = []
    try:
        with receiver.lock:
            _feed_items(receiver, body, passthrough)
    except TooLargeInstance as exc:
        LOG.warning("DICOM：实例超过上限 %d 字节，关联已中止", exc.limit)
        dul.assoc.abort(block=False)
        return
    except ProtocolError as exc:
        LOG.warning("DICOM：违反协议的 P-DATA（%s），关联已中止", exc)
        dul.assoc.abort(block=False)
        return
    for response in receiver.take_responses():
        dul.socket.send(response)
        _quickack(sock)
    if passthrough:
        items = b"".join(struct.pack(">IB", len(data) + 1, cid) + data for cid, data in passthrough)
        _to_pynetdicom(dul, struct.pack(">BBI", 0x04, 0x00, len(items)) + items)


def _feed_items(receiver: Receiver, body: bytearray, passthrough: list[tuple[int, bytes]]) -> None:
    view, off, n = memoryview(body), 0, len(body)
    while off < n:
        if off + 6 > n:
            raise ProtocolError("表示数据值项被截断")
        (item_length,) = struct.unpack_from(">I", view, off)
        end = off + 4 + item_length
        if item_length < 2 or end > n:
            raise ProtocolError("表示数据值项长度无效")
        if passthrough:  # once an item went to pynetdicom, the rest of the PDU follows it
            passthrough.append((view[off + 4], bytes(view[off + 5:end])))
        else:
            receiver.feed(view[off + 4], view[off + 5], view[off + 6:end], passthrough)
        off = end


def _to_pynetdicom(dul: Any, raw: bytes | bytearray) -> None:
    """What pynetdicom's ``_read_pdu_data`` does with a PDU it read (decode, event, queue)."""
    try:
        pdu, event = dul._decode_pdu(bytearray(raw))
    except Exception:
        LOG.exception("DICOM：无法解码收到的 PDU")
        dul.event_queue.put("Evt19")
        return
    dul.event_queue.put(event)
    dul._recv_pdu.put(pdu)


def _quickack(sock: Any) -> None:
    quickack = sockets.QUICKACK  # looked up each time (tests turn it off)
    if quickack is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, quickack, 1)


_ORIGINAL: Callable[[Any], None] = _dul.DULServiceProvider._read_pdu_data


def install() -> None:
    """Idempotent; process-wide (only attached associations take the fast path)."""
    setattr(_dul.DULServiceProvider, "_read_pdu_data", _read_pdu_data)  # noqa: B010


__all__ = ["Receiver", "Request", "attach", "detach", "encode_store_response", "install", "parse_command"]
