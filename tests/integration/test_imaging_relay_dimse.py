"""XC-E-note over DIMSE: a C-MOVE / C-GET of a study the platform does not hold is served from the
fallback platform (Debian's Orthanc with its DICOMweb plugin): the instances fetched by WADO-RS,
sent to dcmtk's movescu / getscu and to a pynetdicom SCP byte-exact as the fallback keeps them,
with the usual sub-operation counts; the fallback down → 0xC000 with an ASCII comment; C-FIND is
not relayed; every relayed read in the access log."""

from __future__ import annotations

import dataclasses
import io
import socket
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, StoragePresentationContexts, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)
from sqlalchemy import select

from bench.orthanc import OrthancServer, free_port, orthanc_missing
from huren.dimse import status
from huren.dimse.server import DicomServer
from huren.services.container import Container
from huren.services.imaging_forward import ImageForwarder, Peer
from huren.store.tables import access_log
from tests.conftest import ORG_A, missing
from tests.integration.test_dimse import Receiver, associate, part10_dataset
from tests.integration.test_dimse_dcmtk import TOOLS, net, run

PEER_NAME = "区域影像云（备用）"
USERS = {"relay": "relay-口令"}
Files = list[tuple[bytes, pydicom.Dataset]]


@pytest.fixture(scope="module")
def fallback(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OrthancServer, Files]]:
    """An Orthanc holding one study of three instances: two CT in explicit VR little endian, one MR
    in implicit VR little endian (a syntax the relay must negotiate without being told it)."""
    reason = orthanc_missing()
    if reason:
        missing(reason)
    import shutil

    absent = [t for t in TOOLS if shutil.which(t) is None]
    if absent:
        missing(f"dcmtk tools not installed: {', '.join(absent)}")
    with OrthancServer(tmp_path_factory.mktemp("fallback"), users=USERS) as o:
        study, series = generate_uid(), generate_uid()
        files: Files = []
        for n, (name, implicit) in enumerate((("CT_small.dcm", False), ("CT_small.dcm", False), ("MR_small.dcm", True))):
            ds = pydicom.dcmread(str(get_testdata_file(name)))
            ds.SpecificCharacterSet = "ISO_IR 192"
            ds.PatientName, ds.PatientID = "李四", "PEER-1"
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, series, generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.InstanceNumber = n + 1
            if implicit:
                ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
            buf = io.BytesIO()
            ds.save_as(buf, implicit_vr=implicit, little_endian=True)
            o.upload(buf.getvalue())
            files.append((buf.getvalue(), ds))
        yield o, files


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A pynetdicom storage SCP (Verification too: a refused C-MOVE associates before its status)."""
    r = Receiver()
    ae = AE(ae_title="DEST")
    ae.add_supported_context(Verification)
    for cx in StoragePresentationContexts:
        assert cx.abstract_syntax is not None
        ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
    server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, r.handle)])
    assert server is not None
    r.port = int(server.server_address[1])
    yield r
    server.shutdown()


def _forwarder(container: Container, url: str, tmp_path: Path, **kw: object) -> ImageForwarder:
    user, password = next(iter(USERS.items()))
    peer = Peer(name=PEER_NAME, url=url, username=user, password=password, timeout=5.0, **kw)  # type: ignore[arg-type]
    return ImageForwarder(peer, container.audit, container.clock, public_root="https://huren.example/dicom-web",
                          spool_dir=tmp_path / "spool")


@pytest.fixture
def relaying(container: Container, fallback: tuple[OrthancServer, Files], tmp_path: Path) -> Iterator[DicomServer]:
    """The platform's AE as ``huren serve`` starts it (``start_dicom``), relaying to the fallback
    the container was built with (``Container.imaging_forward`` → ``Context.forward``)."""
    from huren.cli.serve import start_dicom

    fw = _forwarder(container, fallback[0].http_url + "/dicom-web", tmp_path)
    served = dataclasses.replace(container, settings=container.settings.model_copy(update={"dicom_port": _port()}),
                                 imaging_forward=fw)
    server = start_dicom(served)
    assert server is not None and server.ctx.forward is fw
    yield server
    server.stop()
    fw.close()


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _originals(files: Files) -> dict[str, bytes]:
    return {str(ds.SOPInstanceUID): part10_dataset(data) for data, ds in files}


def _received(directory: Path) -> dict[str, bytes]:
    return {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID): part10_dataset(p.read_bytes())
            for p in directory.iterdir()}


def test_movescu_and_getscu_of_a_study_not_held_receive_the_fallbacks_bytes(
    container: Container, relaying: DicomServer, fallback: tuple[OrthancServer, Files], tmp_path: Path
) -> None:
    _, files = fallback
    study = str(files[0][1].StudyInstanceUID)
    port = _port()
    container.imaging.nodes.add_node("MOVESCU", ORG_A[0], hosts="127.0.0.1", port=port, purpose="pacs")
    moved = tmp_path / "moved"
    moved.mkdir()
    r = run(["movescu", "-v", "-S", "-aem", "MOVESCU", "+P", str(port), "+B", *net(relaying),
             "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}"], cwd=moved)
    assert r.returncode == 0, r.stderr
    assert _received(moved) == _originals(files)  # every instance, byte for byte as the fallback keeps it
    assert b"Received Move Response 3 (Pending)" in r.stderr and b"Final Move Response (Success)" in r.stderr, r.stderr

    fetched = tmp_path / "fetched"
    fetched.mkdir()
    series, sop = str(files[1][1].SeriesInstanceUID), str(files[1][1].SOPInstanceUID)
    r = run(["getscu", "-S", "+B", "-od", str(fetched), *net(relaying), "-k", "QueryRetrieveLevel=IMAGE",
             "-k", f"StudyInstanceUID={study}", "-k", f"SeriesInstanceUID={series}", "-k", f"SOPInstanceUID={sop}"],
            cwd=fetched)
    assert r.returncode == 0, r.stderr
    # one CT, as stored (getscu offers explicit VR first for every storage class: an implicit-VR file would
    # be re-encoded on the way, for a relayed study as for a held one)
    assert _received(fetched) == {sop: _originals(files)[sop]}

    with container.db.read() as conn:
        logged = conn.execute(select(access_log.c.org_code, access_log.c.target)
                              .where(access_log.c.action == "image.forward")).all()
    assert logged and all(org == ORG_A[0] and t.startswith(PEER_NAME + ":/studies/" + study) for org, t in logged)
    assert not list((tmp_path / "spool").iterdir())  # every spooled file removed once sent


def test_pynetdicom_move_counts_and_a_study_neither_holds(
    container: Container, relaying: DicomServer, fallback: tuple[OrthancServer, Files], receiver: Receiver
) -> None:
    _, files = fallback
    container.imaging.nodes.add_node("DEST", ORG_A[0], hosts="127.0.0.1", port=receiver.port, purpose="pacs")
    model = StudyRootQueryRetrieveInformationModelMove
    q = Dataset()
    q.QueryRetrieveLevel = "SERIES"
    q.StudyInstanceUID = files[0][1].StudyInstanceUID
    q.SeriesInstanceUID = files[0][1].SeriesInstanceUID
    assoc = associate(relaying, [model])
    try:
        responses = [rsp for rsp, _ in assoc.send_c_move(q, "DEST", model)]
        q.StudyInstanceUID = generate_uid()  # neither platform holds it: matches nothing
        [nothing] = [rsp for rsp, _ in assoc.send_c_move(q, "DEST", model)]
    finally:
        assoc.release()
    pending = [r for r in responses if r.Status == status.PENDING]
    assert [r.NumberOfRemainingSuboperations for r in pending] == [2, 1, 0]
    final = responses[-1]
    assert final.Status == status.SUCCESS and final.NumberOfCompletedSuboperations == 3
    assert final.NumberOfFailedSuboperations == 0
    assert receiver.got == _originals(files)
    assert nothing.Status == status.SUCCESS and nothing.NumberOfCompletedSuboperations == 0


def test_c_find_is_not_relayed(relaying: DicomServer, fallback: tuple[OrthancServer, Files]) -> None:
    """C-FIND answers what the index holds: the fallback's study is not among its answers."""
    model = StudyRootQueryRetrieveInformationModelFind
    q = Dataset()
    q.QueryRetrieveLevel = "STUDY"
    q.StudyInstanceUID = fallback[1][0][1].StudyInstanceUID
    assoc = associate(relaying, [model])
    try:
        answers = [(rsp.Status, found) for rsp, found in assoc.send_c_find(q, model)]
    finally:
        assoc.release()
    assert answers == [(status.SUCCESS, None)]


