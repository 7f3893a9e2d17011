"""What the doctor's pages need from whoever serves them.

The same pages (widget, reminder panel, decision dialog, report view) are served by the platform
and by a hospital's gateway for local use. The platform answers from its services; the gateway
from its preload cache, keeping decisions in its outbox (``huren.gateway.pages``). The pages
speak only to this interface.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from huren.context import Principal
from huren.domain import dictionaries
from huren.domain.recognition import Visit
from huren.errors import HurenError

if TYPE_CHECKING:
    from huren.services.container import Container

#: the visit fields (seed 002 sehr_accept_record) a page carries
VISIT_FIELDS = ("event_no", "dept_code", "dept_name", "dept_std_code", "dept_std_name", "doc_code", "doc_name")


class DoctorBackend(Protocol):
    #: shown in the pages' footer: "platform" or "gateway"
    where: str

    def verify_token(self, token: str) -> Principal:
        """The caller of a page opened with ``token``; Unauthorized otherwise."""

    def now_text(self) -> str:
        """Local time as the records spell it (YYYY-MM-DD hh24:mi:ss)."""

    def staff_visit(self, principal: Principal) -> dict[str, str]:
        """What is known of a logged-in doctor (doc_code, doc_name, dept_…); may be empty."""

    def catalog(self, kind: str) -> list[dict[str, Any]]:
        """Standard items of a kind ({code, name, …}) for the ordering form."""

    def recent(self, principal: Principal, id_type: str, id_no: str, visit: dict[str, str]) -> list[dict[str, Any]]:
        """The patient's recent records (the platform's ``recent`` shape), ★ as ``recognition``."""

    def patient(self, principal: Principal, id_type: str, id_no: str) -> dict[str, str]:
        """Who the patient is, as the newest report writes it: {name, sex_code, sex_name,
        birth_date}, any of them possibly missing; {} when nothing is known."""

    def cache_note(self, id_type: str, id_no: str) -> str:
        """When the last answer for this patient came from a local cache because the platform
        did not answer: the time the cache was filled (YYYY-MM-DD hh24:mi), else ""."""

    def exists(
        self, principal: Principal, id_type: str, id_no: str, check: list[str], lab: list[str], visit: dict[str, str]
    ) -> dict[str, Any]:
        """Exists-for-order in the platform's answer shape."""

    def submit(self, table: str, payload: Any, principal: Principal) -> int:
        """Store accept / quote records (``{"sehr_accept_record": [...]}``); InvalidInput otherwise."""

    def report(self, kind: str, report_id: str, principal: Principal) -> dict[str, Any]:
        """One report by its ref (the answers' ``report_id``); NotFound for a ref that names none: ``{"labmaster"|"exammaster": {...}, "lab_subitem"|"exam_subitem": [...], …}``."""

    def pdf(self, kind: str, report_id: str, principal: Principal) -> bytes:
        """The PDF of the report with this ref; NotFound when there is none."""


def _visit(v: dict[str, str]) -> Visit:
    return Visit(**{k: v.get(k, "") for k in VISIT_FIELDS})


class PlatformBackend:
    """The platform's services behind the doctor's pages."""

    where = "platform"

    def __init__(self, c: Container) -> None:
        self._c = c

    def verify_token(self, token: str) -> Principal:
        p = self._c.auth.verify(token)
        # a page request carries no signature: an institution requiring signed requests may not
        # open pages with its access token (docs/signed-transport.md)
        self._c.transport.refuse_unsigned(p, "page")
        return p

    def now_text(self) -> str:
        return self._c.clock.now().strftime("%Y-%m-%d %H:%M:%S")

    def staff_visit(self, principal: Principal) -> dict[str, str]:
        """The staff row whose code is the doctor's user name, and its department's standard department."""
        c = self._c
        out: dict[str, str] = {}
        try:
            staff = c.masterdata.read("staff", principal, filters={"staff_code": principal.username}, limit=1)["staff"]
            if not staff:
                return out
            me = staff[0]
            out |= {"doc_code": me["staff_code"], "doc_name": me["name"]}
            if me.get("dept_code"):
                depts = c.masterdata.read("dept", principal, filters={"dept_code": me["dept_code"]}, limit=1)["dept"]
                if depts:
                    d = depts[0]
                    std = d.get("dept_std_code") or ""
                    out |= {
                        "dept_code": d["dept_code"],
                        "dept_name": d["dept_name"],
                        "dept_std_code": std,
                        "dept_std_name": d.get("dept_std_name") or dictionaries.load("STD_DEPT").get(std, ""),
                    }
        except HurenError:
            return {}
        return out

    def catalog(self, kind: str) -> list[dict[str, Any]]:
        return self._c.catalog.list(kind=kind)

    def recent(self, principal: Principal, id_type: str, id_no: str, visit: dict[str, str]) -> list[dict[str, Any]]:
        return self._c.recognition.recent(principal, id_type, id_no, days=90, visit=_visit(visit))

    def patient(self, principal: Principal, id_type: str, id_no: str) -> dict[str, str]:
        return self._c.recognition.patient(principal, id_type, id_no)

    def cache_note(self, id_type: str, id_no: str) -> str:
        return ""  # the platform answers from its own store

    def exists(
        self, principal: Principal, id_type: str, id_no: str, check: list[str], lab: list[str], visit: dict[str, str]
    ) -> dict[str, Any]:
        return self._c.recognition.exists(principal, id_type, id_no, check=check, lab=lab, visit=_visit(visit))

    def submit(self, table: str, payload: Any, principal: Principal) -> int:
        return self._c.recognition.submit(table, payload, principal, channel="web")

    def report(self, kind: str, report_id: str, principal: Principal) -> dict[str, Any]:
        return self._c.query.report(kind, report_id, principal)

    def pdf(self, kind: str, report_id: str, principal: Principal) -> bytes:
        return self._c.query.pdf(kind, report_id, principal)
