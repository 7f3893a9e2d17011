"""Bounded keeping of rejected submissions (issue 10 §1.10), on SQLite and PostgreSQL: each kept
payload is capped (a prefix, with the whole's size and SHA-256), an institution's kept bytes have
a quota past which only the problems are kept and the refusal says so, and nothing valid is lost."""

from __future__ import annotations

import hashlib
from pathlib import Path

from huren.services.container import Container
from tests import samples
from tests.conftest import Api


def blob_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def test_a_large_rejected_payload_is_kept_as_a_prefix_with_size_and_hash(api_a: Api, container: Container) -> None:
    container.registry.rejected_keep_bytes = 4096
    raw = b'{"labmaster": {"org_code": "' + b"9" * 1_000_000  # a megabyte of malformed JSON
    r = api_a.post("/api/v1/lab-reports", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    [kept] = api_a.get("/api/v1/quality/rejected").json()["rejected"]
    assert kept["payload_size"] == len(raw)  # the whole's size
    note = next(p for p in kept["problems"] if p["rule"] == "kept_prefix")
    assert hashlib.sha256(raw).hexdigest() in note["message"] and str(len(raw)) in note["message"]
    back = api_a.get(f"/api/v1/quality/rejected/{kept['id']}/payload")
    assert back.content == raw[:4096]
    assert blob_bytes(container.settings.blob_dir) < 10_000


def test_quota_per_institution(api_a: Api, api_b: Api, container: Container) -> None:
    container.registry.rejected_keep_bytes = 1000
    container.registry.rejected_quota_bytes = 2500
    bad = samples.lab()
    bad["labmaster"]["sex_code"] = "7"
    ids = []
    for _ in range(3):  # 1000 + 1000 kept, the third would pass 2500
        r = api_a.post("/api/v1/lab-reports", bad)
        assert r.status_code == 422
        ids.append(r.json()["rejected_id"])
    last = r.json()
    quota = [p for p in last["problems"] if p["rule"] == "rejected_quota"]
    assert quota and quota[0]["field"] == "payload" and "2500" in quota[0]["message"], last
    # still refused with its own problems, still listed, only the bytes are not kept
    assert any(p["rule"] == "dictionary" for p in last["problems"])
    rows = {x["id"]: x for x in api_a.get("/api/v1/quality/rejected").json()["rejected"]}
    assert set(ids) <= set(rows)
    assert api_a.get(f"/api/v1/quality/rejected/{ids[2]}/payload").content == b""
    assert len(api_a.get(f"/api/v1/quality/rejected/{ids[0]}/payload").content) == 1000
    assert blob_bytes(container.settings.blob_dir) <= 2500 + 4096  # plus the one valid PDF below

    # another institution has its own quota; valid reports are never refused for it
    other = samples.lab()
    other["labmaster"]["org_code"] = "nope"
    assert api_b.post("/api/v1/lab-reports", other).status_code in (403, 422)
    assert not any(p["rule"] == "rejected_quota" for p in api_b.get("/api/v1/quality/rejected").json()["rejected"][0]["problems"])
    assert api_a.post("/api/v1/lab-reports", samples.lab()).status_code == 200


def test_settings_name_the_limits() -> None:
    from huren.settings import Settings

    s = Settings(rejected_keep_bytes=10, rejected_quota_bytes=20)
    assert (s.rejected_keep_bytes, s.rejected_quota_bytes) == (10, 20)
    assert Settings().rejected_quota_bytes > Settings().rejected_keep_bytes > 0
