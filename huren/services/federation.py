"""Federation (issue 13, XJ-1.1): the platform tree, each local platform's change feed, and the
applying of a child platform's feed here.

    platforms      add / list the tree, which institutions belong where (its base class,
                   ``huren.services.federation_tree.PlatformTree``)
    changes        a local platform's feed since a sequence number (its consumer keeps the mark)
    apply          a child's batch, idempotently by business key and version, gap-checked
    watermark      how far a child's feed has been applied here
    files          PDFs by SHA-256: which are missing here, fetch one, store one (sent once)
    status         every local feed and every child applied here: last seq, backlog, lag

Applying goes through the registry (``register_many``, ``void``) with the child platform's system
account, so the same validation, version rule, rejected-submission keeping and feed recording
hold as for a hospital's upload; a replayed batch changes nothing, an older version never
overwrites a newer one (``huren.domain.versions``).
"""

from __future__ import annotations

import hashlib
import itertools
import re
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from huren.context import Clock, Principal
from huren.domain import access as policy
from huren.domain import kinds
from huren.domain.fields import SEHR_ACCEPT_RECORD, SEHR_QUOTE_RECORD
from huren.domain.platforms import Platform
from huren.domain.regions import in_division
from huren.domain.validation import check_pdf, check_record
from huren.errors import Conflict, Forbidden, InvalidInput, NotFound, Problem, TooLarge
from huren.services import access
from huren.services.audit import AuditService
from huren.services.federation_export import export
from huren.services.federation_tree import PlatformTree
from huren.services.registry import RegistryService
from huren.store import changes, directory, platforms, reports
from huren.store import recognition as rstore
from huren.store.blobs import BlobStore
from huren.store.database import Database
from huren.store.federation import get_peer, list_peers, put_peer

#: the most changes one feed answer or one applied batch holds
MAX_BATCH = 5000
#: the longest a feed read waits for a change (seconds)
MAX_WAIT = 30.0
_SHA = re.compile(r"[0-9a-f]{64}")


def _sha(value: str) -> str:
    if not _SHA.fullmatch(value):
        raise InvalidInput("摘要无效", [Problem("sha256", "format", "摘要应为64位小写十六进制 SHA-256")])
    return value


