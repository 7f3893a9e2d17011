"""bench/corpus.py: the imaging bench's generated corpus (patients × instances from pydicom's
bundled CT / MR files) — the files the bench sends to huren and to Orthanc alike."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pydicom

from bench.corpus import make_corpus


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.dcm"))}


def test_corpus_shape_and_determinism(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "a", patients=6, instances=5, seed=3)
    assert len(corpus.instances) == 30
    assert len(corpus.patient_ids) == 6
    assert len({i.sop_uid for i in corpus.instances}) == 30
    assert len({i.study_uid for i in corpus.instances}) == 6
    assert corpus.total_bytes == sum(p.stat().st_size for p in (tmp_path / "a").rglob("*.dcm"))

    charsets, modalities = set(), set()
    for inst in corpus.instances:
        ds = pydicom.dcmread(inst.path)
        assert ds.SOPInstanceUID == inst.sop_uid == ds.file_meta.MediaStorageSOPInstanceUID
        assert ds.StudyInstanceUID == inst.study_uid and ds.SeriesInstanceUID == inst.series_uid
        assert ds.PatientID == inst.patient_id
        assert any("\u4e00" <= ch <= "\u9fff" for ch in str(ds.PatientName))
        charsets.add(ds.SpecificCharacterSet)
        modalities.add(ds.Modality)
        assert ds.pixel_array.size > 0
    assert charsets == {"GB18030", "ISO_IR 192"}
    assert modalities == {"CT", "MR"}

    again = make_corpus(tmp_path / "b", patients=6, instances=5, seed=3)
    assert [i.sop_uid for i in again.instances] == [i.sop_uid for i in corpus.instances]
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
    other = make_corpus(tmp_path / "c", patients=6, instances=5, seed=4)
    assert not {i.sop_uid for i in other.instances} & {i.sop_uid for i in corpus.instances}