def test_the_fallback_down_answers_unable_to_process(
    container: Container, fallback: tuple[OrthancServer, Files], receiver: Receiver, tmp_path: Path
) -> None:
    """The fallback unreachable: 0xC000 with the rule in Error Comment (ASCII), nothing sent; without
    a fallback configured the study not held matches nothing, as before."""
    server = DicomServer(container.imaging, aet="HUREN", host="127.0.0.1", port=0)
    fw = _forwarder(container, f"http://127.0.0.1:{free_port()}/dicom-web", tmp_path)
    server.start()
    container.imaging.nodes.add_node("DEST", ORG_A[0], hosts="127.0.0.1", port=receiver.port, purpose="pacs")
    model = StudyRootQueryRetrieveInformationModelMove
    q = Dataset()
    q.QueryRetrieveLevel = "STUDY"
    q.StudyInstanceUID = fallback[1][0][1].StudyInstanceUID
    try:
        assoc = associate(server, [model])
        try:
            [plain] = [rsp for rsp, _ in assoc.send_c_move(q, "DEST", model)]
            server.ctx.forward = fw
            [down] = [rsp for rsp, _ in assoc.send_c_move(q, "DEST", model)]
        finally:
            assoc.release()
    finally:
        server.stop()
        fw.close()
    assert plain.Status == status.SUCCESS and plain.NumberOfCompletedSuboperations == 0
    assert down.Status == status.UNABLE_TO_PROCESS, hex(down.Status)
    assert down.ErrorComment == "platform_unavailable:unavailable"
    assert receiver.got == {}



