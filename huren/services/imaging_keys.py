"""Image keys (XC-E7…E11, YB-4.3), mixed into ``ImagingService`` (also ``container.imaging_keys``).

A key is 16 random bytes as unpadded base64url (22 characters); only its SHA-256 is stored
(``image_key``), with its kind, its one study, the institution it was issued to, its expiry and
its revocation. Kinds and default lifetimes:

- ``viewer`` (XC-E7/E8, HUREN_VIEWER_KEY_TTL_SECONDS, 30 min): a viewing institution's doctor
  views another institution's study; issued to any institution the access policy lets read it
  (``image_key.issue``); the viewed side verifies it (``image_key.verify``, its own studies).
- ``download`` (XC-E9…E11, 15 min): the UID query, the WADO-URI download.
- ``film`` (YB-4.3, 30 days): the patient's cloud-film link; issued by the study's own
  institution only.

Every issue, verification, use and revocation is in the access log (a use once per key and
study within the dedupe window; the key's use count and last use are kept on its row then too).
"""

from __future__ import annotations

import hashlib
import os
import unicodedata
from typing import Any

from huren.context import Clock, Principal
from huren.crypto import b64url
from huren.domain import imaging
from huren.errors import Forbidden, InvalidInput, LinkExpired, NotFound, Problem, Unauthorized
from huren.services import access
from huren.services.audit import AuditService
from huren.services.imaging_types import IssuedKey, KeyCheck, KeyGrant, Once, not_found
from huren.store import imaging as store
from huren.store import imaging_links as links
from huren.store.database import Database

KEY_ACTIONS = ("image_key.issue", "image_key.verify", "image_key.use", "image_key.revoke")


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("ascii", "replace")).hexdigest()


def _grant(row: dict[str, Any]) -> KeyGrant:
    return KeyGrant(
        int(row["id"]), str(row["kind"]), str(row["study_uid"]), row["viewer_org"], str(row["issued_by"]), row["expires_at"]
    )


