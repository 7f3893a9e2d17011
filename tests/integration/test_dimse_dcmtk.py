"""The platform's DICOM AE with dcmtk's tools as the peers (Debian's dcmtk: echoscu, storescu,
findscu, movescu, getscu): round trips byte-exact, a GB18030 name through C-FIND, refusals."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from pydicom import dcmread

from huren.bootstrap import Container
from huren.dimse import scu, status
from huren.dimse.server import DicomServer
from tests.conftest import ORG_A, missing
from tests.integration.test_dimse import (
    AET,
    NAME,
    dicom,  # noqa: F401  (the fixture)
    gb18030_file,
    ident,
    part10_dataset,
    peer,
    sample,
    stored_bytes,
)

TOOLS = ("echoscu", "storescu", "findscu", "movescu", "getscu")


@pytest.fixture(autouse=True)
def _dcmtk() -> None:
    absent = [t for t in TOOLS if shutil.which(t) is None]
    if absent:
        missing(f"dcmtk tools not installed: {', '.join(absent)}")


def run(args: Sequence[str | bytes], cwd: Path | None = None, *, nagle: bool = False) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ)
    env.pop("TCP_NODELAY", None)  # dcmtk's own switch: left unset, Debian's tools keep Nagle's algorithm on
    if not nagle:
        env["TCP_NODELAY"] = "1"
    return subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, timeout=120, check=False)


def net(server: DicomServer, calling: str = ORG_A[0]) -> list[str]:
    return ["-aet", calling, "-aec", AET, "127.0.0.1", str(server.port)]


def test_echoscu_and_a_refused_calling_ae(dicom: DicomServer) -> None:  # noqa: F811
    assert run(["echoscu", *net(dicom)]).returncode == 0
    r = run(["echoscu", *net(dicom, "STRANGER")])
    assert r.returncode != 0 and b"Calling AE Title Not Recognized" in r.stderr
    assert run(["echoscu", *net(dicom)]).returncode == 0


def _storescp(directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    """dcmtk's storescp writing exactly what it receives (+B): the reference for "as sent"."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen(["storescp", "+B", "-od", str(directory), str(port)], cwd=directory)
    for _ in range(100):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, port
        time.sleep(0.05)
    proc.kill()
    pytest.fail("storescp did not start")


def test_storescu_round_trip_is_byte_exact(container: Container, dicom: DicomServer, tmp_path: Path) -> None:  # noqa: F811
    """storescu re-encodes a file's dataset as it sends it (dcmdata): what huren keeps equals what
    storescu sent, byte for byte — the same send received by storescp +B."""
    files = [sample("CT_small.dcm"), sample("MR_small.dcm"), gb18030_file(tmp_path)]
    r = run(["storescu", *net(dicom), *map(str, files)], nagle=True)  # as a front-end would run it
    assert r.returncode == 0, r.stderr
    ref = tmp_path / "ref"
    ref.mkdir()
    proc, port = _storescp(ref)
    try:
        r = run(["storescu", "-aet", ORG_A[0], "-aec", "ANY", "127.0.0.1", str(port), *map(str, files)])
        assert r.returncode == 0, r.stderr
    finally:
        proc.terminate()
        proc.wait(10)
    for path in files:
        study, _, sop, _ = ident(path)
        [sent] = list(ref.glob(f"*{sop}*"))
        assert part10_dataset(stored_bytes(container, study, sop)) == part10_dataset(sent.read_bytes())


def test_storescu_of_another_institutions_study_fails(dicom: DicomServer, tmp_path: Path) -> None:  # noqa: F811
    path = gb18030_file(tmp_path)
    assert run(["storescu", *net(dicom), str(path)]).returncode == 0
    r = run(["storescu", "-v", *net(dicom, "457759933"), str(path)])
    assert r.returncode != 0 and b"Received Store Response (Unknown Status: 0x124)" in r.stderr, r.stderr
    assert run(["echoscu", *net(dicom)]).returncode == 0


def test_findscu_by_a_gb18030_name(dicom: DicomServer, tmp_path: Path) -> None:  # noqa: F811
    path = gb18030_file(tmp_path)
    assert [s for _, s in scu.store_files(peer(dicom), [path, sample("MR_small.dcm")])] == [0, 0]
    out = tmp_path / "rsp"
    out.mkdir()
    r = run([
        "findscu", "-S", "-X", "-od", str(out), *net(dicom), "-k", "QueryRetrieveLevel=STUDY",
        "-k", "SpecificCharacterSet=GB18030", b"-k", b"PatientName=" + "王*".encode("gb18030"),
        "-k", "StudyInstanceUID", "-k", "PatientID",
    ])
    assert r.returncode == 0, r.stderr
    answers = [dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]
    assert len(answers) == 1
    assert answers[0].SpecificCharacterSet == "ISO_IR 192"
    assert str(answers[0].PatientName) == NAME and answers[0].StudyInstanceUID == ident(path)[0]


def test_movescu_and_getscu_receive_the_stored_bytes(container: Container, dicom: DicomServer, tmp_path: Path) -> None:  # noqa: F811
    path = gb18030_file(tmp_path)
    assert [s for _, s in scu.store_files(peer(dicom), [path])] == [0]
    study = ident(path)[0]
    with socket.socket() as s:  # a free port for movescu's own storage SCP
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    container.imaging.nodes.add_node("MOVESCU", ORG_A[0], hosts="127.0.0.1", port=port, purpose="pacs")
    moved = tmp_path / "moved"
    moved.mkdir()
    r = run([
        "movescu", "-S", "-aem", "MOVESCU", "+P", str(port), "+B", *net(dicom),
        "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}",
    ], cwd=moved)  # movescu writes what it receives into its working directory
    assert r.returncode == 0, r.stderr
    [got] = list(moved.iterdir())
    assert part10_dataset(got.read_bytes()) == part10_dataset(path.read_bytes())

    r = run([
        "movescu", "-S", "-aem", "NOWHERE", *net(dicom), "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}",
    ], cwd=moved)
    assert r.returncode != 0 and b"Refused: MoveDestinationUnknown" in r.stderr, r.stderr

    fetched = tmp_path / "fetched"
    fetched.mkdir()
    r = run([
        "getscu", "-S", "+B", "-od", str(fetched), *net(dicom), "-k", "QueryRetrieveLevel=STUDY",
        "-k", f"StudyInstanceUID={study}",
    ], cwd=fetched)
    assert r.returncode == 0, r.stderr
    [got] = list(fetched.iterdir())
    assert part10_dataset(got.read_bytes()) == part10_dataset(path.read_bytes())
    assert scu.echo(peer(dicom)) == status.SUCCESS