class FederationService(PlatformTree):
    def __init__(self, db: Database, blobs: BlobStore, clock: Clock, registry: RegistryService, audit: AuditService, max_pdf_bytes: int) -> None:
        self._db = db
        self._blobs = blobs
        self._clock = clock
        self._registry = registry
        self._audit = audit
        self.max_pdf_bytes = max_pdf_bytes

    # -- the feed (the source side) ----------------------------------------------------------
    def changes(self, principal: Principal, code: str, since: int, limit: int, wait: float = 0.0) -> dict[str, Any]:
        """The changes of local platform ``code`` after ``since``: ``{"platform", "since",
        "last_seq", "more", "changes": [...]}``; with ``wait``, up to that many seconds for one."""
        if since < 0:
            raise InvalidInput("since 无效", [Problem("since", "range", "since 应为不小于 0 的整数")])
        limit = max(1, min(limit, MAX_BATCH))
        with self._db.read() as conn:
            access.check_platform(conn, principal, "feed.read", code)
            self._local(conn, code)
            tree = platforms.tree(conn)
            own = access.place(conn, principal.org_code)
        # a platform below reading this feed (a city mirroring its region): its own changes come
        # back as numbers only, without their content (it holds them already)
        origin = own.platform if own and own.platform and own.platform != code and tree.covers(code, own.platform) else ""
        skip = tree.subtree(origin) if origin else set()
        deadline = time.monotonic() + max(0.0, min(wait, MAX_WAIT))
        while True:
            # numbering takes the write lock (SQLite's one writer): only when something awaits a number
            with self._db.read() as conn:
                waiting, last = changes.pending(conn, code), changes.last_seq(conn, code)
            if waiting:
                with self._db.write() as conn:
                    last = changes.sequence(conn, code)
            if last > since or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        with self._db.read() as conn:
            rows = changes.read(conn, code, since, limit)
            if skip:
                plats = platforms.platforms_of(conn, {str(r["org_code"]) for r in rows})
                theirs = {int(r["seq"]) for r in rows if plats.get(str(r["org_code"]), "") in skip}
                exported = {int(e["seq"]): e for e in export(conn, [r for r in rows if int(r["seq"]) not in theirs])}
                out = [
                    exported[int(r["seq"])] if int(r["seq"]) in exported
                    else {"seq": int(r["seq"]), "kind": r["kind"], "org_code": r["org_code"], "origin": origin}
                    for r in rows
                ]
            else:
                out = export(conn, rows)
        if out:
            self._audit.record_many(principal, "feed_read", [(None, None, f"feed:{code}:{out[0]['seq']}-{out[-1]['seq']}:{len(out)}")], read=True)
        to = out[-1]["seq"] if out else since
        return {"platform": code, "since": since, "last_seq": last, "more": bool(out) and to < last, "changes": out}

    def _local(self, conn: Any, code: str) -> Platform:
        p = platforms.tree(conn).get(code)
        if p is None or not p.local:
            raise NotFound(f"平台“{code}”的数据不在本部署", [Problem("platform", "not_local", f"平台“{code}”不由本部署承载，没有变更订阅")])
        return p

    # -- files, by digest ------------------------------------------------------------------------
    def file(self, principal: Principal, code: str, sha: str) -> bytes:
        """A PDF a change of platform ``code`` names (only those: not any blob of the store)."""
        with self._db.read() as conn:
            access.check_platform(conn, principal, "feed.read", code)
            sha = _sha(sha)
            tree = platforms.tree(conn)
            owner = reports.pdf_owner(conn, sha)
        if owner is None or not owner[1] or owner[1] not in tree.subtree(code):
            raise NotFound("文件不存在", [Problem("sha256", "not_found", "本平台的报告中没有该摘要的PDF")])
        data = self._blobs.get(sha)
        if data is None:
            raise NotFound("文件不存在", [Problem("sha256", "not_found", "文件内容已不在存储中")])
        self._audit.record_many(principal, "feed_file", [(None, None, f"pdf:{sha}")], read=True)
        return data

    def missing_files(self, principal: Principal, code: str, digests: Sequence[str]) -> list[str]:
        with self._db.read() as conn:
            access.check_platform(conn, principal, "feed.write", code)
        return [d for d in dict.fromkeys(_sha(x) for x in digests) if not self._blobs.exists(d)]

    def put_file(self, principal: Principal, code: str, sha: str, data: bytes) -> str:
        with self._db.read() as conn:
            access.check_platform(conn, principal, "feed.write", code)
        sha = _sha(sha)
        if len(data) > self.max_pdf_bytes:
            raise TooLarge("文件过大", [Problem("body", "max_size", f"PDF不超过 {self.max_pdf_bytes} 字节")])
        if hashlib.sha256(data).hexdigest() != sha:
            raise InvalidInput("文件摘要不符", [Problem("sha256", "digest", "上传内容的 SHA-256 与地址中的摘要不一致")])
        problems: list[Problem] = []
        if not check_pdf(data, "body", self.max_pdf_bytes, problems):
            raise InvalidInput("PDF文件未通过校验", problems)
        return self._blobs.put(data)

    # -- applying a child's batch (the receiving side) -----------------------------------------
    def watermark(self, principal: Principal, code: str) -> dict[str, Any]:
        with self._db.read() as conn:
            access.check_platform(conn, principal, "feed.write", code)
            peer = get_peer(conn, code)
        return _peer_out(code, peer)

    def apply(self, principal: Principal, code: str, batch: Any) -> dict[str, Any]:
        """Apply a batch of child platform ``code``'s feed: ``{"from_seq", "to_seq", "last_seq",
        "changes": [...]}`` as ``changes`` answered it. A batch that starts after the next
        expected sequence number is refused (a gap: Conflict naming the expected one); changes
        already applied are skipped; the rest applied in order, then the watermark advanced."""
        policy.require(principal, "feed.write")
        if not isinstance(batch, dict) or not isinstance(batch.get("changes"), list):
            raise InvalidInput("变更批次无效", [Problem("changes", "node", "请求体应为含 changes 数组的对象")])
        entries: list[dict[str, Any]] = batch["changes"]
        if len(entries) > MAX_BATCH:
            raise TooLarge("变更批次过大", [Problem("changes", "max_items", f"一个批次至多 {MAX_BATCH} 条变更")])
        problems = [Problem(f"changes[{i}].seq", "type", "seq 应为正整数") for i, e in enumerate(entries) if not isinstance(e, dict) or not isinstance(e.get("seq"), int) or e["seq"] < 1]
        if problems:
            raise InvalidInput("变更批次无效", problems[:20])
        seqs = [int(e["seq"]) for e in entries]
        if any(b != a + 1 for a, b in itertools.pairwise(seqs)):
            raise InvalidInput("变更批次无效", [Problem("changes", "sequence", "批次中的变更须按 seq 连续递增")])
        raw_last = batch.get("last_seq")
        if raw_last is not None and (not isinstance(raw_last, int) or isinstance(raw_last, bool) or raw_last < 0):
            raise InvalidInput("变更批次无效", [Problem("last_seq", "type", "last_seq 应为不小于 0 的整数")])
        last_seq = int(raw_last or (seqs[-1] if seqs else 0))
        with self._db.read() as conn:
            access.check_platform(conn, principal, "feed.write", code)
            peer = get_peer(conn, code)
        applied = int(peer["applied_seq"]) if peer else 0
        if seqs and seqs[0] > applied + 1:
            with self._db.write() as conn:
                put_peer(conn, code, self._clock.now(), gaps=1, source_last_seq=last_seq, error=f"变更序号不连续：应从 {applied + 1} 开始，收到 {seqs[0]}")
            raise Conflict(
                f"变更序号不连续：应从 {applied + 1} 开始，收到 {seqs[0]}",
                [Problem("changes[0].seq", "gap", f"平台“{code}”的变更已应用到 {applied}，请从 {applied + 1} 重新读取")],
            )
        todo = [e for e in entries if int(e["seq"]) > applied]
        refused = self._apply_entries(principal, code, todo) if todo else []
        times = [t for t in (parse_record_time(e.get("at")) for e in todo) if t is not None]
        source_at = max(times, default=None)
        with self._db.write() as conn:
            peer = put_peer(
                conn, code, self._clock.now(), applied_seq=max(applied, seqs[-1] if seqs else applied), source_last_seq=last_seq,
                source_at=source_at, applied=len(todo), error=(f"{len(refused)} 条变更被拒收（已作为被拒提交保存）" if refused else None),
            )
        return _peer_out(code, peer) | {"applied": len(todo), "skipped": len(entries) - len(todo), "refused": refused}

    def _apply_entries(self, principal: Principal, code: str, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        refused: list[dict[str, Any]] = []
        # superseded within the batch, gone since, or this platform's own (a mirrored feed): nothing to apply
        live = [e for e in entries if "superseded_by" not in e and not e.get("gone") and not e.get("origin")]
        # institutions first: the reports after them name them
        orgs = [e for e in live if e.get("kind") == "org" and isinstance(e.get("org"), dict)]
        if orgs:
            self._apply_orgs(principal, code, orgs, refused)
        for kind in kinds.BY_NAME:
            states = [e for e in live if e.get("report_kind") == kind and isinstance(e.get("report"), dict)]
            if states:
                self._apply_reports(principal, kind, states, refused)
        dailies = [e["daily"] for e in live if e.get("kind") == "daily" and isinstance(e.get("daily"), dict)]
        if dailies:
            try:
                self._registry.upload_daily({"lab_exam_report": dailies}, principal, channel="federation")
            except (InvalidInput, Conflict, NotFound, Forbidden) as exc:
                refused.append({"kind": "daily", "message": exc.message, "problems": [p.as_dict() for p in exc.problems[:20]]})
        for table in ("accept", "quote"):
            recs = [e for e in live if e.get("kind") == table and isinstance(e.get("record"), dict)]
            if recs:
                self._apply_records(principal, table, recs, refused)
        return refused

    def _apply_orgs(self, principal: Principal, code: str, entries: list[dict[str, Any]], refused: list[dict[str, Any]]) -> None:
        now = self._clock.now()
        with self._db.write() as conn:
            tree = platforms.tree(conn)
            own = access.place(conn, principal.org_code)
            for e in entries:
                o = e["org"]
                plat = str(o.get("platform") or "")
                if plat not in tree or not tree.covers(code, plat):
                    plat = code  # a platform below the child this deployment does not know: the child's
                region = str(o.get("region_code") or "")
                if own is not None and own.region and not in_division(region, own.region):
                    refused.append({"seq": e["seq"], "kind": "org", "message": f"机构“{o.get('code')}”不在本账号的行政区划内"})
                    continue
                try:
                    directory.upsert_org(conn, {
                        "code": str(o["code"]), "name": str(o["name"]), "region_code": region, "level": int(o.get("level") or 0),
                        "grade": str(o.get("grade") or ""), "platform": plat, "disabled": bool(o.get("disabled")), "created_at": now,
                    })
                except (KeyError, TypeError, ValueError):
                    refused.append({"seq": e["seq"], "kind": "org", "message": "机构信息不完整"})

    def _apply_reports(self, principal: Principal, kind: str, states: list[dict[str, Any]], refused: list[dict[str, Any]]) -> None:
        held: list[tuple[str, int] | None] = []
        for st in states:
            sha = st.get("pdf_sha256") or ""
            size = st.get("pdf_size")
            if isinstance(sha, str) and len(sha) == 64 and isinstance(size, int) and not isinstance(size, bool) and size >= 0:
                held.append((sha, size) if self._blobs.exists(sha) else None)
            else:
                held.append(None)
        outcomes = self._registry.register_many(kind, [st["report"] for st in states], principal, channel="federation", stored_pdfs=held)
        pdf_only: list[tuple[dict[str, Any], tuple[str, int]]] = []
        for st, out, h in zip(states, outcomes, held, strict=True):
            if out.registered is None:
                if out.status == Conflict.status:
                    # the version rule kept what is here: an older state (stale_version), or the same
                    # version whose PDF came later (version_conflict: the PDF is attached below)
                    if h is not None and any(p.rule == "version_conflict" for p in out.problems):
                        pdf_only.append((st, h))
                    continue
                refused.append({"seq": st["seq"], "kind": kind, "status": out.status, "problems": [p.as_dict() for p in out.problems[:20]]})
                continue
            if st.get("voided"):
                master = st["report"][kinds.BY_NAME[kind].master_node]
                try:
                    self._registry.void(kind, {
                        "org_code": master["org_code"], "report_form_no": master["report_form_no"], "patient_id": master["patient_id"],
                        "event_type": master["event_type"], "event_no": master["event_no"], "id_type": master["id_type_code"], "id_no": master["id_no"],
                    }, principal, channel="federation")
                except (InvalidInput, NotFound, Conflict) as exc:
                    refused.append({"seq": st["seq"], "kind": f"void_{kind}", "message": exc.message})
        if pdf_only:
            self._attach_pdfs(kind, pdf_only)

    def _attach_pdfs(self, kind: str, pending: list[tuple[dict[str, Any], tuple[str, int]]]) -> None:
        """A PDF attached at the source after the report (same version, same content otherwise)."""
        master_node = kinds.BY_NAME[kind].master_node
        now = self._clock.now()
        with self._db.write() as conn:
            for st, (sha, size) in pending:
                m = st["report"][master_node]
                try:
                    key = [m["org_code"], m["report_form_no"], m["patient_id"], int(m["event_type"]), m["event_no"]]
                except (KeyError, ValueError):
                    continue
                row = reports.find_by_key(conn, kind, key)
                if row is not None and row["pdf_sha256"] != sha:
                    reports.set_pdf(conn, kind, int(row["id"]), sha, size, now=now)

    def _apply_records(self, principal: Principal, table: str, entries: list[dict[str, Any]], refused: list[dict[str, Any]]) -> None:
        spec = SEHR_ACCEPT_RECORD if table == "accept" else SEHR_QUOTE_RECORD
        now = self._clock.now()
        rows: list[dict[str, Any]] = []
        with self._db.read() as conn:
            for e in entries:
                decided_by = str(e.get("decided_by") or e.get("org_code") or "")
                if not self._registry._writes_for(principal, decided_by):
                    refused.append({"seq": e["seq"], "kind": table, "message": f"机构“{decided_by}”不在本平台账号的范围内"})
                    continue
                problems: list[Problem] = []
                rec = check_record(e["record"], spec, table, problems)
                if problems:
                    refused.append({"seq": e["seq"], "kind": table, "problems": [p.as_dict() for p in problems[:20]]})
                    continue
                rkind = str(e.get("report_kind") or "lab")
                rid = rstore.find_report(conn, rkind, rec["hr_org_code"], rec["hr_report_form_no"], rec["id_type_code"], rec["id_no"]) if rkind in kinds.BY_NAME else None
                rows.append(rec | {"org_code": decided_by, "report_kind": rkind, "report_id": rid, "received_at": now})
        if rows:
            with self._db.write() as conn:
                rstore.add_records(conn, table, rows)

    # -- status ----------------------------------------------------------------------------------
    def status(self, principal: Principal) -> dict[str, Any]:
        """The local feeds (last seq, unnumbered changes) and the child feeds applied here
        (applied seq, the source's last seq when last read, backlog, lag) within the caller's reach."""
        policy.require(principal, "federation.read")
        now = self._clock.now()
        with self._db.write() as conn:
            tree = platforms.tree(conn)
            own = access.place(conn, principal.org_code)
            s = policy.scope(principal, "federation.read")
            assert s is not None
            visible = {c for c in tree.by_code if policy.platform_in_reach(principal, s, c, own, tree)} if s is not policy.OWN else (
                {own.platform} if own and own.platform else set()
            )
            feeds = []
            for p in sorted(tree.by_code.values(), key=lambda p: p.code):
                if p.local and p.code in visible:
                    last = changes.sequence(conn, p.code)
                    feeds.append({"platform": p.code, "name": p.name, "last_seq": last})
            peers = [_peer_out(str(r["platform"]), r, now) for r in list_peers(conn) if r["platform"] in visible]
        return {"feeds": feeds, "peers": peers}


def _peer_out(code: str, peer: dict[str, Any] | None, now: datetime | None = None) -> dict[str, Any]:
    applied = int(peer["applied_seq"]) if peer else 0
    source_last = int(peer["source_last_seq"]) if peer else 0
    out = {
        "platform": code,
        "applied_seq": applied,
        "source_last_seq": source_last,
        "backlog": max(0, source_last - applied),
        "source_at": peer["source_at"].isoformat(sep=" ") if peer and peer["source_at"] else None,
        "applied_at": peer["applied_at"].isoformat(sep=" ") if peer and peer["applied_at"] else None,
        "applied_total": int(peer["applied_total"]) if peer else 0,
        "gaps": int(peer["gaps"]) if peer else 0,
        "last_error": (peer["last_error"] if peer else None) or None,
    }
    if now is not None and peer and peer["applied_at"]:
        out["idle_seconds"] = max(0.0, (now - peer["applied_at"]).total_seconds())
    return out


def parse_record_time(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text)) if text else None
    except ValueError:
        return None
