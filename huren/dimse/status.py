"""The one mapping of huren's refusals to DICOM PS3.7 status codes (Annex C) for every DIMSE service.

A refusal (a :class:`huren.errors.HurenError` with its problems) becomes the status of the DIMSE
response; its rule travels in *Error Comment* (0000,0902). The command set has no Specific Character
Set, so only the default repertoire may travel there: the comment carries the rule and the code
(ASCII, e.g. ``ownership``), and the Chinese message goes to the server's log, where the operator
reads it. An unexpected exception answers a processing failure; its text never reaches the peer.
"""

from __future__ import annotations

import errno
import re
from typing import Literal

from pydicom.dataset import Dataset

from huren.errors import Conflict, Forbidden, HurenError, InvalidInput, NotFound, TooLarge, TooMany, Unauthorized

Operation = Literal["store", "find", "move", "get", "action"]

# --- general (PS3.7 C.1…C.5)
SUCCESS = 0x0000
PENDING = 0xFF00
#: C-FIND: pending, but one or more optional matching keys were not supported (matched as universal)
PENDING_OPTIONAL_KEYS = 0xFF01
CANCEL = 0xFE00
PROCESSING_FAILURE = 0x0110
DUPLICATE_SOP_INSTANCE = 0x0111
NO_SUCH_SOP_INSTANCE = 0x0112
NO_SUCH_ARGUMENT = 0x0114
INVALID_ARGUMENT_VALUE = 0x0115
CLASS_INSTANCE_CONFLICT = 0x0119
SOP_CLASS_NOT_SUPPORTED = 0x0122
NO_SUCH_ACTION = 0x0123
NOT_AUTHORIZED = 0x0124
RESOURCE_LIMITATION = 0x0213

# --- C-STORE (PS3.4 B.2.3)
OUT_OF_RESOURCES = 0xA700
DATASET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
CANNOT_UNDERSTAND = 0xC000
#: warning: the dataset's SOP Instance / Class UID are not the ones of its C-STORE request
WARNING_DATASET_MISMATCH = 0xB007

# --- C-FIND (PS3.4 C.4.1.1.4)
IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS = 0xA900
UNABLE_TO_PROCESS = 0xC000

# --- C-MOVE / C-GET (PS3.4 C.4.2.1.5, C.4.3.1.4)
OUT_OF_RESOURCES_MATCHES = 0xA701
OUT_OF_RESOURCES_SUBOPERATIONS = 0xA702
MOVE_DESTINATION_UNKNOWN = 0xA801
SUBOPERATIONS_WITH_FAILURES = 0xB000

#: Storage Commitment failure reasons (PS3.4 J.3.3.1.1, Failure Reason 0008,1197)
FAILURE_NO_SUCH_INSTANCE = 0x0112
FAILURE_PROCESSING = 0x0110
FAILURE_CLASS_INSTANCE_CONFLICT = 0x0119
FAILURE_REASON = {"missing": FAILURE_NO_SUCH_INSTANCE, "sha256": FAILURE_PROCESSING, "sop_class": FAILURE_CLASS_INSTANCE_CONFLICT}

#: C-STORE: the rule of an InvalidInput → status
_STORE_RULES = {
    "dicom": CANNOT_UNDERSTAND,  # malformed, truncated, not DICOM
    "uid": DATASET_DOES_NOT_MATCH_SOP_CLASS,  # missing / invalid / mismatching UIDs
    "sop_class": SOP_CLASS_NOT_SUPPORTED,  # unknown or unsupported SOP class
}

_BAD_INPUT = {
    "store": CANNOT_UNDERSTAND,
    "find": IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS,
    "move": IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS,
    "get": IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS,
    "action": INVALID_ARGUMENT_VALUE,
}
_RESOURCES = {
    "store": OUT_OF_RESOURCES,
    "find": OUT_OF_RESOURCES,
    "move": OUT_OF_RESOURCES_MATCHES,
    "get": OUT_OF_RESOURCES_MATCHES,
    "action": RESOURCE_LIMITATION,
}
_FAILED = {
    "store": PROCESSING_FAILURE,
    "find": UNABLE_TO_PROCESS,
    "move": UNABLE_TO_PROCESS,
    "get": UNABLE_TO_PROCESS,
    "action": PROCESSING_FAILURE,
}


def status_for(exc: BaseException, op: Operation) -> int:
    """The PS3.7 status that answers ``exc`` raised while serving ``op``."""
    if isinstance(exc, InvalidInput):
        if op == "store":
            for p in exc.problems:
                if p.rule in _STORE_RULES:
                    return _STORE_RULES[p.rule]
        return _BAD_INPUT[op]
    if isinstance(exc, Forbidden | Unauthorized):
        return NOT_AUTHORIZED
    if isinstance(exc, TooLarge | TooMany):
        return _RESOURCES[op]
    if isinstance(exc, Conflict):
        return DUPLICATE_SOP_INSTANCE if op == "store" else _FAILED[op]
    if isinstance(exc, NotFound):
        return NO_SUCH_SOP_INSTANCE if op == "action" else _FAILED[op]
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.ENOMEM):
        return _RESOURCES[op]
    if isinstance(exc, MemoryError):
        return _RESOURCES[op]
    return _FAILED[op]


_ASCII = re.compile(r"[^\x20-\x7e]")


def comment_for(exc: BaseException) -> str:
    """*Error Comment* (LO, ≤ 64 default-repertoire characters): the error's code and rules."""
    if isinstance(exc, HurenError):
        rules = sorted({p.rule for p in exc.problems if p.rule})
        text = exc.code + (":" + ",".join(rules) if rules else "")
    else:
        text = "internal"
    return _ASCII.sub("", text)[:64]


def status_dataset(exc: BaseException, op: Operation) -> Dataset:
    """A status dataset (Status + Error Comment) for a handler to return."""
    ds = Dataset()
    ds.Status = status_for(exc, op)
    ds.ErrorComment = comment_for(exc)
    return ds


def message_of(exc: BaseException) -> str:
    """The operator's log line for a refusal: the Chinese message and the problems' messages."""
    if isinstance(exc, HurenError):
        parts = [exc.text(), *(f"{p.field}: {p.message}" for p in exc.problems if p.message != exc.message)]
        return "；".join(parts)
    return f"{type(exc).__name__}"
