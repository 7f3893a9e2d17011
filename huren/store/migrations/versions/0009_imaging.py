"""imaging: studies, series and instances indexed, image keys, DICOM nodes, deletion notices (issue 12)

- ``image_study``: one row per study held for an institution; the patient's identity sealed
  (PatientName, PatientID, PatientBirthDate, the group 0010 DICOM JSON) with blind indexes of
  PatientID and PatientName for exact QIDO / C-FIND matches; indexes for the QIDO filters
  (study UID unique, accession number, study date, institution).
- ``image_series``, ``image_instance`` (SOP instance UID unique; size, SHA-256 of the bytes as
  received, their DICOM JSON metadata built once at ingest).
- indexes of ``exam_report`` by ``study_instance_uid`` and by (``org_code``, ``pacs_id``): the
  exam report behind a study.
- ``image_key`` (viewer / download / film keys: only their SHA-256), ``dicom_node`` (AE titles),
  ``image_deletion`` (YB-4.5 notices).

New tables and indexes only: nothing already stored is changed.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

SEALED_LEN = 768  # huren.store.tables.SEALED_LEN when this migration was written
UID = 64
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _s(name: str, n: int, nullable: bool = False) -> sa.Column[str]:
    return sa.Column(name, sa.String(length=n), nullable=nullable, server_default=None)


def upgrade() -> None:
    op.create_table(
        "image_study",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        _s("study_uid", UID),
        _s("org_code", 128),
        _s("state", 16),
        _s("patient_name", SEALED_LEN, True),
        _s("patient_name_bidx", 32, True),
        _s("patient_id", SEALED_LEN, True),
        _s("patient_id_bidx", 32, True),
        _s("patient_birth_date", SEALED_LEN, True),
        sa.Column("patient_json", sa.Text(), nullable=True),
        _s("patient_sex", 16),
        _s("study_date", 8),
        _s("study_time", 16),
        _s("accession_number", 64),
        _s("study_id", 16),
        _s("study_description", 256),
        _s("referring_physician", 256),
        _s("institution_name", 256),
        _s("modalities", 128),
        sa.Column("series_count", sa.Integer(), nullable=False),
        sa.Column("instance_count", sa.Integer(), nullable=False),
        _s("charset", 64),
        _s("sender", 256),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("committed_at", sa.DateTime(), nullable=True),
        sa.Column("deleted_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_image_study"),
        sa.UniqueConstraint("study_uid", name="uq_image_study_study_uid"),
    )
    for cols in (
        ["org_code", "accession_number"], ["accession_number"], ["patient_id_bidx"], ["patient_name_bidx"],
        ["study_date"], ["org_code", "study_date"],
    ):
        op.create_index(f"ix_image_study_{'_'.join(cols)}", "image_study", cols)
    op.create_table(
        "image_series",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("study_id", Id, nullable=False),
        _s("series_uid", UID),
        _s("modality", 16),
        sa.Column("series_number", sa.Integer(), nullable=True),
        _s("series_description", 256),
        _s("body_part", 64),
        _s("series_date", 8),
        _s("series_time", 16),
        sa.Column("instance_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_image_series"),
        sa.ForeignKeyConstraint(["study_id"], ["image_study.id"], name="fk_image_series_study_id_image_study", ondelete="CASCADE"),
        sa.UniqueConstraint("series_uid", name="uq_image_series_series_uid"),
    )
    op.create_index("ix_image_series_study_id", "image_series", ["study_id"])
    op.create_table(
        "image_instance",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("study_id", Id, nullable=False),
        sa.Column("series_id", Id, nullable=False),
        _s("sop_uid", UID),
        _s("sop_class_uid", UID),
        _s("transfer_syntax", UID),
        sa.Column("instance_number", sa.Integer(), nullable=True),
        sa.Column("rows", sa.Integer(), nullable=True),
        sa.Column("columns", sa.Integer(), nullable=True),
        sa.Column("frames", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        _s("sha256", 64),
        sa.Column("metadata", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_image_instance"),
        sa.ForeignKeyConstraint(["study_id"], ["image_study.id"], name="fk_image_instance_study_id_image_study", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["series_id"], ["image_series.id"], name="fk_image_instance_series_id_image_series", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("sop_uid", name="uq_image_instance_sop_uid"),
    )
    op.create_index("ix_image_instance_study_id_series_id", "image_instance", ["study_id", "series_id"])
    op.create_index("ix_image_instance_series_id_instance_number", "image_instance", ["series_id", "instance_number"])
    op.create_table(
        "image_key",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        _s("key_sha256", 64),
        _s("kind", 16),
        _s("study_uid", UID),
        _s("org_code", 128),
        _s("viewer_org", 128, True),
        _s("issued_by", 256),
        sa.Column("issued_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        _s("revoked_by", 256, True),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_image_key"),
        sa.UniqueConstraint("key_sha256", name="uq_image_key_key_sha256"),
    )
    op.create_index("ix_image_key_study_uid", "image_key", ["study_uid"])
    op.create_table(
        "dicom_node",
        _s("ae_title", 16),
        _s("org_code", 128),
        _s("hosts", 1024, True),
        sa.Column("port", sa.Integer(), nullable=True),
        _s("purpose", 8),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("ae_title", name="pk_dicom_node"),
    )
    op.create_index("ix_dicom_node_org_code", "dicom_node", ["org_code"])
    op.create_table(
        "image_deletion",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        _s("org_code", 128),
        _s("accession_no", 64),
        _s("patient_name", SEALED_LEN, True),
        _s("operate_doctor_name", 128),
        _s("operate_datetime", 32),
        sa.Column("study_uids", sa.Text(), nullable=False),
        sa.Column("instances", sa.Integer(), nullable=False),
        _s("actor", 256),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_image_deletion"),
    )
    op.create_index("ix_image_deletion_org_code_accession_no", "image_deletion", ["org_code", "accession_no"])
    op.create_index("ix_exam_report_study_instance_uid", "exam_report", ["study_instance_uid"])
    op.create_index("ix_exam_report_org_code_pacs_id", "exam_report", ["org_code", "pacs_id"])


def downgrade() -> None:
    op.drop_index("ix_exam_report_org_code_pacs_id", table_name="exam_report")
    op.drop_index("ix_exam_report_study_instance_uid", table_name="exam_report")
    for name in ("image_deletion", "dicom_node", "image_key", "image_instance", "image_series", "image_study"):
        op.drop_table(name)
