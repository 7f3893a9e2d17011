"""Demo DICOM studies behind the demo's exam reports, made with pydicom from its bundled test files.

Every image comes from a file that ships inside the installed pydicom wheel
(``pydicom.data.get_testdata_file``, never a download): ``CT_small.dcm`` for CT, ``MR_small.dcm``
for MR, ``examples_rgb_color.dcm`` for ultrasound, and a digital radiograph (DX, for presentation)
derived from the CT slice's pixels for DR. The patient and study attributes are rewritten from the
exam report (name in Chinese, ID, sex, birth date, accession number = ``pacs_id``, Study Instance UID
= the report's ``study_instance_uid``, institution, referring doctor, title); the series and SOP
Instance UIDs are new and derived from the study UID (the same report gives the same files).
Each series has a few instances with increasing InstanceNumber / ImagePositionPatient and slightly
shifted pixels, so a viewer has something to scroll through. Half of the patients (by patient ID)
are written in GB18030, the others in UTF-8 (``ISO_IR 192``), as Chinese PACS do.

The studies are stored through ``ImagingService.store_instance`` + ``commit_study`` as the
institution's gateway would push them (channel ``gateway``).
"""

from __future__ import annotations

import copy
import hashlib
import io
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from typing import Any

import numpy as np
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from huren.services.container import Container

#: SOP classes of the demo's images.
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
US_IMAGE = "1.2.840.10008.5.1.4.1.1.6.1"
DX_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"


@dataclass(frozen=True)
class SeriesPlan:
    description: str
    instances: int
    flip: bool = False  # a second "sequence": the same pixels mirrored


@dataclass(frozen=True)
class ModalityPlan:
    modality: str  # DICOM Modality
    template: str  # pydicom test file
    series: tuple[SeriesPlan, ...]


#: Report class_code (exammaster) -> how its images are made. ECG has no images.
PLANS: dict[str, ModalityPlan] = {
    "CT": ModalityPlan("CT", "CT_small.dcm", (SeriesPlan("平扫 5mm", 5), SeriesPlan("平扫 骨窗", 3, flip=True))),
    "MR": ModalityPlan("MR", "MR_small.dcm", (SeriesPlan("T1WI 横断位", 4), SeriesPlan("T2WI 横断位", 4, flip=True))),
    "DR": ModalityPlan("DX", "CT_small.dcm", (SeriesPlan("正位", 1), SeriesPlan("侧位", 1, flip=True))),
    "US": ModalityPlan("US", "examples_rgb_color.dcm", (SeriesPlan("二维灰阶", 3),)),
}
PLANS["DX"] = PLANS["CR"] = PLANS["DR"]

_SEX = {"1": "M", "2": "F"}
_UID_NAMESPACE = uuid.UUID("6f1f6d2e-3c1b-5a4e-9d0e-68757265e001")


def derived_uid(*parts: str) -> str:
    """A UID of the 2.25 root (PS3.5 B.2) from a name-based UUID (RFC 4122 v5) of ``parts``:
    the same parts give the same UID, on every run."""
    return f"2.25.{uuid.uuid5(_UID_NAMESPACE, '|'.join(parts)).int}"


@dataclass(frozen=True)
class StudySpec:
    """What a study's files carry of its exam report."""

    study_uid: str
    patient_id: str
    patient_name: str  # Chinese, as in the report
    sex: str  # M / F / O
    birth_date: date | None
    accession: str
    study_time: datetime
    report_class: str  # exammaster class_code (CT, MR, DR, US…)
    description: str
    institution: str
    referring: str
    body_part: str
    charset: str  # "GB18030" or "ISO_IR 192"
    single_series: bool = False  # DR of one view (胸部正位) has one series


def charset_for(patient_id: str) -> str:
    """GB18030 for half of the patients, UTF-8 for the others (stable per patient)."""
    return "GB18030" if hashlib.sha256(patient_id.encode()).digest()[0] % 2 == 0 else "ISO_IR 192"


