"""What flows through the gateway: a record extracted from a hospital source, bound for the platform.

Every source yields ``Record``s; the outbox stores them before anything is uploaded; the uploader
sends them with ``huren.client``. The record's ``key`` identifies the report (or master-data row)
it belongs to: records with the same key are uploaded in the order they were extracted, so a void
never overtakes its registration.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

#: What a record asks the platform to do.
KINDS = (
    "lab",  # register / resubmit a lab report: {"labmaster": {...}, "lab_subitem": [...]}
    "exam",  # register / resubmit an exam report: {"exammaster": {...}, "exam_subitem": [...]}
    "void_lab",  # void a lab report: the DeleteLabInfo filter fields
    "void_exam",  # void an exam report
    "daily",  # daily counts: {"lab_exam_report": [...]}
    "dept",  # master data (HZ-2): {"dept": [...]}
    "staff",  # (HZ-3): {"staff": [...]}
    "patient",  # (HZ-1): {"patient": [...]}
    "accept",  # doctors' decisions taken locally: {"sehr_accept_record": [...]}
    "quote",  # citations taken locally: {"sehr_quote_record": [...]}
    "reminder",  # reminders shown from the preload cache (XC-P4): {"reminder_log": [...]}
)


@dataclass(frozen=True, slots=True)
class Record:
    kind: str
    key: str  # e.g. "lab:<org>|<report_form_no>|<patient_id>|<event_type>|<event_no>"
    payload: dict[str, Any]
    source: str  # the configured source's name
    watermark: str = ""  # the source's position after this record (e.g. last_update_dtime)
    attachments: dict[str, bytes] = field(default_factory=dict)  # e.g. {"pdf": b"%PDF-..."}


class Source(Protocol):
    """A pluggable hospital source. ``poll`` yields new records after ``watermark`` (the value the
    outbox last stored for this source) and must not change the hospital's data."""

    name: str

    def poll(self, watermark: str) -> Iterator[Record]: ...


def os_reason(exc: OSError) -> str:
    """Why a file could not be read, in the operator's words (the system's own text is English)."""
    if isinstance(exc, FileNotFoundError):
        return "文件不存在"
    if isinstance(exc, PermissionError):
        return "没有读取权限"
    if isinstance(exc, IsADirectoryError):
        return "这是一个文件夹，不是文件"
    return f"系统错误（errno {exc.errno}）" if exc.errno else "系统错误"
