"""The one door where row ids cross a transport (issue 10 §1.11: no walking the store).

Inside the store a report is an integer; outside — REST paths and bodies, page URLs and form
fields, the answers' ``report_id`` and ``url``, links, registration answers, the gateway's pages —
it is an opaque ref (``huren.crypto.opaque``, 22 characters). Services encode on the way out with
:meth:`Refs.report` and decode once on the way in with :meth:`Refs.report_id`, which answers
anything that is not a ref of this installation for that kind exactly as a missing report:
``NotFound("报告不存在")``.

Rejected submissions the same way (tag ``rejected``): :meth:`Refs.rejected` where one is kept
(``RegistryService.reject`` returns the ref, so the REST error body, a batch result, the SOAP
``error:`` text and the pages all name it alike) and in the quality list; :meth:`Refs.rejected_id`
once, in ``QualityService.rejected_payload`` — ``NotFound("被拒提交不存在")`` for anything else.
"""

from __future__ import annotations

import functools
from typing import Final

from huren.crypto.opaque import RefCodec
from huren.errors import NotFound

#: the one message for a missing report and for a ref that names none (indistinguishable)
MISSING: Final = "报告不存在"
NO_PDF: Final = "报告没有PDF文件"
#: the one message for a missing rejected submission and for a ref that names none
MISSING_REJECTED: Final = "被拒提交不存在"
#: the codec's tag of rejected-submission refs (distinct from every report kind and record tag)
REJECTED: Final = "rejected"


def report_url(refs: Refs, kind: str, report_id: int) -> str:
    return f"/api/v1/{kind}-reports/{refs.report(kind, report_id)}"


def pdf_url(refs: Refs, kind: str, report_id: int) -> str:
    return f"/api/v1/recognition/{kind}-reports/{refs.report(kind, report_id)}/pdf"


class Refs:
    """Refs of one installation: reports (the codec's tag is the report kind), the accept / quote
    records listed back to an institution (tag ``record:accept`` / ``record:quote``) and rejected
    submissions (tag ``rejected``)."""

    def __init__(self, codec: RefCodec) -> None:
        self._codec = codec
        # refs are deterministic: an answer names a report twice (its id and its url) and a
        # doctor's widget, panel and dialog ask about the same reports, so recent ones are kept
        self._report = functools.lru_cache(maxsize=4096)(codec.encode)

    def report(self, kind: str, report_id: int) -> str:
        """The ref shown outside for report ``report_id`` of ``kind``."""
        return self._report(kind, report_id)

    def record(self, table: str, record_id: int) -> str:
        """The ref shown outside for row ``record_id`` of the accept or quote records."""
        return self._codec.encode(f"record:{table}", record_id)

    def rejected(self, rejected_id: int) -> str:
        """The ref shown outside for rejected submission ``rejected_id``."""
        return self._codec.encode(REJECTED, rejected_id)

    def rejected_id(self, ref: object) -> int:
        """The store id of a rejected-submission ref; NotFound (as a missing one) otherwise."""
        n = self._codec.decode(REJECTED, ref)
        if n is None or n == 0 or n >= 2**63:
            raise NotFound(MISSING_REJECTED)
        return n

    def report_id(self, kind: str, ref: object) -> int:
        """The store id of a report ref of ``kind``; NotFound (as a missing report) otherwise."""
        n = self._codec.decode(kind, ref)
        if n is None or n == 0 or n >= 2**63:
            raise NotFound(MISSING)
        return n