def pn(name: str) -> str:
    """A Chinese name as a DICOM PN: family^given for Han names; whole for names with '·'."""
    name = name.strip()
    if "·" in name or len(name) < 2:
        return name
    return name[0] + "^" + name[1:]


def spec_of_exam(master: Mapping[str, str], items: Iterable[Mapping[str, str]], institution: str) -> StudySpec | None:
    """The study behind an ``exammaster`` payload, or None for an exam without images (ECG…)."""
    report_class = master.get("class_code", "")
    uid = master.get("study_instance_uid", "")
    if report_class not in PLANS or not uid:
        return None
    sites = [i.get("exam_site_code", "") for i in items]
    birth = master.get("birth_date") or ""
    when = master.get("performer_dtime") or master.get("authenticator_dtime") or ""
    return StudySpec(
        study_uid=uid,
        patient_id=master.get("patient_id", ""),
        patient_name=master.get("name", ""),
        sex=_SEX.get(master.get("sex_code", ""), "O"),
        birth_date=date.fromisoformat(birth) if birth else None,
        accession=master.get("pacs_id", "")[:16],
        study_time=datetime.fromisoformat(when),
        report_class=report_class,
        description=master.get("report_title", ""),
        institution=institution,
        referring=master.get("participant_name", ""),
        body_part=(sites[0] if sites else "")[:16],
        charset=charset_for(master.get("patient_id", "")),
        single_series="正侧位" not in master.get("report_title", "") and report_class in ("DR", "DX", "CR"),
    )


@cache
def _template(name: str) -> Dataset:
    path = get_testdata_file(name)
    if path is None:  # pragma: no cover - the files ship in the pydicom wheel
        raise FileNotFoundError(name)
    ds = dcmread(path)
    ds.remove_private_tags()
    if "DataSetTrailingPadding" in ds:  # CT_small has some: a C-STORE SCU drops it, so the demo does not send it
        del ds.DataSetTrailingPadding
    return ds


