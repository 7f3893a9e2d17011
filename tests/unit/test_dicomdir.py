"""The cloud film's download (YB-4.3): a zip of the original files, byte-exact, with a DICOMDIR that
names them by 8-character uppercase File IDs and reads back in pydicom's FileSet (GB18030 names in
UTF-8 records)."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.fileset import FileSet
from pydicom.uid import generate_uid

from huren.wire import dicomdir

NAME = "张伟^"  # GB18030 in the files


@dataclass(frozen=True)
class FileMember:
    sop_uid: str
    transfer_syntax: str
    size: int
    path: Path

    @property
    def chunks(self) -> Callable[[], Iterator[bytes]]:
        def read() -> Iterator[bytes]:
            with self.path.open("rb") as fh:
                while chunk := fh.read(7000):  # odd chunk sizes: headers cut across chunks
                    yield chunk
        return read


def bundled(name: str) -> str:
    """The path of one of pydicom's bundled test files."""
    path = get_testdata_file(name)
    assert isinstance(path, str), name
    return path


@contextmanager
def fileset(ds: Dataset) -> Iterator[FileSet]:
    """A DICOMDIR as pydicom's FileSet, its staging directory dropped at the end (not by the collector)."""
    fs = FileSet(ds)
    try:
        yield fs
    finally:
        dicomdir._discard_stage(fs)


def make(tmp: Path, source: str, study: str, series: str, n: int, *, name: str = NAME) -> FileMember:
    ds = dcmread(bundled(source))
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SpecificCharacterSet = "GB18030"
    ds.PatientName = name
    ds.PatientID = "P-1"
    ds.InstanceNumber = n
    path = tmp / f"{ds.SOPInstanceUID}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return FileMember(ds.SOPInstanceUID, ds.file_meta.TransferSyntaxUID, path.stat().st_size, path)


def test_zip_holds_the_files_byte_exact_under_a_dicomdir(tmp_path: Path) -> None:
    study = generate_uid()
    ct, mr = generate_uid(), generate_uid()
    members = [make(tmp_path, "CT_small.dcm", study, ct, i) for i in (1, 2)] + [make(tmp_path, "MR_small.dcm", study, mr, 1)]
    buf = io.BytesIO()
    assert dicomdir.write_zip(members, buf, patient_name="张伟") == 3
    out = tmp_path / "out"
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as zf:
        names = zf.namelist()
        assert names[0] == "DICOMDIR"
        for n in names[1:]:
            assert all(re.fullmatch(r"[A-Z0-9_]{1,8}", part) for part in n.split("/")), n
        zf.extractall(out)
    with fileset(dcmread(out / "DICOMDIR")) as fs:
        assert len(fs) == 3
        by_uid = {m.sop_uid: m for m in members}
        for inst in fs:
            stored = out / Path(*inst.FileID.replace("\\", "/").split("/"))
            assert stored.read_bytes() == by_uid[inst.SOPInstanceUID].path.read_bytes()
        patients = fs.find_values("PatientName")
        assert [str(p) for p in patients] == ["张伟"]
        assert sorted(fs.find_values("SeriesInstanceUID")) == sorted([ct, mr])
        assert fs.find_values("StudyInstanceUID") == [study]


def test_name_from_the_file_when_not_given(tmp_path: Path) -> None:
    m = make(tmp_path, "CT_small.dcm", generate_uid(), generate_uid(), 1, name="李娜")
    buf = io.BytesIO()
    dicomdir.write_zip([m, m], buf)  # a member listed twice is written once
    with zipfile.ZipFile(buf) as zf:
        assert len(zf.namelist()) == 2
        zf.extractall(tmp_path / "out")
    with fileset(dcmread(tmp_path / "out" / "DICOMDIR")) as fs:
        assert [str(p) for p in fs.find_values("PatientName")] == ["李娜"]


def test_missing_record_attributes_get_placeholders_not_edits(tmp_path: Path) -> None:
    ds = dcmread(bundled("CT_small.dcm"))
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    del ds.StudyID, ds.InstanceNumber
    path = tmp_path / "x.dcm"
    ds.save_as(path, enforce_file_format=True)
    m = FileMember(ds.SOPInstanceUID, ds.file_meta.TransferSyntaxUID, path.stat().st_size, path)
    buf = io.BytesIO()
    dicomdir.write_zip([m], buf)
    with zipfile.ZipFile(buf) as zf:
        member = next(n for n in zf.namelist() if n != "DICOMDIR")
        assert zf.read(member) == path.read_bytes()


def test_long_header_spools_to_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dicomdir, "HEADER_PREFIX", 200)  # shorter than CT_small's header
    m = make(tmp_path, "CT_small.dcm", generate_uid(), generate_uid(), 1)
    buf = io.BytesIO()
    assert dicomdir.write_zip([m], buf) == 1


def test_a_file_that_is_not_dicom_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "junk.dcm"
    path.write_bytes(b"not dicom at all" * 10)
    m = FileMember("1.2.3", "1.2.840.10008.1.2.1", path.stat().st_size, path)
    with pytest.raises(dicomdir.DicomdirError):
        dicomdir.write_zip([m], io.BytesIO())
