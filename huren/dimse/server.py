"""The platform's DICOM AE (pynetdicom): C-ECHO, C-STORE for every storage SOP class, C-FIND /
C-MOVE / C-GET (Patient Root and Study Root), Storage Commitment Push Model.

``DicomServer(imaging, aet=…, host=…, port=…).start()`` listens in a thread; ``stop()`` ends it.
C-STORE is served by :mod:`huren.dimse.fast_store` in each association's DUL thread; everything
else by pynetdicom's service classes and the handlers bound below.
Only an institution's calling AE title is accepted (``nodes.resolve_calling_ae``), only the
configured called AE title (``HUREN_DICOM_AET``). TCP_NODELAY is set on every socket (EVT_CONN_OPEN).
"""

from __future__ import annotations

import contextlib
import logging
import socket
from typing import TYPE_CHECKING, Any

from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, _config, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StorageCommitmentPushModel,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)
from pynetdicom.transport import AssociationSocket

from huren.dimse import commitment, contexts, fast_store, file_meta, handlers, query, reactor, sockets

if TYPE_CHECKING:
    from pynetdicom.transport import ThreadedAssociationServer

    from huren.services.imaging import ImagingService
    from huren.services.imaging_forward import ImageForwarder

LOG = logging.getLogger("huren.dimse")
#: the largest P-DATA PDU the AE accepts (and offers as requestor): big PDUs, few reactor turns
MAX_PDU = 1024 * 1024


def configure_pynetdicom() -> None:
    """Process-wide pynetdicom settings huren relies on (set once, before any association):
    received C-STORE datasets go to a temp file as received; a C-STORE of a file path sends its
    bytes without decoding; no per-message logging and no identifiers (patient data) in logs; the
    reactors woken by their data rather than by their polling (``huren.dimse.reactor``); the
    received file's meta written without pydicom (``huren.dimse.file_meta``, the same bytes);
    C-STORE served in the DUL thread (``huren.dimse.fast_store``); each accepted association's
    contexts copied without deepcopy (``huren.dimse.contexts``)."""
    _config.STORE_RECV_CHUNKED_DATASET = True
    _config.STORE_SEND_CHUNKED_DATASET = True
    _config.LOG_HANDLER_LEVEL = "none"
    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    AssociationSocket._shutdown_socket = _shutdown_socket  # type: ignore[method-assign]
    reactor.install()
    file_meta.install()
    fast_store.install()
    contexts.install()


def _shutdown_socket(self: AssociationSocket) -> None:
    """pynetdicom 3.0.4 closes a socket only when ``shutdown()`` succeeded, so a connection that
    failed (ENOTCONN) leaks its socket: shut down if possible, close in any case."""
    sock = self.socket
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


#: the transfer syntaxes accepted for storage, in the order pynetdicom (the acceptor's order wins)
#: picks them: explicit VR little endian first, so that a sender offering it with others sends an
#: explicit-VR file as it is; then the compressed ones (kept as received); implicit VR last of the
#: uncompressed (a sender that offers only it still can push)
STORAGE_SYNTAXES = [
    ExplicitVRLittleEndian,
    *(ts for ts in ALL_TRANSFER_SYNTAXES if ts not in (ExplicitVRLittleEndian, ImplicitVRLittleEndian,
                                                       DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian)),
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
]


def build_ae(aet: str) -> AE:
    """The AE with its supported presentation contexts (storage in SCU and SCP role for C-GET)."""
    ae = AE(ae_title=aet)
    ae.require_called_aet = True
    ae.maximum_pdu_size = MAX_PDU
    ae.maximum_associations = 64
    ae.network_timeout = 120
    ae.acse_timeout = 30
    ae.dimse_timeout = 60
    for cx in AllStoragePresentationContexts:
        if cx.abstract_syntax is not None:
            ae.add_supported_context(cx.abstract_syntax, STORAGE_SYNTAXES, scu_role=True, scp_role=True)
    for uid in (
        Verification,
        PatientRootQueryRetrieveInformationModelFind,
        StudyRootQueryRetrieveInformationModelFind,
        PatientRootQueryRetrieveInformationModelMove,
        StudyRootQueryRetrieveInformationModelMove,
        PatientRootQueryRetrieveInformationModelGet,
        StudyRootQueryRetrieveInformationModelGet,
        StorageCommitmentPushModel,
    ):
        ae.add_supported_context(uid)
    return ae


def event_handlers(ctx: handlers.Context) -> list[Any]:
    return [
        (evt.EVT_CONN_OPEN, sockets.nodelay),
        (evt.EVT_PDU_SENT, sockets.quickack),
        (evt.EVT_REQUESTED, handlers.handle_requested, [ctx]),
        (evt.EVT_PDU_RECV, handlers.handle_pdu_recv, [ctx]),
        (evt.EVT_RELEASED, handlers.handle_finished, [ctx]),
        (evt.EVT_ABORTED, handlers.handle_finished, [ctx]),
        (evt.EVT_C_ECHO, handlers.handle_echo, [ctx]),
        (evt.EVT_C_STORE, handlers.handle_store, [ctx]),
        (evt.EVT_C_FIND, query.handle_find, [ctx]),
        (evt.EVT_C_MOVE, query.handle_move, [ctx]),
        (evt.EVT_C_GET, query.handle_get, [ctx]),
        (evt.EVT_N_ACTION, commitment.handle_action, [ctx]),
        (evt.EVT_DIMSE_SENT, commitment.handle_sent, [ctx]),
    ]


class DicomServer:
    """The SCP, listening in a thread of the calling process."""

    def __init__(
        self, imaging: ImagingService, *, aet: str = "HUREN", host: str = "127.0.0.1", port: int = 11112,
        max_instance_bytes: int = 512 * 1024 * 1024, forward: ImageForwarder | None = None,
    ) -> None:
        if not aet or len(aet) > 16 or not aet.isascii() or "\\" in aet or aet != aet.strip():
            raise ValueError("HUREN_DICOM_AET（DICOM AE 名称）须为 1–16 个 ASCII 字符，不含反斜杠，首尾不留空格")
        self.ctx = handlers.Context(imaging=imaging, aet=aet, max_instance_bytes=max_instance_bytes, forward=forward)
        self.host = host
        self.port = port
        self._server: ThreadedAssociationServer | None = None
        self._ae: AE | None = None

    def start(self) -> int:
        """Listen; returns the bound port (``port=0`` picks a free one)."""
        configure_pynetdicom()
        self._ae = build_ae(self.ctx.aet)
        server = self._ae.start_server((self.host, self.port), block=False, evt_handlers=event_handlers(self.ctx))
        if server is None:  # block=False always returns the server
            raise RuntimeError("pynetdicom did not start the server")
        self._server = server
        self.port = int(server.server_address[1])
        LOG.info("DICOM 服务已启动：AE %s，%s:%d", self.ctx.aet, self.host, self.port)
        return self.port

    @property
    def server(self) -> ThreadedAssociationServer:
        if self._server is None:
            raise RuntimeError("DicomServer not started")
        return self._server

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        if self._ae is not None:
            self._ae.shutdown()
            self._ae = None