@cache
def _dx_template() -> tuple[Dataset, np.ndarray[Any, Any]]:
    """A DX (for presentation) image made from the CT slice's pixels: unsigned, no CT geometry."""
    ct = _template("CT_small.dcm")
    arr = np.clip(ct.pixel_array.astype(np.int32), 0, 4095).astype(np.uint16)
    ds = Dataset()
    for kw in ("Manufacturer", "ManufacturerModelName", "KVP", "ExposureTime", "XRayTubeCurrent", "Exposure"):
        if kw in ct:
            setattr(ds, kw, ct.data_element(kw).value)  # type: ignore[union-attr]
    ds.SOPClassUID = DX_PRESENTATION
    ds.Modality = "DX"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.PatientOrientation = ["L", "F"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = arr.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelIntensityRelationship = "LIN"
    ds.PixelIntensityRelationshipSign = 1
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "0", "1", "US"
    ds.ImagerPixelSpacing = [0.66, 0.66]
    ds.WindowCenter, ds.WindowWidth = str(int(arr.mean())), str(int(arr.max() - arr.min()) or 1)
    ds.BurnedInAnnotation = "NO"
    ds.PixelData = arr.tobytes()
    return ds, arr


def _base(plan: ModalityPlan) -> tuple[Dataset, np.ndarray[Any, Any]]:
    if plan.modality == "DX":
        return _dx_template()
    return _template(plan.template), _pixels(plan.template)


@cache
def _pixels(name: str) -> np.ndarray[Any, Any]:
    return _template(name).pixel_array


def _patient_and_study(ds: Dataset, s: StudySpec) -> None:
    ds.SpecificCharacterSet = s.charset
    ds.PatientName = pn(s.patient_name)
    ds.PatientID = s.patient_id
    ds.PatientBirthDate = f"{s.birth_date:%Y%m%d}" if s.birth_date else ""
    ds.PatientSex = s.sex
    if s.birth_date:
        years = s.study_time.year - s.birth_date.year - ((s.study_time.month, s.study_time.day) <
                                                         (s.birth_date.month, s.birth_date.day))
        ds.PatientAge = f"{max(0, years):03d}Y"
    for kw in ("OtherPatientIDsSequence", "AdditionalPatientHistory", "PatientWeight", "PatientSize"):
        if kw in ds:
            delattr(ds, kw)
    ds.StudyInstanceUID = s.study_uid
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = f"{s.study_time:%Y%m%d}"
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = f"{s.study_time:%H%M%S}"
    ds.InstanceCreationDate, ds.InstanceCreationTime = ds.StudyDate, ds.StudyTime
    ds.TimezoneOffsetFromUTC = "+0800"
    ds.AccessionNumber = s.accession
    ds.StudyID = s.accession[-8:] or "1"
    ds.StudyDescription = s.description[:64]
    ds.InstitutionName = s.institution[:64]
    ds.ReferringPhysicianName = pn(s.referring)
    ds.BodyPartExamined = s.body_part
    for kw in ("InstanceCreatorUID", "ImageComments", "StationName", "NameOfPhysiciansReadingStudy", "OperatorsName"):
        if kw in ds:
            delattr(ds, kw)


def study_files(s: StudySpec, plan: ModalityPlan | None = None) -> Iterator[tuple[str, str, bytes]]:
    """(Series Instance UID, SOP Instance UID, Part-10 bytes) of every instance of the study ``s`` (deterministic);
    ``plan`` overrides the series of its report class (the bench's corpus sets its own counts)."""
    plan = plan or PLANS[s.report_class]
    template, pixels = _base(plan)
    ds = copy.deepcopy(template)
    _patient_and_study(ds, s)
    series_plans = plan.series[:1] if s.single_series else plan.series
    for number, sp in enumerate(series_plans, start=1):
        series_uid = derived_uid(s.study_uid, "series", str(number))
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = number
        ds.SeriesDescription = sp.description
        ds.Modality = plan.modality
        if "ImagePositionPatient" in ds:
            ds.FrameOfReferenceUID = derived_uid(s.study_uid, "frame", str(number))
        thickness = float(template.get("SliceThickness") or 5.0)
        origin = [float(v) for v in template.get("ImagePositionPatient") or (0.0, 0.0, 0.0)]
        for i in range(sp.instances):
            sop_uid = derived_uid(s.study_uid, series_uid, str(i + 1))
            ds.SOPInstanceUID = sop_uid
            ds.InstanceNumber = i + 1
            if "ImagePositionPatient" in ds:
                z = origin[2] + i * thickness
                ds.ImagePositionPatient = [f"{origin[0]:.4f}", f"{origin[1]:.4f}", f"{z:.4f}"]
                ds.SliceLocation = f"{z:.4f}"
            frame = np.flip(pixels, axis=1) if sp.flip else pixels
            if sp.instances > 1:  # a different picture on each slice: shifted a few rows
                frame = np.roll(frame, shift=3 * i, axis=0)
            ds.PixelData = np.ascontiguousarray(frame).tobytes()
            yield series_uid, sop_uid, _part10(ds)


def _part10(ds: Dataset) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def load_demo_images(
    c: Container, orgs: Iterable[Any], by_org: Mapping[str, list[dict[str, Any]]]
) -> dict[str, int]:
    """Store a study for every demo exam report with images, as its institution's gateway would."""
    from huren.services.imaging import Sender

    names = {o.code: o.name for o in orgs}
    studies = instances = 0
    for org_code, payloads in by_org.items():
        sender = Sender(org_code=org_code, actor=f"gateway:{org_code}", channel="gateway")
        for p in payloads:
            master = p.get("exammaster")
            if master is None:
                continue
            spec = spec_of_exam(master, p.get("exam_subitem", []), names.get(org_code, ""))
            if spec is None:
                continue
            sent: list[tuple[str, str | None]] = []
            for _series_uid, sop_uid, data in study_files(spec):
                stored = c.imaging.store_instance(sender, io.BytesIO(data), size_hint=len(data))
                sent.append((sop_uid, stored.sha256))
            c.imaging.commit_study(sender, spec.study_uid, sent)
            studies += 1
            instances += len(sent)
    return {"studies": studies, "instances": instances}
