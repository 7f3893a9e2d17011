"""A study as a zip a patient can take to any DICOM viewer (YB-4.3 "下载原始影像"): the original files,
byte-exact, under the File IDs of a DICOMDIR that pydicom's :class:`~pydicom.fileset.FileSet` builds
(PS3.10 media: ``PT000000/ST000000/SE000000/IM000000``, components of at most 8 uppercase
characters), and the ``DICOMDIR`` itself at the root.

Never the whole study in memory: each instance is streamed twice from its source — once for its
header (read up to the pixel data from a bounded prefix, the file itself spooled to disk only when
the header is longer), once into its zip member — and the zip is written to a file the caller
streams and then deletes. FileSet only ever sees the headers: the files it would write are header
copies in a scratch directory; the zip takes the original bytes.
"""

from __future__ import annotations

import io
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import IO, Protocol

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.fileset import FileSet

#: the header of a file is looked for in its first bytes; a longer header spools the file to disk
HEADER_PREFIX = 4 * 1024 * 1024
#: transfer syntaxes whose pixel data is not compressed: these members are deflated (level 1)
UNCOMPRESSED = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"}
FILESET_ID = "HUREN"

#: Type 1 attributes of the DICOMDIR's PATIENT / STUDY / SERIES / IMAGE records (PS3.3 F.5) a file
#: may lack; the record gets a placeholder, the file stays as it is
_RECORD_DEFAULTS = (
    ("PatientID", "UNKNOWN"),
    ("StudyDate", "19000101"),
    ("StudyTime", "000000"),
    ("StudyID", "1"),
    ("Modality", "OT"),
    ("SeriesNumber", "1"),
    ("InstanceNumber", "1"),
)


class Member(Protocol):
    """One stored instance (``huren.services.imaging.InstanceFile`` is one)."""

    @property
    def sop_uid(self) -> str: ...

    @property
    def transfer_syntax(self) -> str: ...

    @property
    def size(self) -> int: ...

    @property
    def chunks(self) -> Callable[[], Iterator[bytes]]: ...


class DicomdirError(ValueError):
    """An instance the DICOMDIR cannot describe (its header does not parse)."""


def _prefix(chunks: Iterator[bytes], limit: int) -> tuple[bytes, bool]:
    """The first ``limit`` bytes (or fewer) and whether the source ended within them."""
    buf = bytearray()
    for chunk in chunks:
        buf += chunk
        if len(buf) >= limit:
            return bytes(buf), False
    return bytes(buf), True


def _header(member: Member, scratch: Path) -> Dataset:
    """The instance's header (no pixel data), read from a bounded prefix of its bytes."""
    it = member.chunks()
    try:
        head, whole = _prefix(it, HEADER_PREFIX)
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()
    try:
        return dcmread(io.BytesIO(head), stop_before_pixels=True)
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        if whole:
            raise DicomdirError(f"instance {member.sop_uid}: header does not parse") from exc
    # a header longer than the prefix (large private sequences…): the whole file, on disk
    path = scratch / "spool.dcm"
    with path.open("wb") as fh:
        for chunk in member.chunks():
            fh.write(chunk)
    try:
        return dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DicomdirError(f"instance {member.sop_uid}: header does not parse") from exc
    finally:
        path.unlink(missing_ok=True)


def _record_source(ds: Dataset, patient_name: str | None) -> Dataset:
    """The header as FileSet needs it: required record attributes present, text in UTF-8."""
    for keyword, default in _RECORD_DEFAULTS:
        if keyword not in ds or ds[keyword].VM == 0:
            setattr(ds, keyword, default)
    name = patient_name if patient_name is not None else str(ds.get("PatientName") or "")
    # records carry the instance's character set: give them the normalised name in ISO_IR 192
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = name
    for keyword in ("StudyDescription", "SeriesDescription"):
        if keyword in ds:
            setattr(ds, keyword, str(ds.get(keyword) or ""))
    return ds


def _zip_name(file_id: str) -> str:
    return "/".join(p for p in file_id.replace("\\", "/").split("/") if p)


def write_zip(members: Iterable[Member], out: IO[bytes], *, patient_name: str | None = None) -> int:
    """Write the zip (DICOMDIR + every member byte-exact under its File ID) to ``out``; returns the
    number of instances. ``patient_name``: the name as the index holds it (charset normalised),
    used in the DICOMDIR's records. DicomdirError for a member whose header does not parse."""
    listed = list(members)
    with tempfile.TemporaryDirectory(prefix="huren-dicomdir-") as tmp:
        scratch = Path(tmp)
        fs = FileSet()
        try:
            return _write(fs, listed, scratch, out, patient_name)
        finally:
            _discard_stage(fs)


def _discard_stage(fs: FileSet) -> None:
    """FileSet stages into a TemporaryDirectory of its own that it only drops when collected (with a
    ResourceWarning): drop it now."""
    stage = getattr(fs, "_stage", {}).get("t")
    cleanup = getattr(stage, "cleanup", None)
    if cleanup is not None:
        cleanup()


def _write(fs: FileSet, listed: list[Member], scratch: Path, out: IO[bytes], patient_name: str | None) -> int:
    fs.ID = FILESET_ID
    by_uid: dict[str, Member] = {}
    for m in listed:
        if m.sop_uid in by_uid:
            continue
        ds = _record_source(_header(m, scratch), patient_name)
        try:
            fs.add(ds)
        except (ValueError, KeyError, AttributeError) as exc:
            raise DicomdirError(f"instance {m.sop_uid}: {exc}") from exc
        by_uid[m.sop_uid] = m
    root = scratch / "fileset"
    fs.write(root)
    stamp = time.localtime()[:6]
    with zipfile.ZipFile(out, "w", allowZip64=True) as zf:
        zf.write(root / "DICOMDIR", "DICOMDIR", compress_type=zipfile.ZIP_DEFLATED, compresslevel=6)
        for instance in fs:
            m = by_uid[instance.SOPInstanceUID]
            info = zipfile.ZipInfo(_zip_name(instance.FileID), date_time=stamp)
            if m.transfer_syntax in UNCOMPRESSED:
                info.compress_type = zipfile.ZIP_DEFLATED
                info._compresslevel = 1  # type: ignore[attr-defined]  # Python 3.11's name of 3.13's ZipInfo.compress_level
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=m.size >= zipfile.ZIP64_LIMIT) as dst:
                for chunk in m.chunks():
                    dst.write(chunk)
    with suppress(OSError):
        shutil.rmtree(root)
    return len(by_uid)
