"""Report registry: register / resubmit / void lab and exam reports, PDFs, daily counts.

Implements XJ-1.2.2.1–5, XC-E1/E2, XC-L2/L3/L5, XC-P3, HZ-5/6/7/9/10/11. Every rejected
submission is kept with its problems (nothing is lost) and listed to its institution.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from huren.context import Clock, Principal
from huren.domain import access, kinds
from huren.domain.records import format_value, report_key_text
from huren.domain.validation import (
    Report,
    canonical_id,
    check_identity,
    check_pdf,
    raw_key,
    validate_daily,
    validate_report,
    validate_void,
)
from huren.domain.versions import refusal
from huren.errors import Conflict, Forbidden, HurenError, InvalidInput, NotFound, Problem
from huren.services import access as access_rules
from huren.services.group_commit import GroupCommit
from huren.services.payloads import dump
from huren.services.refs import MISSING, Refs
from huren.store import quality, recognition, reports
from huren.store.blobs import BlobStore
from huren.store.database import Database


@dataclass(frozen=True, slots=True)
class Registered:
    #: the report's ref (``huren.services.refs``), never the store id
    report_id: str
    version: int
    created: bool
    #: an idempotent resubmission (same last_update_dtime, same content): nothing was written
    unchanged: bool = False


@dataclass(slots=True)
class Outcome:
    """One report of a batch: registered, or rejected with its problems (kept as ``rejected_id``)."""

    registered: Registered | None = None
    problems: list[Problem] = field(default_factory=list)
    #: the kept submission's ref (``huren.services.refs``), never the store id
    rejected_id: str | None = None
    status: int = 200

    @property
    def code(self) -> str:
        """The answer code of this report: ok, or the error code of its refusal."""
        return "ok" if self.registered is not None else REFUSALS.get(self.status, REFUSALS[422])[0].code


#: status → (error class, message) of a refused report of a batch
REFUSALS: dict[int, tuple[type[HurenError], str]] = {
    403: (Forbidden, "只能提交本机构的报告"),
    409: (Conflict, "报告未保存：与平台已保存的版本冲突（按最后修改时间 last_update_dtime 判断）"),
    422: (InvalidInput, "提交的数据未通过校验"),
}


@dataclass(frozen=True, slots=True)
class Voided:
    report_id: str
    citations: list[dict[str, str]]


class RegistryService:
    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        clock: Clock,
        max_pdf_bytes: int,
        refs: Refs,
        *,
        rejected_keep_bytes: int = 256 * 1024,
        rejected_quota_bytes: int = 512 * 1024 * 1024,
    ) -> None:
        self._db = db
        self._refs = refs
        self._blobs = blobs
        self._clock = clock
        self.max_pdf_bytes = max_pdf_bytes
        self._commits = GroupCommit(db)
        #: a rejected submission's bytes are kept up to this many (HUREN_REJECTED_KEEP_BYTES) …
        self.rejected_keep_bytes = rejected_keep_bytes
        #: … and an institution's kept bytes up to this many (HUREN_REJECTED_QUOTA_BYTES)
        self.rejected_quota_bytes = rejected_quota_bytes

    def _now(self) -> datetime:
        """The clock's time to the microsecond: whether a submission came after a rejection
        (XC-S2 rectification) is decided by these times, and one second holds many calls."""
        return datetime.fromtimestamp(self._clock.time(), self._clock.tz).replace(tzinfo=None)

    # -- rejected submissions -------------------------------------------------------------
    def reject(
        self,
        principal: Principal,
        kind: str,
        channel: str,
        problems: Sequence[Problem],
        raw: bytes | None,
        report_key: str | None = None,
    ) -> str:
        """Keep a rejected submission (its bytes and its problems); return its ref — the one
        place a rejected id is made for the outside (``Refs.rejected``), so every transport names
        it alike. A caller whose role may not make that submission at all is refused instead
        (nothing is kept).

        Bounded (issue 10 §1.10): at most ``rejected_keep_bytes`` of the bytes are kept, the
        whole's size and SHA-256 noted beside them; once the institution's kept bytes reach
        ``rejected_quota_bytes`` only the problems, size and SHA-256 are kept, and the refusal
        says so (a ``rejected_quota`` problem appended to ``problems`` when it is a list).
        """
        if kind in access.SUBMISSION_ACTION:
            access.require(principal, access.SUBMISSION_ACTION[kind])
        kept_problems = list(problems)
        sha = None
        if raw:
            whole = hashlib.sha256(raw).hexdigest()
            kept = raw[: self.rejected_keep_bytes]
            with self._db.read() as conn:
                used = quality.kept_bytes(conn, principal.org_code, self.rejected_keep_bytes)
            if used + len(kept) > self.rejected_quota_bytes:
                full = Problem(
                    "payload",
                    "rejected_quota",
                    f"本机构被拒提交的保存空间已满（上限 {self.rejected_quota_bytes} 字节，已用 {used} 字节）："
                    f"本次原始内容（{len(raw)} 字节，SHA-256 {whole}）未保存，只记录了问题；请整改后重新提交",
                )
                kept_problems.append(full)
                if isinstance(problems, list):
                    problems.append(full)
            else:
                sha = self._blobs.put(kept)
                if len(kept) < len(raw):
                    kept_problems.append(Problem(
                        "payload",
                        "kept_prefix",
                        f"原始内容共 {len(raw)} 字节（SHA-256 {whole}），只保存了前 {len(kept)} 字节",
                    ))
        problems = kept_problems
        with self._db.write() as conn:
            rid = quality.add_rejected(
                conn,
                {
                    "org_code": principal.org_code,
                    "username": principal.username,
                    "kind": kind,
                    "channel": channel,
                    "report_key": report_key,
                    "problems": [p.as_dict() for p in problems],
                    "payload_sha256": sha,
                    "payload_size": len(raw) if raw else 0,
                    "received_at": self._now(),
                },
            )
        return self._refs.rejected(rid)

    def _raise_rejected(
        self,
        principal: Principal,
        kind: str,
        channel: str,
        error: HurenError,
        raw: bytes | None,
        payload: Any,
        report_key: str | None = None,
    ) -> None:
        if raw is None:
            raw = dump(payload)
        problems = error.problems or [Problem("", error.code, error.message)]
        rid = self.reject(principal, kind, channel, problems, raw, report_key)
        error.kept(rid)
        raise error

    # -- reports --------------------------------------------------------------------------
    def _writes_for(self, principal: Principal, org_code: str, seen: dict[str, bool] | None = None) -> bool:
        """Whether ``principal`` may write reports of institution ``org_code``: its own, or (a
        platform account) one within its platform subtree — the access policy's REGION scope."""
        if org_code == principal.org_code:
            return True
        s = access.scope(principal, "report.write")
        if s is None or s is access.OWN:
            return False
        if seen is not None and org_code in seen:
            return seen[org_code]
        with self._db.read() as conn:
            try:
                ok = access_rules.reach(conn, principal, s, org_code)
            except NotFound:
                ok = False
        if seen is not None:
            seen[org_code] = ok
        return ok

    def _check(
        self, kind: str, payload: Any, principal: Principal, seen: dict[str, bool] | None = None
    ) -> tuple[Report | None, HurenError | None]:
        report, problems = validate_report(kind, payload, max_pdf_bytes=self.max_pdf_bytes)
        if report is None:
            return None, InvalidInput("提交的数据未通过校验", problems)
        if not self._writes_for(principal, report.master["org_code"], seen):
            return report, Forbidden(
                "只能提交本机构的报告",
                [Problem(f"{kind}master.org_code", "ownership", f"机构编码“{report.master['org_code']}”不是当前登录机构“{principal.org_code}”")],
            )
        return report, None

    def register(
        self, kind: str, payload: Any, principal: Principal, *, channel: str = "rest", raw: bytes | None = None
    ) -> Registered:
        """Register (or, with the same primary key, resubmit) one report.

        Raises InvalidInput / Forbidden, or Conflict for a resubmission that is not newer than
        the stored version (huren.domain.versions); every refusal is kept as a rejected submission.
        """
        outcome = self.register_many(kind, [payload], principal, channel=channel, raws=[raw])[0]
        if outcome.registered is None:
            err_cls, msg = REFUSALS.get(outcome.status, REFUSALS[422])
            raise err_cls(msg, outcome.problems, rejected_id=outcome.rejected_id)
        return outcome.registered

    def register_many(
        self,
        kind: str,
        payloads: Sequence[Any],
        principal: Principal,
        *,
        channel: str = "rest",
        raws: Sequence[bytes | None] | None = None,
        stored_pdfs: Sequence[tuple[str, int] | None] | None = None,
    ) -> list[Outcome]:
        """Register a batch in one transaction; invalid reports are rejected and kept, the rest stored.

        ``stored_pdfs`` (federation): per report, the SHA-256 and size of a PDF already in the blob
        store (carried from another platform on its own), used as the report's PDF.

        Each report gets its own outcome: registered (new, replaced, or unchanged when resent
        as it is), or refused with its problems and the id it was kept under — invalid (422),
        another institution's (403), or not newer than the stored version (409).
        """
        access.require(principal, "report.write")
        if kind not in kinds.BY_NAME:
            raise NotFound(f"未知的报告类型：{kind}")
        if not payloads:
            raise InvalidInput("缺少 reports 数组", [Problem("reports", "required", "批量注册须带非空的 reports 数组")])
        outcomes = [Outcome() for _ in payloads]
        good: list[tuple[int, Report, str | None, int | None]] = []

        def raw_of(i: int) -> bytes:
            raw = raws[i] if raws else None
            return raw if raw is not None else dump(payloads[i])

        seen: dict[str, bool] = {}
        for i, payload in enumerate(payloads):
            report, error = self._check(kind, payload, principal, seen)
            if error is not None:
                raw = raw_of(i)
                rkey = report.key if report else raw_key(kind, payload)
                key = report_key_text(kind, rkey) if rkey else None
                outcomes[i].problems = error.problems
                outcomes[i].status = error.status
                outcomes[i].rejected_id = self.reject(principal, kind, channel, error.problems, raw, key)
                continue
            assert report is not None
            held = stored_pdfs[i] if stored_pdfs else None
            if held is not None and report.pdf is None:
                good.append((i, report, held[0], held[1]))
                continue
            good.append((i, report, None, len(report.pdf) if report.pdf is not None else None))
        # the PDFs on disk (fsynced, together) before the transaction that names them commits
        pdfs = [(n, r.pdf) for n, (_, r, s, _) in enumerate(good) if r.pdf is not None and s is None]
        for (n, _), sha in zip(pdfs, self._blobs.put_many([pdf for _, pdf in pdfs]), strict=True):
            i, report, _, size = good[n]
            good[n] = (i, report, sha, size)
        if good:
            now = self._now()
            batch = [(r, s, n) for _, r, s, n in good]
            # one synced commit shared with concurrent registrations (huren.services.group_commit)
            # and merged with theirs into one batch (run_many: same kind, same account)
            stored = self._commits.run_many(
                (kind, principal.actor), batch, lambda conn, items: reports.upsert_many(conn, items, now=now, actor=principal.actor)
            )
            master_name = f"{kind}master"
            for (i, report, _, _), s in zip(good, stored, strict=True):
                if not s.refused:
                    outcomes[i].registered = Registered(self._refs.report(kind, s.report_id), s.version, s.created, s.outcome == "same")
                    continue
                assert s.stored_time is not None and s.outcome in ("stale", "conflict")
                new_time = report.master["last_update_dtime"]
                problem = refusal(master_name, s.outcome, new_time, s.stored_time, voided_at=s.voided_at)
                outcomes[i].problems = [problem]
                outcomes[i].status = Conflict.status
                key = report_key_text(kind, report.key)
                outcomes[i].rejected_id = self.reject(principal, kind, channel, [problem], raw_of(i), key)
        return outcomes

    def void(
        self, kind: str, payload: Any, principal: Principal, *, channel: str = "rest", raw: bytes | None = None
    ) -> Voided:
        """Void a report by its key (DeleteLabInfo / DeleteExamInfo filter). The row is kept, marked."""
        access.require(principal, "report.write")
        vkind = f"void_{kind}"
        filt, problems = validate_void(payload)
        if filt is not None:
            check_identity(filt["id_type"], filt["id_no"], "filter.id_no", problems)
        if filt is None or problems:
            self._raise_rejected(principal, vkind, channel, InvalidInput("作废条件未通过校验", problems), raw, payload)
        assert filt is not None
        filt["id_no"] = canonical_id(filt["id_type"], filt["id_no"])
        key = (filt["org_code"], filt["report_form_no"], filt["patient_id"], filt["event_type"], filt["event_no"])
        keytext = report_key_text(kind, key)
        if not self._writes_for(principal, filt["org_code"]):
            err = Forbidden(
                "只能作废本机构的报告",
                [Problem("filter.org_code", "ownership", f"机构编码“{filt['org_code']}”不是当前登录机构")],
            )
            self._raise_rejected(principal, vkind, channel, err, raw, payload, keytext)
        error: HurenError | None = None
        with self._db.write() as conn:
            row = reports.find_by_key(conn, kind, key)
            if row is None:
                error = NotFound(
                    "未找到要作废的报告",
                    [Problem("filter.report_form_no", "not_found", "机构编码、报告单号、病人ID、事件类型、事件号需与注册时一致")],
                )
            elif row["id_no"] != filt["id_no"] or row["id_type_code"] != filt["id_type"]:
                error = InvalidInput(
                    "作废条件中的身份证件与报告不一致",
                    [Problem("filter.id_no", "consistency", "身份证件号码或类别与已注册报告不一致")],
                )
            elif not row["voided"]:
                reports.void(conn, kind, row["id"], now=self._now(), actor=principal.actor)
        if error is not None:
            self._raise_rejected(principal, vkind, channel, error, raw, payload, keytext)
        assert row is not None
        # XJ-1.2.2.2: if the report was cited, the answer names the citing institutions,
        # departments and doctors
        with self._db.read() as conn:
            cited = [{k: format_value(v) for k, v in c.items()} for c in recognition.citations(conn, kind, row["id"])]
        return Voided(self._refs.report(kind, row["id"]), cited)

    def put_pdf(self, kind: str, ref: str, data: bytes, principal: Principal, *, channel: str = "rest") -> str:
        """Attach (or replace) a report's PDF uploaded on its own (XC-E2, XC-L5, HZ-7/10), by its ref."""
        access.require(principal, "report.write")
        report_id = self._refs.report_id(kind, ref)
        with self._db.read() as conn:
            row = reports.get_master(conn, kind, report_id)
        if row is None:
            raise NotFound(MISSING)
        if not self._writes_for(principal, row["org_code"]):
            raise Forbidden("只能为本机构的报告上传PDF")
        problems: list[Problem] = []
        if not check_pdf(data, "pdf", self.max_pdf_bytes, problems):
            keytext = report_key_text(kind, [row[c] for c in reports.KEY_COLUMNS])
            rid = self.reject(principal, "pdf", channel, problems, data[: self.max_pdf_bytes], keytext)
            raise InvalidInput("PDF文件未通过校验", problems, rejected_id=rid)
        sha = self._blobs.put(data)
        with self._db.write() as conn:
            reports.set_pdf(conn, kind, report_id, sha, len(data), now=self._now())
        return sha

    # -- daily counts ---------------------------------------------------------------------
    def upload_daily(
        self, payload: Any, principal: Principal, *, channel: str = "rest", raw: bytes | None = None
    ) -> int:
        """Daily per-department counts (XJ-1.2.2.5, XC-P3); returns the number of rows stored."""
        access.require(principal, "report.write")
        rows, problems = validate_daily(payload)
        if problems:
            self._raise_rejected(principal, "daily", channel, InvalidInput("日报数据未通过校验", problems), raw, payload)
        seen: dict[str, bool] = {}
        foreign = [i for i, r in enumerate(rows) if not self._writes_for(principal, r["org_code"], seen)]
        if foreign:
            err = Forbidden(
                "只能上报本机构的日报",
                [Problem(f"lab_exam_report[{i}].org_code", "ownership", "机构编码不是当前登录机构") for i in foreign],
            )
            self._raise_rejected(principal, "daily", channel, err, raw, payload)
        with self._db.write() as conn:
            quality.upsert_daily(conn, rows, now=self._now(), actor=principal.actor)
        return len(rows)

