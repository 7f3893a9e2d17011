"""The C-STORE fast path's pieces without a network: the command parsed, the response encoded as
pynetdicom encodes it, fragments assembled, what is not a C-STORE left to pynetdicom, protocol errors."""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field
from typing import IO, Any

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pynetdicom.dimse_messages import C_FIND_RQ, C_STORE_RQ, C_STORE_RSP
from pynetdicom.dimse_primitives import C_FIND, C_STORE
from pynetdicom.pdu import P_DATA_TF

from huren.dimse import fast_store
from huren.dimse.fast_store import ProtocolError, Receiver, Request, TooLargeInstance

CT = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT = "1.2.840.10008.1.2.1"
FIND = "1.2.840.10008.5.1.4.1.2.2.1"


@dataclass
class _Context:
    abstract_syntax: str
    transfer_syntax: list[str]


@dataclass
class _Dimse:
    message: Any = None


@dataclass(eq=False)
class _Assoc:
    dimse: _Dimse = field(default_factory=_Dimse)
    _accepted_cx: dict[int, _Context] = field(default_factory=lambda: {1: _Context(CT, [EXPLICIT]), 3: _Context(FIND, [EXPLICIT])})


def _store_rq_command(message_id: int = 5, sop: str = "1.2.3.4", klass: str = CT) -> bytes:
    p = C_STORE()
    p.MessageID, p.AffectedSOPClassUID, p.AffectedSOPInstanceUID, p.Priority = message_id, klass, sop, 2
    p.DataSet = io.BytesIO(b"")
    m = C_STORE_RQ()
    m.primitive_to_message(p)
    return _command_bytes(m)


def _command_bytes(message: Any) -> bytes:
    """The encoded command set of a pynetdicom message (its first P-DATA's command fragments)."""
    out = b""
    for pdata in message.encode_msg(1, 1 << 20):
        for _, value in pdata.presentation_data_value_list:
            if value[0] & 0x01:
                out += value[1:]
    return out


def _find_command() -> bytes:
    p = C_FIND()
    p.MessageID, p.AffectedSOPClassUID, p.Priority = 9, FIND, 2
    ident = Dataset()
    ident.QueryRetrieveLevel = "STUDY"
    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, False
    write_dataset(buf, ident)
    p.Identifier = io.BytesIO(buf.getvalue())
    m = C_FIND_RQ()
    m.primitive_to_message(p)
    return _command_bytes(m)


class _Store:
    def __init__(self, answer: tuple[int, str | None] = (0, None)) -> None:
        self.calls: list[tuple[Request, bytes]] = []
        self.answer = answer

    def __call__(self, request: Request, src: IO[bytes]) -> tuple[int, str | None]:
        self.calls.append((request, src.read()))
        return self.answer


def test_the_response_is_pynetdicoms_encoding_byte_for_byte() -> None:
    for code, comment in ((0x0000, None), (0xA700, "too-large:size"), (0xB007, None)):
        p = C_STORE()
        p.MessageIDBeingRespondedTo, p.AffectedSOPClassUID, p.AffectedSOPInstanceUID, p.Status = 7, CT, "1.2.3.45", code
        if comment:
            p.ErrorComment = comment
        m = C_STORE_RSP()
        m.primitive_to_message(p)
        [pdata] = list(m.encode_msg(3, 16384))
        pdu = P_DATA_TF()
        pdu.from_primitive(pdata)
        assert fast_store.encode_store_response(Request(3, 7, CT, "1.2.3.45", EXPLICIT), code, comment) == pdu.encode()


def test_parse_command_reads_pynetdicoms_c_store_rq() -> None:
    cmd = fast_store.parse_command(_store_rq_command(11, "1.2.3.99"))
    assert cmd is not None
    assert struct.unpack("<H", cmd[0x0100])[0] == fast_store.C_STORE_RQ
    assert struct.unpack("<H", cmd[0x0110])[0] == 11
    assert cmd[0x1000].rstrip(b"\0") == b"1.2.3.99"
    assert fast_store.parse_command(b"\x08\x00\x10\x00\x02\x00\x00\x00AB") is None  # not group 0000
    assert fast_store.parse_command(b"\x00\x00\x00\x00\xff\x00\x00\x00") is None  # length past the end


