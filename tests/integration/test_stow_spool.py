"""STOW-RS spool (huren.api.dicomweb_stow): the parts are spooled under ``<data_dir>/spool`` only,
and removed on every exit — answered, refused over a bound (request size, part count: 413 in the
error form), an exception while storing, and a client that disconnects mid-upload (a raw socket
sending half a multipart body, against uvicorn on a real port)."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydicom import dcmread
from pydicom.uid import generate_uid

from huren.api import dicomweb_stow
from huren.api.app import create_app
from huren.bootstrap import Container
from tests.conftest import ORG_A, Api
from tests.integration.test_dicomweb import DW, STOW_BOUNDARY, STOW_TYPE, stow, stow_body
from tests.integration.test_dicomweb_client import app_server
from tests.integration.test_wado import problem, sample, variant


def spooled(container: Container) -> list[Path]:
    """Every file and directory under the spool (the server may remove them while this looks:
    ``os.walk`` skips a directory gone meanwhile, where ``rglob`` would raise)."""
    root = dicomweb_stow.spool_root(container.settings)
    found = [Path(d, n) for d, dirs, files in os.walk(root) for n in (*dirs, *files)]
    return sorted(found)


def test_the_spool_is_under_the_data_dir(container: Container, api_a: Api, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    seen: list[Path] = []
    real = dicomweb_stow._Spool.sink

    def sink(self: dicomweb_stow._Spool) -> tuple[Path, object]:
        path, fh = real(self)
        seen.append(path)
        assert (path.stat().st_mode & 0o777, path.parent.stat().st_mode & 0o777) == (0o600, 0o700)
        return path, fh

    monkeypatch.setattr(dicomweb_stow._Spool, "sink", sink)
    assert stow(api_a, stow_body(sample("MR_small.dcm").read_bytes())).status_code == 200
    [part] = seen
    assert part.is_relative_to(container.settings.data_dir.resolve() / "spool")
    assert not part.exists() and spooled(container) == [] and list(elsewhere.iterdir()) == []


def test_a_request_over_the_size_limit_leaves_nothing(container: Container, api_a: Api) -> None:
    container.settings.max_request_bytes = 40_000
    container.settings.max_instance_bytes = 10_000  # the limit: max(40 000, 4 × 10 000)
    body = stow_body(*[sample("CT_small.dcm").read_bytes()] * 2)  # ~80 KB
    r = stow(api_a, body)  # Content-Length says it: refused before reading
    assert r.status_code == 413 and problem(r) == {"field": "body", "rule": "max_size", "message": "STOW-RS 请求体不能超过 40000 字节"}

    def chunks() -> Iterator[bytes]:  # no Content-Length: refused when the count passes the limit
        for i in range(0, len(body), 4096):
            yield body[i : i + 4096]

    r = api_a.client.post(DW + "/studies", content=chunks(), headers=api_a.headers | {"Content-Type": STOW_TYPE})
    assert r.status_code == 413 and problem(r)["rule"] == "max_size"
    assert spooled(container) == []


def test_too_many_parts_is_413_and_leaves_nothing(container: Container, api_a: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dicomweb_stow, "MAX_PARTS", 3)
    mr = sample("MR_small.dcm").read_bytes()
    r = stow(api_a, stow_body(*[mr] * 4))
    assert r.status_code == 413
    assert problem(r) == {"field": "body", "rule": "max_parts", "message": "一个 STOW-RS 请求最多 3 个部件（实例）"}
    assert spooled(container) == []
    assert stow(api_a, stow_body(*[mr] * 3)).status_code == 200  # at the bound: taken
    assert spooled(container) == []


def test_an_exception_while_storing_leaves_nothing(container: Container, api_a: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(container.imaging, "commit_study", broken)
    quiet = TestClient(create_app(container), raise_server_exceptions=False)  # the answer a caller gets
    r = quiet.post(DW + "/studies", headers=api_a.headers | {"Content-Type": STOW_TYPE}, content=stow_body(sample("CT_small.dcm").read_bytes()))
    assert r.status_code == 500 and "Traceback" not in r.text and "database went away" not in r.text
    assert spooled(container) == []


def test_a_malformed_body_leaves_nothing(container: Container, api_a: Api) -> None:
    ct = sample("CT_small.dcm").read_bytes()
    r = stow(api_a, stow_body(ct)[:-30])  # no closing delimiter
    assert r.status_code == 400 and problem(r)["field"] == "body"
    assert spooled(container) == []


@pytest.fixture
def server(container: Container) -> Iterator[tuple[str, int]]:
    with app_server(container) as port:
        yield "127.0.0.1", port


def _token(host: str, port: int) -> str:
    import httpx2

    r = httpx2.post(f"http://{host}:{port}/api/v1/auth/token", json={"org_code": ORG_A[0], "username": ORG_A[4], "password": ORG_A[5]}, timeout=10)
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def _wait(predicate: object, what: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(what)
        time.sleep(0.02)


def test_a_client_disconnecting_mid_upload_leaves_nothing(container: Container, server: tuple[str, int], tmp_path: Path) -> None:
    host, port = server
    token = _token(host, port)
    fresh = variant(tmp_path, "CT_small.dcm", StudyInstanceUID=generate_uid())
    body = stow_body(fresh.read_bytes(), sample("MR_small.dcm").read_bytes())
    head = (
        f"POST {DW}/studies HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: {STOW_TYPE}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    half = body.find(f"--{STOW_BOUNDARY}".encode(), 10) + 2000  # the first part whole, the second begun
    assert half < len(body) - 1000
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(head + body[:half])
        # the request is being spooled: its directory and part files exist while it is open
        _wait(lambda: any(p.name.startswith("part-") for p in spooled(container)), "STOW 未开始写入暂存文件")
    # the client is gone: the request's directory and files are removed, nothing stored
    _wait(lambda: spooled(container) == [], f"断开后暂存文件仍在：{spooled(container)}")
    r = container.imaging  # the first (complete) part was not stored either: the body never arrived whole
    from huren.context import Principal

    me = Principal(ORG_A[0], ORG_A[4], "hospital")
    with pytest.raises(Exception):  # noqa: B017 - NotFound: no such study
        r.study_state(me, dcmread(fresh).StudyInstanceUID)
    # the server still serves the next request
    import httpx2

    ok = httpx2.post(f"http://{host}:{port}{DW}/studies", content=body,
                     headers={"Authorization": f"Bearer {token}", "Content-Type": STOW_TYPE}, timeout=30)
    assert ok.status_code == 200, ok.text
    assert spooled(container) == []
