"""SQLAlchemy Core tables of the imaging archive (issue 12): studies, series, instances, image keys,
DICOM nodes and YB-4.5 deletion notices. Re-exported by ``huren.store.tables``."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from huren.store.tables_base import SEALED_LEN, Id, metadata

#: UIDs are at most 64 characters (PS3.5 §9.1); DICOM short strings at most 64 (LO) / 16 (SH, CS)
UID_LEN = 64

#: A study held for one institution. The patient's identity (PatientName, PatientID,
#: PatientBirthDate and the whole group 0010 as DICOM JSON) is sealed (huren.store.sealing,
#: context ``org_code|study_uid``); ``patient_id_bidx`` / ``patient_name_bidx`` are blind indexes
#: for exact matches. Counts and modalities are kept up to date at ingest, so QIDO reads one row.
image_study = Table(
    "image_study",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("study_uid", String(UID_LEN), nullable=False, unique=True),
    Column("org_code", String(128), nullable=False),
    Column("state", String(16), nullable=False),  # receiving | complete (huren.domain.imaging)
    Column("patient_name", String(SEALED_LEN)),
    Column("patient_name_bidx", String(32)),
    Column("patient_id", String(SEALED_LEN)),
    Column("patient_id_bidx", String(32)),
    Column("patient_birth_date", String(SEALED_LEN)),
    Column("patient_json", Text),  # sealed DICOM JSON of group 0010, merged into served metadata
    Column("patient_sex", String(16), nullable=False, default=""),
    Column("study_date", String(8), nullable=False, default=""),
    Column("study_time", String(16), nullable=False, default=""),
    Column("accession_number", String(64), nullable=False, default=""),
    Column("study_id", String(16), nullable=False, default=""),
    Column("study_description", String(256), nullable=False, default=""),
    Column("referring_physician", String(256), nullable=False, default=""),
    Column("institution_name", String(256), nullable=False, default=""),
    Column("modalities", String(128), nullable=False, default=""),  # backslash-joined, sorted
    Column("series_count", Integer, nullable=False, default=0),
    Column("instance_count", Integer, nullable=False, default=0),
    Column("charset", String(64), nullable=False, default=""),  # the SpecificCharacterSet as received
    Column("sender", String(256), nullable=False, default=""),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("committed_at", DateTime),
    Column("deleted_at", DateTime),  # YB-4.5: hidden (not erased)
    Index(None, "org_code", "accession_number"),
    Index(None, "accession_number"),
    Index(None, "patient_id_bidx"),
    Index(None, "patient_name_bidx"),
    Index(None, "study_date"),
    Index(None, "org_code", "study_date"),
)

image_series = Table(
    "image_series",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("study_id", Id, ForeignKey("image_study.id", ondelete="CASCADE"), nullable=False),
    Column("series_uid", String(UID_LEN), nullable=False, unique=True),
    Column("modality", String(16), nullable=False, default=""),
    Column("series_number", Integer),
    Column("series_description", String(256), nullable=False, default=""),
    Column("body_part", String(64), nullable=False, default=""),
    Column("series_date", String(8), nullable=False, default=""),
    Column("series_time", String(16), nullable=False, default=""),
    Column("instance_count", Integer, nullable=False, default=0),
    Index(None, "study_id"),
)

#: One stored file: its bytes as received are the blob ``sha256`` (huren.store.blobs, streamed
#: format); ``metadata`` is its DICOM JSON without group 0010 and without bulk data values.
image_instance = Table(
    "image_instance",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("study_id", Id, ForeignKey("image_study.id", ondelete="CASCADE"), nullable=False),
    Column("series_id", Id, ForeignKey("image_series.id", ondelete="CASCADE"), nullable=False),
    Column("sop_uid", String(UID_LEN), nullable=False, unique=True),
    Column("sop_class_uid", String(UID_LEN), nullable=False),
    Column("transfer_syntax", String(UID_LEN), nullable=False),
    Column("instance_number", Integer),
    Column("rows", Integer),
    Column("columns", Integer),
    Column("frames", Integer, nullable=False, default=1),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("metadata", Text, nullable=False),
    Column("received_at", DateTime, nullable=False),
    Column("deleted_at", DateTime),
    Index(None, "study_id", "series_id"),
    Index(None, "series_id", "instance_number"),
)

#: viewer / download / film keys: only the SHA-256 of a key is kept
image_key = Table(
    "image_key",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("key_sha256", String(64), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("study_uid", String(UID_LEN), nullable=False),
    Column("org_code", String(128), nullable=False),  # the study's institution
    Column("viewer_org", String(128)),  # the institution it was issued to (None: a patient's film link)
    Column("issued_by", String(256), nullable=False),
    Column("issued_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False),
    Column("revoked_at", DateTime),
    Column("revoked_by", String(256)),
    Column("uses", Integer, nullable=False, default=0),
    Column("last_used_at", DateTime),
    Index(None, "study_uid"),
)

#: AE titles: who may push (a calling AE → its institution) and where C-MOVE may send (host, port)
dicom_node = Table(
    "dicom_node",
    metadata,
    Column("ae_title", String(16), primary_key=True),
    Column("org_code", String(128), nullable=False),
    Column("hosts", String(1024)),  # NULL: any host; else comma-separated addresses
    Column("port", Integer),
    Column("purpose", String(8), nullable=False, default="sender"),  # sender | pacs | both
    Column("created_at", DateTime, nullable=False),
    Index(None, "org_code"),
)

#: YB-4.5 image-deletion notices (patientName sealed, context ``org_code``)
image_deletion = Table(
    "image_deletion",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("org_code", String(128), nullable=False),  # hospitalId
    Column("accession_no", String(64), nullable=False),
    Column("patient_name", String(SEALED_LEN)),
    Column("operate_doctor_name", String(128), nullable=False, default=""),
    Column("operate_datetime", String(32), nullable=False, default=""),
    Column("study_uids", Text, nullable=False, default=""),
    Column("instances", Integer, nullable=False, default=0),
    Column("actor", String(256), nullable=False),
    Column("received_at", DateTime, nullable=False),
    Index(None, "org_code", "accession_no"),
)
