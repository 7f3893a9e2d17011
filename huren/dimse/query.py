"""C-FIND, C-MOVE and C-GET SCP (Patient Root and Study Root Query/Retrieve), answered from the
index through ``ImagingService`` for the institution of the calling AE (the access policy and the
access log are the service's).

C-FIND maps the identifier's matching keys (non-empty values) to the service's query keys and
answers each match with exactly the requested keys, plus the level's unique key, in
``SpecificCharacterSet`` ISO_IR 192: names normalised at ingest (GB18030 / GBK / mislabelled
ISO_IR 100) travel as UTF-8. Matching keys the index cannot match on are matched as universal and
the answers say so (Pending 0xFF01). C-MOVE / C-GET are in :mod:`huren.dimse.retrieve` (bound from
here). C-FIND is not relayed to a fallback platform (XC-E-note): it answers what the index holds
(a DIMSE answer cannot say where it came from); a study's UID from another source is retrieved
all the same.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from huren.dimse import status
from huren.dimse.handlers import Context, session_of
from huren.dimse.identifiers import MATCH_KEYS, PARENT_KEYS, SKIP, UNIQUE_KEY, bad, level_of, matching, text
from huren.dimse.retrieve import contexts_for, dataset_of, handle_get, handle_move, instances
from huren.errors import HurenError, NotFound

if TYPE_CHECKING:
    from pynetdicom.events import Event

LOG = logging.getLogger("huren.dimse")

PAGE = 500
MAX_MATCHES = 10000


def _answer(found: Dataset, identifier: Dataset, level: str, aet: str) -> Dataset:
    out = Dataset()
    out.SpecificCharacterSet = "ISO_IR 192"
    out.QueryRetrieveLevel = level
    wanted = [e.keyword for e in identifier if e.keyword and e.keyword not in SKIP]
    for kw in dict.fromkeys([*wanted, UNIQUE_KEY[level], *PARENT_KEYS[level]]):
        if kw in found:
            out[kw] = found[kw]
        elif kw == "RetrieveAETitle":
            out.RetrieveAETitle = aet
        elif kw == "InstanceAvailability":
            out.InstanceAvailability = "ONLINE"
        elif kw in identifier:  # asked for, no value held: zero length, with the query's VR
            asked = identifier[kw]
            out[asked.tag] = DataElement(asked.tag, asked.VR, [] if asked.VR == "SQ" else None)
    return out


def _pages(fetch: Any) -> Iterator[Mapping[str, Any]]:
    offset = 0
    while offset < MAX_MATCHES:
        page = fetch(min(PAGE, MAX_MATCHES - offset), offset)
        yield from page
        if len(page) < PAGE:
            return
        offset += len(page)


def _required(parents: Mapping[str, str], key: str) -> str:
    value = parents.get(key, "")
    if not value or "\\" in value or "*" in value or "?" in value:
        raise bad(key, f"此级别的查询必须给出唯一的 {key}")
    return value


def search(ctx: Context, reader: Any, identifier: Dataset) -> tuple[str, Iterator[Mapping[str, Any]], bool]:
    level = level_of(identifier)
    q, parents, ignored = matching(identifier, level)
    svc = ctx.imaging
    rows: Iterator[Mapping[str, Any]]
    if level == "PATIENT":
        rows = iter(svc.find_patients(reader, q, limit=1000))
    elif level == "STUDY":
        rows = _pages(lambda n, o: svc.find_studies(reader, q, limit=n, offset=o))
    elif level == "SERIES":
        study = _required(parents, "StudyInstanceUID")
        rows = _pages(lambda n, o: svc.find_series(reader, study, q, limit=n, offset=o))
    else:
        study = _required(parents, "StudyInstanceUID")
        series = parents.get("SeriesInstanceUID") or None
        rows = _pages(lambda n, o: svc.find_instances(reader, study, series, q, limit=n, offset=o))
    return level, rows, ignored


def handle_find(event: Event, ctx: Context) -> Iterator[tuple[int | Dataset, Dataset | None]]:
    """EVT_C_FIND: (Pending, identifier) per match, then Success; a refusal its status."""
    session = session_of(event, ctx)
    try:
        identifier = event.identifier
        level, rows, ignored = search(ctx, session.reader, identifier)
        pending = status.PENDING_OPTIONAL_KEYS if ignored else status.PENDING
        for row in rows:
            if event.is_cancelled:
                yield status.CANCEL, None
                return
            yield pending, _answer(Dataset.from_json(dict(row)), identifier, level, ctx.aet)
    except NotFound:  # the study asked for is not one the caller may see (or does not exist): no match
        pass
    except HurenError as exc:
        LOG.warning("DICOM C-FIND 被拒绝（%s）：%s", session.calling_ae, status.message_of(exc))
        yield status.status_dataset(exc, "find"), None
        return
    except Exception as exc:
        LOG.exception("DICOM C-FIND 处理失败（%s）", session.calling_ae)
        yield status.status_dataset(exc, "find"), None
        return
    yield status.SUCCESS, None


__all__ = [
    "MATCH_KEYS", "PARENT_KEYS", "SKIP", "UNIQUE_KEY", "contexts_for", "dataset_of", "handle_find", "handle_get",
    "handle_move", "instances", "level_of", "matching", "search", "text",
]