def test_failover_sends_a_held_study_from_the_fallback_while_the_archive_is_down(
    database_url: str, fallback: tuple[OrthancServer, Files], receiver: Receiver, tmp_path: Path
) -> None:
    """HUREN_IMAGING_FALLBACK_FAILOVER: a held study whose archive (an Orthanc) is down is sent from the
    fallback, byte-exact; without failover its sub-operations fail, as for any unreadable file."""
    from huren.services.imaging import Sender
    from tests.integration.test_orthanc_archive import USERS as ARCHIVE_USERS
    from tests.integration.test_orthanc_archive import orthanc_container

    o, _ = fallback
    archive = OrthancServer(tmp_path / "archive", dicomweb=False, users=ARCHIVE_USERS).start()
    c = orthanc_container(database_url, tmp_path, archive)
    server = DicomServer(c.imaging, aet="HUREN", host="127.0.0.1", port=0)
    url = o.http_url + "/dicom-web"
    plain, failover = _forwarder(c, url, tmp_path), _forwarder(c, url, tmp_path, failover=True)
    try:
        study, series = generate_uid(), generate_uid()
        sender = Sender(ORG_A[0], f"dimse:{ORG_A[0]}@127.0.0.1", "dimse")
        files: Files = []
        for n in (1, 2):
            ds = pydicom.dcmread(str(get_testdata_file("CT_small.dcm")))
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, series, generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.InstanceNumber = n
            buf = io.BytesIO()
            ds.save_as(buf)
            c.imaging.store_instance(sender, io.BytesIO(buf.getvalue()))
            o.upload(buf.getvalue())  # the fallback holds the same study
            files.append((buf.getvalue(), ds))
        c.imaging.commit_study(sender, study)
        c.imaging.nodes.add_node("DEST", ORG_A[0], hosts="127.0.0.1", port=receiver.port, purpose="pacs")
        server.start()
        archive.stop()  # the archive is down: the index still answers
        model = StudyRootQueryRetrieveInformationModelMove
        q = Dataset()
        q.QueryRetrieveLevel = "STUDY"
        q.StudyInstanceUID = study
        assoc = associate(server, [model])
        try:
            server.ctx.forward = plain
            failed = [rsp for rsp, _ in assoc.send_c_move(q, "DEST", model)][-1]
            assert receiver.got == {}
            server.ctx.forward = failover
            moved = [rsp for rsp, _ in assoc.send_c_move(q, "DEST", model)][-1]
        finally:
            assoc.release()
    finally:
        server.stop()
        plain.close()
        failover.close()
        c.close()
        archive.stop()
    assert failed.Status != status.SUCCESS and failed.NumberOfFailedSuboperations == 2
    assert moved.Status == status.SUCCESS and moved.NumberOfCompletedSuboperations == 2
    assert receiver.got == _originals(files)


