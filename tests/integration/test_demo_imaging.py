"""The demo's DICOM studies (issue 12): one study behind every demo exam report with images, its
StudyInstanceUID the report's, Chinese names (GB18030 and UTF-8 files) readable through
ImagingService.find_studies, series of several instances, files byte-exact and deterministic."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from sqlalchemy import select

from huren.bootstrap import Container, build
from huren.context import Clock, Principal
from huren.demo.imaging import PLANS, pn, spec_of_exam, study_files
from huren.demo.institutions import demo_orgs
from huren.demo.loader import load_demo
from huren.settings import Settings
from huren.store.tables import exam_report
from tests.conftest import HASH_N, SECRET

REPORTS = 40


@pytest.fixture
def demo_container(tmp_path: Path) -> Iterator[Container]:
    """An empty platform on SQLite, as ``make run`` has it (the demo brings its own institutions,
    whose supervisor is also one of the shared fixtures' institutions)."""
    settings = Settings(data_dir=tmp_path / "data", secret_key=SECRET, password_hash_n=HASH_N)
    c = build(settings, clock=Clock(), upgrade=True)
    yield c
    c.close()


def _value(obj: dict[str, Any], tag: str) -> Any:
    return obj[tag]["Value"][0]


def _exams(c: Container) -> list[dict[str, Any]]:
    cols = (exam_report.c.org_code, exam_report.c.report_form_no, exam_report.c.study_instance_uid,
            exam_report.c.class_code, exam_report.c.patient_id, exam_report.c.pacs_id)
    with c.db.read() as conn:
        return [dict(r) for r in conn.execute(select(*cols)).mappings()]


def test_demo_studies_behind_exam_reports(demo_container: Container) -> None:
    c = demo_container
    summary = load_demo(c, reports=REPORTS)
    demo_codes = {o.code for o in demo_orgs()}
    exams = [e for e in _exams(c) if e["org_code"] in demo_codes]
    with_images = [e for e in exams if e["class_code"] in PLANS]
    assert with_images, "the demo should have exam reports with images"
    assert summary["imaging"]["studies"] == len(with_images)

    charsets: set[str] = set()
    for e in with_images:
        reader = Principal(e["org_code"], "his", "hospital")
        uid = e["study_instance_uid"]
        assert uid, "every demo exam report carries its study_instance_uid"
        assert c.imaging.study_for_exam(reader, e["org_code"], e["report_form_no"]) == uid
        assert c.imaging.exam_for_study(reader, uid)["report_form_no"] == e["report_form_no"]  # type: ignore[index]

        found = c.imaging.find_studies(reader, {"PatientID": e["patient_id"], "StudyInstanceUID": uid})
        assert len(found) == 1
        study = found[0]
        assert _value(study, "0020000D") == uid
        assert _value(study, "00080050") == e["pacs_id"]
        assert _value(study, "00100020") == e["patient_id"]
        # the Chinese name, as the report has it (opened from the sealed report through the query service)
        ref = c.imaging.exam_for_study(reader, uid)["ref"]  # type: ignore[index]
        report = c.query.report("exam", ref, reader)
        master = report.get("exammaster", report)
        assert _value(study, "00100010")["Alphabetic"] == pn(master["name"])
        assert any("\u4e00" <= ch <= "\u9fff" for ch in master["name"])

        series = c.imaging.find_series(reader, uid, {})
        plan = PLANS[e["class_code"]]
        assert 1 <= len(series) <= len(plan.series)
        for s in series:
            insts = c.imaging.find_instances(reader, uid, _value(s, "0020000E"), {})
            numbers = sorted(int(_value(i, "00200013")) for i in insts)
            assert numbers == list(range(1, len(numbers) + 1))
        first = c.imaging.instances_of(reader, uid)[0]
        raw = b"".join(first.chunks())
        ds = pydicom.dcmread(io.BytesIO(raw))
        charsets.add(str(ds.SpecificCharacterSet))
        assert str(ds.PatientName) == pn(master["name"])
        assert ds.StudyInstanceUID == uid

    assert {"GB18030", "ISO_IR 192"} <= charsets  # both character sets occur in the demo

    # an exam report without images (ECG) has no study
    for e in exams:
        if e["class_code"] not in PLANS:
            reader = Principal(e["org_code"], "his", "hospital")
            assert c.imaging.find_studies(reader, {"StudyInstanceUID": e["study_instance_uid"]}) == []


def test_demo_study_files_are_deterministic_and_scrollable() -> None:
    from datetime import datetime

    master = {
        "class_code": "CT", "study_instance_uid": "2.25.123456789", "patient_id": "P1", "name": "艾力·买买提",
        "sex_code": "1", "birth_date": "1980-02-03", "pacs_id": "0012345678", "performer_dtime": "2026-11-02 09:10:11",
        "report_title": "胸部CT平扫", "participant_name": "王伟",
    }
    spec = spec_of_exam(master, [{"exam_site_code": "CHEST"}], "乌鲁木齐市第一人民医院")
    assert spec is not None
    one = list(study_files(spec))
    two = list(study_files(spec))
    assert one == two
    assert len({sop for _, sop, _ in one}) == len(one) == sum(s.instances for s in PLANS["CT"].series)
    datasets = [pydicom.dcmread(io.BytesIO(b)) for _, _, b in one]
    first_series = [d for d in datasets if d.SeriesNumber == 1]
    zs = [float(d.ImagePositionPatient[2]) for d in first_series]
    assert zs == sorted(zs) and len(set(zs)) == len(zs)
    assert len({d.PixelData for d in first_series}) == len(first_series)  # each slice a different picture
    d = datasets[0]
    assert str(d.PatientName) == "艾力·买买提" and d.AccessionNumber == "0012345678"
    assert d.StudyDate == "20261102" and d.InstitutionName == "乌鲁木齐市第一人民医院"
    assert spec_of_exam({**master, "class_code": "ECG"}, [], "") is None
    assert spec.study_time == datetime(2026, 11, 2, 9, 10, 11)