def _dataset() -> bytes:
    ds = dcmread(str(get_testdata_file("CT_small.dcm")))
    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, False
    write_dataset(buf, ds)
    return buf.getvalue()


def _feed(rx: Receiver, items: list[tuple[int, int, bytes]]) -> list[tuple[int, bytes]]:
    passthrough: list[tuple[int, bytes]] = []
    for cid, control, data in items:
        rx.feed(cid, control, memoryview(data), passthrough)
    return passthrough


def test_a_c_store_in_fragments_is_assembled_and_answered() -> None:
    assoc, store = _Assoc(), _Store()
    rx = Receiver(assoc, store, max_instance_bytes=1 << 20, spool_dir=None)  # type: ignore[arg-type]
    cmd, data = _store_rq_command(5, "1.2.3.4"), _dataset()
    items = [(1, 0x01, cmd[:100]), (1, 0x03, cmd[100:])]  # a command in two fragments, the first naming C-STORE
    items += [(1, 0x00, data[i:i + 1000]) for i in range(0, len(data) - 1000, 1000)]
    items.append((1, 0x02, data[len(items[2:]) * 1000:]))
    assert _feed(rx, items) == []
    [(request, stored)] = store.calls
    assert request == Request(1, 5, CT, "1.2.3.4", EXPLICIT)
    assert stored[128:132] == b"DICM" and stored.endswith(data)
    meta = dcmread(io.BytesIO(stored), stop_before_pixels=True).file_meta
    assert (meta.MediaStorageSOPInstanceUID, meta.TransferSyntaxUID) == ("1.2.3.4", EXPLICIT)
    [response] = rx.take_responses()
    assert response == fast_store.encode_store_response(request, 0, None)


def test_other_commands_go_to_pynetdicom_untouched() -> None:
    assoc, store = _Assoc(), _Store()
    rx = Receiver(assoc, store, max_instance_bytes=1 << 20, spool_dir=None)  # type: ignore[arg-type]
    find = _find_command()
    assert _feed(rx, [(3, 0x03, find)]) == [(3, b"\x03" + find)]
    cmd = _store_rq_command()
    tiny = [(1, 0x01, cmd[:6]), (1, 0x03, cmd[6:])]  # the first fragment too short to name its command
    assert _feed(rx, tiny) == [(1, b"\x01" + cmd[:6]), (1, b"\x03" + cmd[6:])]
    assoc.dimse.message = object()  # pynetdicom is assembling a message: everything is its
    assert _feed(rx, [(1, 0x03, cmd)]) == [(1, b"\x03" + cmd)]
    assoc.dimse.message = None
    other_class = _store_rq_command(klass="1.2.840.10008.5.1.4.1.1.4")  # not the context's class: pynetdicom answers
    assert _feed(rx, [(1, 0x03, other_class)]) == [(1, b"\x03" + other_class)]
    unknown_context = [(9, 0x03, cmd)]
    assert _feed(rx, unknown_context) == [(9, b"\x03" + cmd)]
    assert store.calls == []


def test_protocol_errors_and_the_size_bound() -> None:
    assoc = _Assoc()  # the receiver holds its association weakly
    rx = Receiver(assoc, _Store(), max_instance_bytes=1 << 20, spool_dir=None)  # type: ignore[arg-type]
    cmd = _store_rq_command()
    with pytest.raises(ProtocolError):
        _feed(rx, [(1, 0x03, cmd), (3, 0x02, b"\x08\x00")])  # its data set on another context
    rx = Receiver(assoc, _Store(), max_instance_bytes=1 << 20, spool_dir=None)  # type: ignore[arg-type]
    with pytest.raises(ProtocolError):
        _feed(rx, [(1, 0x03, cmd), (1, 0x03, cmd)])  # a command where its data set was due
    store = _Store()
    rx = Receiver(assoc, store, max_instance_bytes=4096, spool_dir=None)  # type: ignore[arg-type]
    with pytest.raises(TooLargeInstance):
        _feed(rx, [(1, 0x03, cmd), (1, 0x00, b"\0" * 3000), (1, 0x00, b"\0" * 3000)])
    assert store.calls == []
    # after a drop the receiver takes the next C-STORE afresh
    rx.drop()
    assert _feed(rx, [(1, 0x03, cmd), (1, 0x02, b"\x08\x00\x16\x00")]) == []
    assert len(store.calls) == 1
