"""WADO-URI's event-loop path (huren/api/wado.py ``on_loop``): with SQLite and the local blob store
a small stored file whose access is already logged is looked up and read on the event loop; the
access-log write a read owes, a larger file, a key, a busy connection pool and PostgreSQL go to
the threadpool. Whichever way, the answer is the same file, logged once per view."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from huren.api import wado
from huren.services.container import Container
from huren.services.imaging import StoredInstance
from tests.conftest import ORG_B, Api
from tests.integration.test_wado import _log, params, sample, store, variant


def _loop_here() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class Spy:
    """Records, per call of the wrapped callables, whether it ran on the event loop's thread."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, bool]] = []
        self.mp = monkeypatch

    def wrap(self, owner: Any, name: str) -> None:
        inner: Callable[..., Any] = getattr(owner, name)

        def spied(*a: Any, **kw: Any) -> Any:
            self.calls.append((name, _loop_here()))
            return inner(*a, **kw)

        self.mp.setattr(owner, name, spied)

    def take(self) -> list[tuple[str, bool]]:
        out, self.calls = self.calls, []
        return out


@pytest.fixture
def spy(container: Container, monkeypatch: pytest.MonkeyPatch) -> Iterator[Spy]:
    s = Spy(monkeypatch)
    s.wrap(container.imaging, "locate")
    s.wrap(container.imaging.archive, "open")
    s.wrap(container.imaging._audit, "record")
    yield s


def _get(api: Api, i: StoredInstance) -> bytes:
    r = api.get("/wado", params=params(i, contentType="application/dicom"))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/dicom"
    assert r.headers["content-disposition"] == f'attachment; filename="{i.sop_uid}.dcm"'
    assert r.headers["x-content-type-options"] == "nosniff"
    return bytes(r.content)


def test_small_file_on_the_loop_once_logged(container: Container, api_b: Api, spy: Spy) -> None:
    ct = store(container, [sample("CT_small.dcm")])[0]
    before = {r["id"] for r in _log(container)}
    assert _get(api_b, ct) == sample("CT_small.dcm").read_bytes()
    first = spy.take()
    assert _get(api_b, ct) == sample("CT_small.dcm").read_bytes()
    second = spy.take()
    if container.db.is_sqlite:
        # the lookup on the loop; the owed log write, then the file, in the threadpool
        assert first == [("locate", True), ("record", False), ("open", False)]
        assert second == [("locate", True), ("open", True)]  # already logged: all on the loop
    else:  # PostgreSQL: a network round trip, never on the loop
        assert first == [("locate", False), ("record", False), ("open", False)]
        assert second == [("locate", False), ("open", False)]
    new = [r for r in _log(container) if r["id"] not in before and r["action"] == "image.retrieve"]
    assert len(new) == 1 and new[0]["org_code"] == ORG_B[0] and ct.study_uid in new[0]["target"]


def test_larger_file_read_in_the_threadpool(container: Container, api_b: Api, spy: Spy, tmp_path: Path) -> None:
    small = sample("CT_small.dcm")
    big = variant(tmp_path, "CT_small.dcm", TextValue="x" * (wado.INLINE_BYTES + 10))
    i_small, i_big = store(container, [small, big])  # one study: logged once
    assert _get(api_b, i_small) == small.read_bytes()
    spy.take()
    assert _get(api_b, i_big) == big.read_bytes()
    assert spy.take() == [("locate", container.db.is_sqlite), ("open", False)]


def test_busy_pool_goes_to_the_threadpool(container: Container, api_b: Api, spy: Spy) -> None:
    ct = store(container, [sample("CT_small.dcm")])[0]
    _get(api_b, ct)  # logged
    spy.take()
    assert container.imaging.reads_without_waiting() is container.db.is_sqlite
    held = []
    try:
        while container.imaging.reads_without_waiting():  # every idle pooled connection taken
            held.append(container.db.engine.connect())
        assert _get(api_b, ct) == sample("CT_small.dcm").read_bytes()
        assert spy.take() == [("locate", False), ("open", False)]
    finally:
        for conn in held:
            conn.close()


def test_a_key_is_read_in_the_threadpool(container: Container, api_b: Api, spy: Spy) -> None:
    from tests.integration.test_wado import _principal

    ct = store(container, [sample("CT_small.dcm")])[0]
    issued = container.imaging.issue_key(_principal(ORG_B), "viewer", ct.study_uid)
    spy.take()  # the calls of the test's own thread (issuing the key) are not the server's
    for _ in range(2):
        r = api_b.client.get("/wado", params=params(ct, contentType="application/dicom", key=issued.key))
        assert r.status_code == 200 and r.content == sample("CT_small.dcm").read_bytes()
    calls = spy.take()
    assert all(not on_loop for _, on_loop in calls), calls


def test_refusals_on_the_loop_path(container: Container, api_b: Api, spy: Spy) -> None:
    ct = store(container, [sample("CT_small.dcm")])[0]
    other = params(ct, contentType="application/dicom") | {"objectUID": "1.2.3.999"}
    r = api_b.get("/wado", params=other)
    assert r.status_code == 404 and r.json()["problems"]
    r = api_b.get("/wado", params=params(ct, contentType="application/dicom", studyUID="1.2.3.4"))
    assert r.status_code == 404
    r = api_b.client.get("/wado", params=params(ct, contentType="application/dicom"))  # no token
    assert r.status_code == 401 and r.json()["problems"][0]["field"] == "key"
    r = api_b.get("/wado", params=params(ct, contentType="application/dicom", seriesUID="1.2.x"))
    assert r.status_code == 400 and r.json()["problems"][0]["field"] == "seriesUID"


def test_over_the_read_rate_nothing_is_sent(container: Container, api_b: Api, spy: Spy, monkeypatch: pytest.MonkeyPatch) -> None:
    ct = store(container, [sample("CT_small.dcm")])[0]
    monkeypatch.setattr(container.imaging._audit.limiter, "take", lambda _p: (False, 30, False))
    r = api_b.get("/wado", params=params(ct, contentType="application/dicom"))
    assert r.status_code == 429 and r.json()["code"] == "too_many" and r.content != sample("CT_small.dcm").read_bytes()
    assert [name for name, _ in spy.take()] == ["locate", "record"]  # refused before the file was opened


def test_remote_archive_never_on_the_loop(container: Container, monkeypatch: pytest.MonkeyPatch) -> None:
    class Remote:  # an archive other than the local blob store (Orthanc's: a network round trip)
        name = "remote"

    assert container.imaging.reads_without_waiting() is container.db.is_sqlite
    monkeypatch.setattr(container.imaging, "archive", Remote())
    assert container.imaging.reads_without_waiting() is False
