"""The C-STORE fast path (huren.dimse.fast_store) with real peers: it serves what pynetdicom's and
dcmtk's SCUs push, byte-exact, in PDUs of any size; the other services on the same association
still go to pynetdicom; pynetdicom's own C-STORE path (for what the fast path leaves it) still works."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    MRImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    Verification,
)

from huren.bootstrap import Container
from huren.dimse import fast_store, handlers, scu, status
from huren.dimse.server import DicomServer
from tests.conftest import ORG_A, missing
from tests.integration.test_dimse import AET, associate, gb18030_file, ident, part10_dataset, peer, sample, stored_bytes
from tests.integration.test_dimse_dcmtk import run


class _Spy:
    """Counts the C-STOREs each path served."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.fast = 0
        self.pynetdicom = 0
        complete = fast_store.Receiver._complete
        handle_store = handlers.handle_store

        def fast(rx: fast_store.Receiver) -> None:
            self.fast += 1
            complete(rx)

        def slow(event: Any, ctx: handlers.Context) -> Any:
            self.pynetdicom += 1
            return handle_store(event, ctx)

        monkeypatch.setattr(fast_store.Receiver, "_complete", fast)
        monkeypatch.setattr(handlers, "handle_store", slow)  # before the server binds its handlers


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> _Spy:
    return _Spy(monkeypatch)


@pytest.fixture
def server(container: Container, spy: _Spy) -> Iterator[DicomServer]:
    s = DicomServer(container.imaging, aet=AET, host="127.0.0.1", port=0)
    s.start()
    yield s
    s.stop()


def test_a_push_takes_the_fast_path_byte_exact(container: Container, server: DicomServer, spy: _Spy, tmp_path: Path) -> None:
    files = [sample("CT_small.dcm"), sample("MR_small.dcm"), gb18030_file(tmp_path)]
    assert [c for _, c in scu.store_files(peer(server), files)] == [0, 0, 0]
    assert (spy.fast, spy.pynetdicom) == (3, 0)
    for path in files:
        study, _, sop, _ = ident(path)
        assert part10_dataset(stored_bytes(container, study, sop)) == part10_dataset(path.read_bytes())


def test_storescu_with_small_pdus(container: Container, server: DicomServer, spy: _Spy, tmp_path: Path) -> None:
    """dcmtk's storescu sending 4 KiB PDUs: each data set arrives in many fragments."""
    if shutil.which("storescu") is None:
        missing("dcmtk storescu not installed")
    files = [gb18030_file(tmp_path, patient_id="GB-101"), sample("MR_small.dcm")]
    r = run(["storescu", "--max-send-pdu", "4096", "-aet", ORG_A[0], "-aec", AET, "127.0.0.1", str(server.port), *map(str, files)])
    assert r.returncode == 0, r.stderr
    assert spy.fast == 2
    for path in files:
        study, _, sop, _ = ident(path)
        assert stored_bytes(container, study, sop)[128:132] == b"DICM"


def test_other_services_share_the_association(container: Container, server: DicomServer, spy: _Spy, tmp_path: Path) -> None:
    ct = gb18030_file(tmp_path, patient_id="GB-202")
    mismatch = dcmread(sample("MR_small.dcm"))
    mismatch.StudyInstanceUID = generate_uid()
    mismatch.file_meta.MediaStorageSOPInstanceUID = generate_uid()  # the command names another instance
    bad = tmp_path / "mismatch.dcm"
    mismatch.save_as(bad)
    assoc = associate(server, [CTImageStorage, MRImageStorage, StudyRootQueryRetrieveInformationModelFind, Verification])
    assert assoc.is_established
    try:
        assert assoc.send_c_store(ct).Status == 0
        query = Dataset()
        query.QueryRetrieveLevel = "STUDY"
        query.StudyInstanceUID = ident(ct)[0]
        query.PatientName = ""
        found = [ds for rsp, ds in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind) if ds is not None]
        assert [str(ds.PatientName) for ds in found] == ["王小明"]
        assert assoc.send_c_echo().Status == 0
        assert assoc.send_c_store(bad).Status == status.DATASET_DOES_NOT_MATCH_SOP_CLASS
        assert assoc.send_c_store(sample("MR_small.dcm")).Status == 0
    finally:
        assoc.release()
    assert (spy.fast, spy.pynetdicom) == (3, 0)


def test_pynetdicoms_path_serves_what_the_fast_path_leaves(
    container: Container, spy: _Spy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fast_store, "attach", lambda assoc, receiver: None)  # no association gets the fast path
    s = DicomServer(container.imaging, aet=AET, host="127.0.0.1", port=0)
    s.start()
    try:
        files = [gb18030_file(tmp_path, patient_id="GB-303"), sample("CT_small.dcm")]
        assert [c for _, c in scu.store_files(peer(s), files)] == [0, 0]
    finally:
        s.stop()
    assert (spy.fast, spy.pynetdicom) == (0, 2)
    for path in files:
        study, _, sop, _ = ident(path)
        assert part10_dataset(stored_bytes(container, study, sop)) == part10_dataset(path.read_bytes())


def test_parallel_associations_each_keep_their_instances(container: Container, server: DicomServer, spy: _Spy, tmp_path: Path) -> None:
    import threading

    batches = []
    for k in range(4):
        d = tmp_path / f"b{k}"
        d.mkdir()
        batches.append([gb18030_file(d, patient_id=f"GB-4{k}{j}") for j in range(3)])
    codes: list[list[int]] = [[] for _ in batches]

    def push(k: int) -> None:
        codes[k] = [c for _, c in scu.store_files(peer(server), batches[k])]

    threads = [threading.Thread(target=push, args=(k,)) for k in range(len(batches))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert codes == [[0, 0, 0]] * 4
    assert spy.fast == 12
    for path in (p for b in batches for p in b):
        study, _, sop, _ = ident(path)
        assert part10_dataset(stored_bytes(container, study, sop)) == part10_dataset(path.read_bytes())