def test_a_second_huren_as_the_fallback(container: Container, receiver: Receiver, tmp_path: Path) -> None:
    """The fallback is another huren (uvicorn on a free port, a hospital account's token): its QIDO
    names each instance's transfer syntax, so an implicit-VR file travels in its own syntax,
    byte-exact, on the one context proposed for it."""
    import requests

    from huren.bootstrap import build
    from huren.context import Clock, Principal
    from huren.services.imaging import Sender
    from huren.services.imaging_forward_dimse import remote_instances
    from huren.settings import Settings
    from tests.conftest import HASH_N, ORG_B, SECRET, add_fixture_orgs
    from tests.integration.test_imaging_forward import _uvicorn

    other = build(Settings(data_dir=tmp_path / "peer", secret_key=SECRET, password_hash_n=HASH_N), clock=Clock(), upgrade=True)
    server = DicomServer(container.imaging, aet="HUREN", host="127.0.0.1", port=0)
    try:
        add_fixture_orgs(other)
        study, series = generate_uid(), generate_uid()
        sender = Sender(ORG_B[0], f"stow:{ORG_B[0]}/test", "stow")
        files: Files = []
        for n, (name, implicit) in enumerate((("CT_small.dcm", False), ("MR_small.dcm", True))):
            ds = pydicom.dcmread(str(get_testdata_file(name)))
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, series, generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.InstanceNumber = n + 1
            if implicit:
                ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
            buf = io.BytesIO()
            ds.save_as(buf, implicit_vr=implicit, little_endian=True)
            other.imaging.store_instance(sender, io.BytesIO(buf.getvalue()))
            files.append((buf.getvalue(), ds))
        with _uvicorn(other) as base:
            r = requests.post(f"{base}/api/v1/auth/token", json={"org_code": ORG_B[0], "username": ORG_B[4],
                                                                 "password": ORG_B[5]}, timeout=10)
            assert r.status_code == 200, r.text
            peer = Peer(name="兄弟平台", url=f"{base}/dicom-web", token=r.json()["access_token"], timeout=5.0)
            fw = ImageForwarder(peer, container.audit, container.clock, public_root="https://huren.example/dicom-web",
                                spool_dir=tmp_path / "spool")
            listed = remote_instances(fw, Principal(ORG_A[0], "dimse:TEST", "hospital"), study)
            assert sorted(str(i.transfer_syntax) for i in listed) == ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"]
            server.ctx.forward = fw
            server.start()
            container.imaging.nodes.add_node("DEST", ORG_A[0], hosts="127.0.0.1", port=receiver.port, purpose="pacs")
            model = StudyRootQueryRetrieveInformationModelMove
            q = Dataset()
            q.QueryRetrieveLevel = "STUDY"
            q.StudyInstanceUID = study
            assoc = associate(server, [model])
            try:
                final = [rsp for rsp, _ in assoc.send_c_move(q, "DEST", model)][-1]
            finally:
                assoc.release()
                fw.close()
    finally:
        server.stop()
        other.close()
    assert final.Status == status.SUCCESS and final.NumberOfCompletedSuboperations == 2
    assert receiver.got == _originals(files)