class ImagingKeys:
    _db: Database
    _clock: Clock
    _audit: AuditService
    _once: Once
    key_ttl: dict[str, int]
    public_base: str

    def _visible(self, conn: Any, reader: Any, study_uid: str) -> dict[str, Any]:  # ImagingReads
        raise NotImplementedError

    def exam_for_study(self, reader: Any, study_uid: str) -> dict[str, Any] | None:  # ImagingReads
        raise NotImplementedError

    def issue_key(self, principal: Principal, kind: str, study_uid: str, *, ttl_seconds: int | None = None) -> IssuedKey:
        """A new key for one study (see the module's docstring for who may ask for which kind)."""
        imaging.check_key_kind(kind)
        access.require(principal, "image_key.issue")
        now = self._clock.now()
        expires = imaging.key_expiry(now, ttl_seconds if ttl_seconds is not None else self.key_ttl[kind])
        key = b64url.encode(os.urandom(imaging.KEY_BYTES))
        with self._db.write() as conn:
            study = self._visible(conn, principal, study_uid)
            if kind == imaging.FILM and study["org_code"] != principal.org_code:
                msg = "云胶片链接只能由检查所属机构生成"
                raise Forbidden(msg, [Problem("study_uid", "ownership", msg)])
            row = {
                "key_sha256": key_hash(key), "kind": kind, "study_uid": study_uid, "org_code": study["org_code"],
                "viewer_org": None if kind == imaging.FILM else principal.org_code, "issued_by": principal.actor[:256],
                "issued_at": now, "expires_at": expires, "uses": 0,
            }
            key_id = links.add_key(conn, row)
        self._audit.record(principal, "image_key.issue", target=f"{kind}#{key_id}:{study_uid}", read=False)
        return IssuedKey(key, key_id, kind, study_uid, expires)

    def _lookup(self, key: str) -> dict[str, Any] | None:
        if not isinstance(key, str) or not imaging.looks_like_key(key.strip()):
            return None
        with self._db.read() as conn:
            return links.key_by_hash(conn, key_hash(key.strip()))

    def verify_key(self, key: str, kind: str | None = None, *, verifier: Principal | None = None) -> KeyCheck:
        """Whether a key is good now (and for ``kind``). ``verifier``: the viewed side asking
        (``image_key.verify``, for its own studies' keys only). Every check is logged."""
        if verifier is not None:
            access.require(verifier, "image_key.verify")
        row = self._lookup(key)
        if row is not None and verifier is not None and row["org_code"] != verifier.org_code:
            row = None  # another institution's key: as unknown to this verifier
        who = verifier or Principal(row["viewer_org"] or "-" if row else "-", f"key:{row['id']}" if row else "key:?", "key")
        if row is None:
            self._audit.record(who, "image_key.verify", target=f"{kind or '-'}: {imaging.KEY_UNKNOWN}", read=False)
            return KeyCheck(False, imaging.KEY_UNKNOWN, None, None, None, None)
        state = imaging.key_state(
            kind=row["kind"], expires_at=row["expires_at"], revoked=row["revoked_at"] is not None, now=self._clock.now(),
            allowed=None if kind is None else (kind,),
        )
        self._audit.record(
            who, "image_key.verify", target=f"{row['kind']}#{row['id']}:{row['study_uid']}: {state.reason or 'ok'}"[:256], read=False
        )
        grant = _grant(row) if state.valid else None
        exam = None
        if grant is not None:
            try:
                exam = self.exam_for_study(grant, grant.study_uid)
            except NotFound:  # the study was deleted (YB-4.5) since the key was issued
                return KeyCheck(False, imaging.KEY_UNKNOWN, None, row["study_uid"], row["viewer_org"], None)
        return KeyCheck(state.valid, state.reason, grant, str(row["study_uid"]), row["viewer_org"], exam)

    def grant(self, key: str, kind_allowed: tuple[str, ...] | list[str]) -> KeyGrant:
        """The grant of a key a transport was given: Unauthorized (missing, unknown), LinkExpired
        (expired), Forbidden (revoked, another kind)."""
        row = self._lookup(key) if key else None
        if row is None:
            msg = "影像密钥不存在或无效" if key else "缺少影像密钥或访问令牌"
            raise Unauthorized(msg, [Problem("key", "key", msg)])
        state = imaging.key_state(
            kind=row["kind"], expires_at=row["expires_at"], revoked=row["revoked_at"] is not None, now=self._clock.now(),
            allowed=tuple(kind_allowed),
        )
        if not state.valid:
            msg = {
                imaging.KEY_EXPIRED: "影像密钥已过期，请重新获取",
                imaging.KEY_REVOKED: "影像密钥已被撤销",
            }.get(state.reason or "", f"该影像密钥不能用于此操作（{imaging.KEY_KIND_NAMES.get(row['kind'], row['kind'])}）")
            problem = [Problem("key", "key", f"影像密钥{state.reason}")]
            raise LinkExpired(msg, problem) if state.reason == imaging.KEY_EXPIRED else Forbidden(msg, problem)
        g = _grant(row)
        self._once.run((f"key:{g.key_id}", g.study_uid, "image_key.use"), lambda: self._record_use(g))
        return g

    def _record_use(self, g: KeyGrant) -> None:
        with self._db.write(durable=False) as conn:
            links.used_key(conn, g.key_id, self._clock.now())
        who = Principal(g.viewer_org or "-", f"key:{g.key_id}", "key")
        self._audit.record(who, "image_key.use", target=f"{g.kind}#{g.key_id}:{g.study_uid}", read=False)

    def revoke_key(self, principal: Principal, key_or_id: str | int) -> None:
        """Revoke a key (by the key itself or its id): by the institution it was issued to, or the
        study's own institution. NotFound for a key the caller may not revoke."""
        access.require(principal, "image_key.issue")
        with self._db.write() as conn:
            if isinstance(key_or_id, int) or (isinstance(key_or_id, str) and key_or_id.isdigit()):
                row = links.key_by_id(conn, int(key_or_id))
            else:
                row = links.key_by_hash(conn, key_hash(str(key_or_id).strip()))
            if row is None or principal.org_code not in (row["org_code"], row["viewer_org"]):
                msg = "影像密钥不存在"
                raise NotFound(msg, [Problem("key", "not_found", msg)])
            links.revoke_key(conn, int(row["id"]), by=principal.actor[:256], now=self._clock.now())
        self._audit.record(principal, "image_key.revoke", target=f"{row['kind']}#{row['id']}:{row['study_uid']}", read=False)

    def list_keys(self, principal: Principal, study_uid: str) -> list[dict[str, Any]]:
        """The keys of a study (never the keys themselves): all of them for the study's
        institution, those issued to the caller's institution otherwise."""
        access.require(principal, "image_key.issue")
        now = self._clock.now()
        with self._db.read() as conn:
            study = self._visible(conn, principal, study_uid)
            own = study["org_code"] == principal.org_code
            rows = links.keys_of(conn, study_uid, None if own else principal.org_code)
        out = []
        for r in rows:
            state = imaging.key_state(kind=r["kind"], expires_at=r["expires_at"], revoked=r["revoked_at"] is not None, now=now)
            out.append({
                "key_id": int(r["id"]), "kind": r["kind"], "study_uid": r["study_uid"], "viewer_org": r["viewer_org"],
                "issued_by": r["issued_by"], "issued_at": r["issued_at"], "expires_at": r["expires_at"],
                "revoked_at": r["revoked_at"], "uses": int(r["uses"]), "last_used_at": r["last_used_at"],
                "state": "valid" if state.valid else state.reason,
            })
        return out

    # -- YB-4.3: the patient's cloud film ----------------------------------------------------------
    def film_key(self, principal: Principal, hospitalId: str, accessNumber: str, modality: str | None = None) -> IssuedKey:
        """A film key for the study of an institution's accession number (its own: YB-4.3)."""
        access.require(principal, "image_key.issue")
        access.require(principal, "image_key.issue")
        problems = [Problem(f, "required", f"缺少参数 {f}") for f, v in (("hospitalId", hospitalId), ("accessNumber", accessNumber)) if not v]
        if problems:
            raise InvalidInput("缺少必填参数", problems)
        if hospitalId != principal.org_code:
            msg = "云胶片链接只能由检查所属机构生成"
            raise Forbidden(msg, [Problem("hospitalId", "ownership", msg)])
        with self._db.read() as conn:
            studies = store.studies_by_accession(conn, hospitalId, accessNumber.strip())
        mod = (modality or "").strip().upper()
        pick = [s for s in studies if not mod or mod in str(s["modalities"]).split(",")] or ([] if mod else studies)
        if not pick:
            raise not_found()
        return self.issue_key(principal, imaging.FILM, str(pick[0]["study_uid"]))

    def film_url(self, issued: IssuedKey) -> str:
        return f"{self.public_base}/film/{issued.key}"

    def viewer_url(self, issued: IssuedKey) -> str:
        """The doctor's viewer page of the study (the page itself asks for the institution's login)."""
        return f"{self.public_base}/ui/imaging/{issued.study_uid}"


def same_name(a: str, b: str) -> bool:
    """Two patient names alike, ignoring width, case, spaces and DICOM's ``^`` separators."""
    def norm(s: str) -> str:
        return "".join(c for c in unicodedata.normalize("NFKC", s).upper() if c not in " ^=")
    return norm(a) == norm(b)
