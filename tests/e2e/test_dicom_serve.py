"""``huren serve`` with ``HUREN_DICOM_PORT``: the DICOM SCP starts with the platform and stops with
it; ``huren dicom node add | list | remove``, ``huren dicom echo`` and ``huren dicom move`` (the
platform's own SCP standing in for a hospital PACS) as real processes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, StoragePresentationContexts, evt

from huren.dimse import scu
from huren.errors import PlatformUnavailable
from tests.conftest import ORG_A
from tests.e2e.test_serve import ROOT, _env, _free_port, _stop

pytestmark = pytest.mark.e2e

CT = Path(str(get_testdata_file("CT_small.dcm")))


def huren(data: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "huren.cli", *args], env=env or _env(data), cwd=ROOT, capture_output=True,
        text=True, encoding="utf-8", timeout=120, check=False,
    )


def dataset_part(data: bytes) -> bytes:
    return data[144 + int.from_bytes(data[140:144], "little"):]


@pytest.fixture
def receiver() -> Iterator[tuple[int, dict[str, bytes]]]:
    got: dict[str, bytes] = {}

    def keep(event: evt.Event) -> int:
        got[str(event.request.AffectedSOPInstanceUID)] = dataset_part(Path(event.dataset_path).read_bytes())
        return 0

    ae = AE(ae_title="DESTSCP")
    for cx in StoragePresentationContexts:
        ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
    server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, keep)])
    assert server is not None
    yield int(server.server_address[1]), got
    server.shutdown()


def test_serve_starts_and_stops_the_dicom_scp(tmp_path: Path, receiver: tuple[int, dict[str, bytes]]) -> None:
    data = tmp_path / "data"
    code, name, region, level, user, password = ORG_A
    r = huren(data, "org", "add", "--code", code, "--name", name, "--region", region, "--level", level,
              "--user", user, "--password", password)
    assert r.returncode == 0, r.stderr
    dest_port, got = receiver
    r = huren(data, "dicom", "node", "add", "--ae", "DESTSCP", "--org", code, "--hosts", "127.0.0.1",
              "--port", str(dest_port), "--purpose", "pacs")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["ae_title"] == "DESTSCP"
    r = huren(data, "dicom", "node", "add", "--ae", "BAD AE\\", "--org", code)
    assert r.returncode == 2 and "错误" in r.stderr
    listed = huren(data, "dicom", "node", "list")
    assert "DESTSCP" in listed.stdout and code in listed.stdout

    http_port, dicom_port = _free_port(), _free_port()
    env = _env(data) | {"HUREN_DICOM_PORT": str(dicom_port), "HUREN_DICOM_AET": "HURENTEST"}
    log = tmp_path / "serve.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "huren.cli", "serve", "--port", str(http_port)], env=env, cwd=ROOT,
            stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text("utf-8", "replace")
            try:
                if httpx2.get(f"http://127.0.0.1:{http_port}/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text("utf-8", "replace")
            time.sleep(0.1)
        assert f"DICOM 服务已启动：AE 名称 HURENTEST，监听 127.0.0.1:{dicom_port}" in log.read_text("utf-8")

        r = huren(data, "dicom", "echo", "--host", "127.0.0.1", "--port", str(dicom_port), "--aet", "HURENTEST",
                  "--calling-aet", code)
        assert r.returncode == 0 and "C-ECHO 成功" in r.stdout, r.stderr
        r = huren(data, "dicom", "echo", "--host", "127.0.0.1", "--port", str(dicom_port), "--aet", "HURENTEST",
                  "--calling-aet", "STRANGER")
        assert r.returncode == 2 and "对方拒绝了关联" in r.stderr

        peer = scu.Peer("127.0.0.1", dicom_port, "HURENTEST", calling_aet=code, timeout=15)
        assert [s for _, s in scu.store_files(peer, [CT])] == [0]
        study, sop = str(dcmread(CT).StudyInstanceUID), str(dcmread(CT).SOPInstanceUID)
        r = huren(data, "dicom", "move", "--host", "127.0.0.1", "--port", str(dicom_port), "--aet", "HURENTEST",
                  "--calling-aet", code, "--study", study, "--dest", "DESTSCP")
        assert r.returncode == 0 and "C-MOVE 成功" in r.stdout, r.stdout + r.stderr
        assert got[sop] == dataset_part(CT.read_bytes())
        r = huren(data, "dicom", "move", "--host", "127.0.0.1", "--port", str(dicom_port), "--aet", "HURENTEST",
                  "--calling-aet", code, "--study", study, "--dest", "NOWHERE")
        assert r.returncode == 1 and "0xA801" in r.stderr
    finally:
        _stop(proc)
    assert "DICOM 服务已停止" in log.read_text("utf-8")
    with pytest.raises(PlatformUnavailable):
        scu.echo(scu.Peer("127.0.0.1", dicom_port, "HURENTEST", calling_aet=code, timeout=2))
    r = huren(data, "dicom", "node", "remove", "--ae", "DESTSCP")
    assert r.returncode == 0 and "已删除" in r.stdout
