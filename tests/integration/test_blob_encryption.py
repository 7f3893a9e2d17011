"""The blob store sealed at rest (issue 10 §1.8): a report's PDF and a rejected submission's kept
bytes are SM4-GCM envelopes on disk (no ID number, name or PDF in clear), come back unchanged
through the API, are bound to their address, and a damaged file reads as missing, never a 500;
files written before sealing are still read."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from huren.crypto import aead
from huren.services.container import Container
from huren.store.blobs import SEALED, BlobStore
from huren.store.keys import Keyring
from tests import samples
from tests.conftest import Api

LAB = "/api/v1/lab-reports"


def blob_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_pdf_and_kept_payload_are_sealed_on_disk(api_a: Api, container: Container) -> None:
    good = samples.lab()
    r = api_a.post(LAB, good)
    assert r.status_code == 200, r.text
    bad = samples.lab()
    bad["labmaster"]["sex_code"] = "7"
    refused = api_a.post(LAB, bad)
    assert refused.status_code == 422
    rid = refused.json()["rejected_id"]

    files = blob_files(container.settings.blob_dir)
    assert len(files) == 2
    name = good["labmaster"]["name"]
    for f in files:
        stored = f.read_bytes()
        assert stored.startswith(SEALED)
        assert aead.FieldCipher.header(stored[len(SEALED) :])[:2] == (1, aead.SM4_GCM)
        for clear in (samples.ID_NO.encode(), name.encode(), b"%PDF", b"labmaster"):
            assert clear not in stored, (f, clear)
    # unchanged through the API, and still addressed by the plaintext's SHA-256
    kept = api_a.get(f"/api/v1/quality/rejected/{rid}/payload")
    assert kept.status_code == 200 and samples.ID_NO.encode() in kept.content
    assert hashlib.sha256(kept.content).hexdigest() in {f.name for f in files}
    assert hashlib.sha256(samples.PDF_BYTES).hexdigest() in {f.name for f in files}
    assert container.blobs.get(hashlib.sha256(samples.PDF_BYTES).hexdigest()) == samples.PDF_BYTES


def test_a_sealed_blob_is_bound_to_its_address_and_damage_reads_as_missing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = BlobStore(tmp_path / "blobs", cipher=Keyring(tmp_path / "keys").fields())
    a, b = store.put(b"report A " + samples.ID_NO.encode()), store.put(b"report B")
    pa, pb = store._path(a), store._path(b)
    assert store.get(a) == b"report A " + samples.ID_NO.encode() and store.put(b"report B") == b  # idempotent
    pb.write_bytes(pa.read_bytes())  # A's envelope moved to B's address
    assert store.get(b) is None
    damaged = bytearray(pa.read_bytes())
    damaged[-1] ^= 1
    pa.write_bytes(bytes(damaged))
    assert store.get(a) is None
    assert sum("does not open" in r.message for r in caplog.records) == 2
    # another installation's keys do not open it either, and a store without keys says so
    c = store.put(b"report C")
    assert BlobStore(tmp_path / "blobs", cipher=Keyring(tmp_path / "other").fields()).get(c) is None
    assert BlobStore(tmp_path / "blobs").get(c) is None
    assert "no data key" in caplog.text


def test_blobs_written_before_sealing_are_still_read(tmp_path: Path) -> None:
    plain = BlobStore(tmp_path)
    old = plain.put(b"%PDF-1.4 written by an older version")
    assert plain._path(old).read_bytes().startswith(b"%PDF")
    sealed = BlobStore(tmp_path, cipher=Keyring(tmp_path / "keys").fields())
    assert sealed.get(old) == b"%PDF-1.4 written by an older version"
    new = sealed.put(b"new")
    assert sealed._path(new).read_bytes().startswith(SEALED) and sealed.get(new) == b"new"
