"""Signed, expiring report-viewing links (BJ-1.3/1.4): a URL that serves one report's PDF without a
bearer token until it expires.

A link is a signed claim of the one codec (``huren.crypto.tokens``, purpose ``report-link``: an access
token is never a valid link, nor a link an access token), and dies with its creator's credential
version (account disabled, password changed). The HTTP side is ``huren.api.rest_transport``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from huren.context import Clock, Principal
from huren.crypto.tokens import Signer
from huren.domain.records import format_value
from huren.errors import Forbidden, InvalidInput, LinkExpired, NotFound, Problem
from huren.services import access
from huren.services.audit import AuditService
from huren.services.auth import AuthService
from huren.services.refs import MISSING, NO_PDF, Refs
from huren.store import reports
from huren.store.blobs import BlobStore
from huren.store.database import Database

log = logging.getLogger("huren.transport")

LINK_TTL_DEFAULT = 900
LINK_TTL_MAX = 86400


@dataclass(frozen=True, slots=True)
class Link:
    token: str
    kind: str
    #: the report's ref (never the store id)
    report_id: str
    expires_at: datetime


class LinkService:
    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        clock: Clock,
        audit: AuditService,
        secret: bytes,
        refs: Refs,
        *,
        accounts: AuthService | None = None,
    ) -> None:
        self._db = db
        self._refs = refs
        self._accounts = accounts  # links die with their creator's credential version
        self._blobs = blobs
        self._clock = clock
        self._audit = audit
        self._links = Signer(secret, "report-link", clock.time)  # the one signed-claims codec

    def create_link(self, principal: Principal, kind: str, ref: str, ttl_seconds: int = LINK_TTL_DEFAULT) -> Link:
        """A token that serves one report's PDF (named by its ref) without a bearer token until it expires."""
        access.require(principal, "report.read")
        if kind not in ("lab", "exam"):
            raise InvalidInput("报告类型无效", [Problem("kind", "dictionary", "应为 lab 或 exam")])
        if not 1 <= ttl_seconds <= LINK_TTL_MAX:
            raise InvalidInput("链接有效期无效", [Problem("ttl_seconds", "range", f"应为 1～{LINK_TTL_MAX} 秒")])
        report_id = self._refs.report_id(kind, ref)
        m = self._master(kind, report_id)
        with self._db.read() as conn:
            access.check_org(conn, principal, "report.read", m["org_code"])
        exp = int(self._clock.time()) + ttl_seconds
        # the claims are signed, not sealed: they carry the ref, so the token shows no store id
        claims: dict[str, Any] = {"k": kind, "i": ref, "o": principal.org_code, "u": principal.username, "r": principal.role}
        if self._accounts is not None:
            claims["v"] = self._accounts.version_of(principal.org_code, principal.username)
        token = self._links.sign_until(claims, exp)
        expires_at = datetime.fromtimestamp(exp, self._clock.tz).replace(tzinfo=None)
        self._audit.record(
            principal, f"link_create_{kind}", id_type_code=m["id_type_code"], id_no=m["id_no"],
            target=f"{kind}:{report_id} until {format_value(expires_at)}",
        )
        return Link(token, kind, ref, expires_at)

    def _master(self, kind: str, report_id: int) -> dict[str, Any]:
        with self._db.read() as conn:
            m = reports.get_master(conn, kind, report_id)
        if m is None:
            raise NotFound(MISSING)
        if not m["pdf_sha256"]:
            raise NotFound(NO_PDF)
        return m

    def open_link(self, token: str, remote_addr: str | None) -> tuple[str, str, bytes]:
        """(kind, report ref, PDF) of a good, unexpired link; Forbidden if forged, LinkExpired if late."""
        got = self._links.open(token)
        try:
            if got is None:
                raise ValueError("forged, damaged or not canonically encoded")
            claims = got.claims
            kind, ref = str(claims["k"]), claims["i"]
            # a link signed before refs (at most LINK_TTL_MAX old) holds the store id itself
            report_id = ref if type(ref) is int else self._refs.report_id(kind, ref)
            ref = self._refs.report(kind, report_id)
            who = Principal(str(claims["o"]), str(claims["u"]), str(claims["r"]), remote_addr)
        except (ValueError, KeyError, TypeError, NotFound):
            log.warning("forged or damaged viewing link from %s", remote_addr)
            raise Forbidden("报告查看链接无效或已被篡改") from None
        if got.expired:
            self._audit.record(who, f"link_expired_{kind}", target=f"{kind}:{report_id}")
            raise LinkExpired("报告查看链接已过期，请重新生成")
        version = claims.get("v")
        if self._accounts is not None and (
            type(version) is not int or not self._accounts.current(who.org_code, who.username, version)
        ):
            self._audit.record(who, f"link_revoked_{kind}", target=f"{kind}:{report_id}")
            raise Forbidden("报告查看链接已失效：创建链接的账号已停用或已修改密码，请重新生成")
        m = self._master(kind, report_id)
        data = self._blobs.get(m["pdf_sha256"])
        if data is None:
            raise NotFound(NO_PDF)
        self._audit.record(who, f"link_pdf_{kind}", id_type_code=m["id_type_code"], id_no=m["id_no"], target=f"{kind}:{report_id}")
        return kind, ref, data
