"""A read of patient images is logged once per reader, study and window — and a log write that
fails (the rate limit, the database) never leaves the window marked: the next read is checked and
logged again instead of being served unlogged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from huren.errors import TooMany
from huren.services.container import Container
from huren.store.tables import access_log
from tests.integration.test_imaging_store import HIS_A, A, make


def _rows(c: Container, action: str) -> int:
    with c.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(access_log).where(access_log.c.action == action)).scalar_one())


def test_a_failed_log_write_is_retried_by_the_next_read(container: Container, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, ds = make(tmp_path)
    study, series, sop = str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)
    container.imaging.store_instance(A, path)
    real = container.imaging._audit.record
    calls = {"n": 0}

    def refuse_once(*args: Any, **kw: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise TooMany("请求过于频繁，请稍后再试", [])
        return real(*args, **kw)

    monkeypatch.setattr(container.imaging._audit, "record", refuse_once)
    with pytest.raises(TooMany):
        container.imaging.instance(HIS_A, study, series, sop)
    assert _rows(container, "image.retrieve") == 0
    container.imaging.instance(HIS_A, study, series, sop)  # checked and logged again
    container.imaging.instance(HIS_A, study, series, sop)  # within the window: once
    assert _rows(container, "image.retrieve") == 1
    calls["n"] = 0
    with pytest.raises(TooMany):
        container.imaging.find_studies(HIS_A, {"StudyInstanceUID": study})
    container.imaging.find_studies(HIS_A, {"StudyInstanceUID": study})
    assert _rows(container, "image.query") == 1
