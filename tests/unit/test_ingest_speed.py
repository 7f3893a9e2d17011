"""The ingest's shortcuts (issue 12, ingest speed) keep its rules: the study / series rows a push
created are remembered only once committed (a refused push's rows are not), the refusals still
hold for remembered studies, and a streamed put recreates a directory removed under it."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from huren.errors import Conflict, Forbidden
from huren.services.container import Container
from huren.store import imaging_ingest
from huren.store.tables import image_instance, image_series, image_study
from tests.integration.test_imaging_store import A, B, make


def _known(c: Container) -> imaging_ingest._Known:
    return imaging_ingest._KNOWN[c.db.engine]


def _count(c: Container, table: object) -> int:
    with c.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_created_rows_remembered_after_commit_and_counts_kept(container: Container, tmp_path: Path) -> None:
    img = container.imaging
    p1, ds = make(tmp_path)
    img.store_instance(A, p1)
    known = _known(container)
    assert ds.StudyInstanceUID in known.studies and ds.SeriesInstanceUID in known.series
    study_id, owner, _ = known.studies[ds.StudyInstanceUID]
    assert owner == A.org_code
    for n in range(2, 5):  # the next instances of the series: from what is remembered
        p, _ = make(tmp_path, study=ds.StudyInstanceUID, series=ds.SeriesInstanceUID, number=n)
        assert not img.store_instance(A, p).duplicate
    with container.db.read() as conn:
        row = conn.execute(select(image_study).where(image_study.c.id == study_id)).one()
        series = conn.execute(select(image_series.c.instance_count)).scalars().all()
    assert (row.instance_count, row.series_count, row.modalities) == (4, 1, "CT")
    assert series == [4]
    assert img.store_instance(A, p1).duplicate  # a re-sent identical instance
    with pytest.raises(Forbidden):  # another institution's study, remembered: still refused
        p, _ = make(tmp_path, study=ds.StudyInstanceUID, number=9)
        img.store_instance(B, p)
    assert _count(container, image_instance) == 4


def test_rows_of_a_refused_push_are_not_remembered(container: Container, tmp_path: Path) -> None:
    img = container.imaging
    p1, ds = make(tmp_path)
    img.store_instance(A, p1)
    # the same series UID under a new study: the new study row is created, then the push refused
    p2, ds2 = make(tmp_path, series=ds.SeriesInstanceUID)
    with pytest.raises(Conflict):
        img.store_instance(A, p2)
    assert ds2.StudyInstanceUID not in _known(container).studies
    assert _count(container, image_study) == 1
    p3, _ = make(tmp_path, study=ds2.StudyInstanceUID)  # that study pushed properly: created afresh
    img.store_instance(A, p3)
    assert _count(container, image_study) == 2 and ds2.StudyInstanceUID in _known(container).studies


def test_streamed_put_recreates_removed_directories(container: Container) -> None:
    blobs = container.blobs
    data = os.urandom(1000)
    digest, _, new = blobs.put_stream(io.BytesIO(data))
    assert new
    shutil.rmtree(blobs.root / ".incoming")
    shutil.rmtree(blobs.root / digest[:2])
    digest2, _, new = blobs.put_stream(io.BytesIO(data))
    assert digest2 == digest and new
    assert b"".join(blobs.open_stream(digest) or []) == data
    assert not list((blobs.root / ".incoming").iterdir())  # no temporary file left
    mode = (blobs.root / digest[:2] / digest[2:4] / digest).stat().st_mode & 0o777
    assert mode == 0o600
