"""Signed REST transport (BJ-1.3/1.4) on SQLite and PostgreSQL: SM3withSM2-signed requests,
replay window and nonces, SM4 bodies, gzip bodies and bombs, per-institution policy, signed
viewing links, who may set a key, and the access log."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import time
import zlib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from huren.crypto import b64, keyfiles, sm2, sm4
from huren.services.container import Container
from huren.services.transport import sign_headers, string_to_sign
from huren.store import audit
from tests import samples
from tests.conftest import ORG_A, ORG_B, Api, login

LAB = "/api/v1/lab-reports"
KEY = "/api/v1/transport/key"


@pytest.fixture
def platform(container: Container) -> sm2.Sm2Key:
    return keyfiles.init_platform_key(container.settings.key_dir)


@pytest.fixture
def hospital_key() -> sm2.Sm2Key:
    return sm2.generate_key()


def _register_key(api: Api, key: sm2.Sm2Key, **kw: Any) -> Any:
    r = api.put(KEY, json={"public_key": key.public_hex} | kw)
    assert r.status_code == 200, r.text
    return r.json()["key"]


def _send(api: Api, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> Any:
    h = api.headers | {"Content-Type": "application/json"} | (headers or {})
    return api.client.request(method, path, content=body, headers=h)


def _signed(api: Api, key: sm2.Sm2Key, method: str, path: str, body: bytes = b"", extra: dict[str, str] | None = None, **kw: Any) -> Any:
    return _send(api, method, path, body, sign_headers(key, method, path, body, **kw) | (extra or {}))


def _refused(r: Any, status: int, field: str, rule: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert {"code", "message", "problems"} <= set(body) <= {"code", "message", "problems", "rejected_id"}, body
    assert [(p["field"], p["rule"]) for p in body["problems"]] == [(field, rule)], body


def _lab_body() -> bytes:
    return orjson.dumps(samples.lab())


# ------------------------------------------------------------------------------ signatures


def test_signed_request_accepted(api_a: Api, hospital_key: sm2.Sm2Key, container: Container) -> None:
    _register_key(api_a, hospital_key, require_signature=True)
    r = _signed(api_a, hospital_key, "POST", LAB, _lab_body())
    assert r.status_code == 200, r.text
    assert r.json()["created"] is True
    # a GET with a query string: the query is part of what is signed
    path = f"{KEY}?org_code={ORG_A[0]}"
    got = _signed(api_a, hospital_key, "GET", path)
    assert got.status_code == 200, got.text
    assert got.json()["key"]["public_key"] == hospital_key.public_hex
    # the same request signed without its query is refused
    h = sign_headers(hospital_key, "GET", KEY, b"")
    _refused(_send(api_a, "GET", path, headers=h), 401, "X-Huren-Signature", "signature")
    # the date-time form of the timestamp, in the platform's time zone
    local = datetime.now(container.clock.tz).strftime("%Y-%m-%d %H:%M:%S")
    r = _signed(api_a, hospital_key, "GET", KEY, timestamp=local)
    assert r.status_code == 200, r.text
    # raw r‖s (64 bytes) is accepted as well as DER
    ts, nonce = str(int(time.time())), "raw-signature-0001"
    der = sm2.sm2_sign(hospital_key, string_to_sign(ts, nonce, "GET", KEY, b""))
    r = _send(api_a, "GET", KEY, headers={"X-Huren-Timestamp": ts, "X-Huren-Nonce": nonce, "X-Huren-Signature": b64.b64e(_der_to_raw(der))})
    assert r.status_code == 200, r.text


def _der_to_raw(der: bytes) -> bytes:
    r_len = der[3]
    r = int.from_bytes(der[4 : 4 + r_len], "big")
    s_len = der[5 + r_len]
    s = int.from_bytes(der[6 + r_len : 6 + r_len + s_len], "big")
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def test_bad_signature_refused(api_a: Api, hospital_key: sm2.Sm2Key, container: Container) -> None:
    _register_key(api_a, hospital_key)
    body = _lab_body()
    other = sm2.generate_key()
    _refused(_signed(api_a, other, "POST", LAB, body), 401, "X-Huren-Signature", "signature")
    # the body changed after signing
    h = sign_headers(hospital_key, "POST", LAB, body)
    _refused(_send(api_a, "POST", LAB, body.replace(b"45.3", b"45.4"), h), 401, "X-Huren-Signature", "signature")
    # signed for another path / method
    h = sign_headers(hospital_key, "POST", "/api/v1/exam-reports", body)
    _refused(_send(api_a, "POST", LAB, body, h), 401, "X-Huren-Signature", "signature")
    h = sign_headers(hospital_key, "PUT", LAB, body)
    _refused(_send(api_a, "POST", LAB, body, h), 401, "X-Huren-Signature", "signature")
    # OpenSSL's empty default signer ID is not the one expected
    ts, nonce = str(int(time.time())), "empty-uid-nonce-0001"
    sig = sm2.sm2_sign(hospital_key, string_to_sign(ts, nonce, "POST", LAB, body), uid=b"")
    h = {"X-Huren-Timestamp": ts, "X-Huren-Nonce": nonce, "X-Huren-Signature": b64.b64e(sig)}
    _refused(_send(api_a, "POST", LAB, body, h), 401, "X-Huren-Signature", "signature")
    _refused(_send(api_a, "POST", LAB, body, h | {"X-Huren-Signature": "%%%"}), 401, "X-Huren-Signature", "base64")
    # missing one of the three headers
    h = sign_headers(hospital_key, "POST", LAB, body)
    del h["X-Huren-Nonce"]
    _refused(_send(api_a, "POST", LAB, body, h), 401, "X-Huren-Nonce", "required")
    # nothing was registered by the refused requests
    with container.db.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM lab_report").scalar() == 0
    assert _signed(api_a, hospital_key, "POST", LAB, body).status_code == 200


def test_signature_without_registered_key_refused(api_b: Api, hospital_key: sm2.Sm2Key) -> None:
    _refused(_signed(api_b, hospital_key, "GET", "/api/v1/quality/rejected"), 401, "X-Huren-Signature", "no_key")


def test_timestamp_window(api_a: Api, hospital_key: sm2.Sm2Key, container: Container) -> None:
    _register_key(api_a, hospital_key, require_signature=True)
    now = int(time.time())
    for ts in (now - 360, now + 360):  # six minutes either way
        _refused(_signed(api_a, hospital_key, "GET", KEY, timestamp=str(ts)), 401, "X-Huren-Timestamp", "window")
    old = (datetime.now(container.clock.tz) - timedelta(minutes=6)).strftime("%Y-%m-%d %H:%M:%S")
    _refused(_signed(api_a, hospital_key, "GET", KEY, timestamp=old), 401, "X-Huren-Timestamp", "window")
    r = _signed(api_a, hospital_key, "GET", KEY, timestamp=str(now * 1000))  # milliseconds
    _refused(r, 401, "X-Huren-Timestamp", "window")
    assert "毫秒" in r.json()["message"]
    _refused(_signed(api_a, hospital_key, "GET", KEY, timestamp="2024/01/01 00:00"), 401, "X-Huren-Timestamp", "format")
    for ts in (now - 240, now + 240):  # four minutes: inside
        assert _signed(api_a, hospital_key, "GET", KEY, timestamp=str(ts)).status_code == 200
    # the window follows the platform clock
    container.clock.offset = 400
    try:
        _refused(_signed(api_a, hospital_key, "GET", KEY, timestamp=str(now)), 401, "X-Huren-Timestamp", "window")
    finally:
        container.clock.offset = 0


def test_reused_nonce_refused(api_a: Api, hospital_key: sm2.Sm2Key, api_b: Api) -> None:
    _register_key(api_a, hospital_key)
    nonce = "0123456789abcdef-nonce"
    assert _signed(api_a, hospital_key, "GET", KEY, nonce=nonce).status_code == 200
    # the exact same request replayed, and a fresh signature reusing the nonce
    h = sign_headers(hospital_key, "GET", KEY, b"", nonce="replayed-request-0001")
    assert _send(api_a, "GET", KEY, headers=h).status_code == 200
    _refused(_send(api_a, "GET", KEY, headers=h), 401, "X-Huren-Nonce", "replay")
    _refused(_signed(api_a, hospital_key, "GET", KEY, nonce=nonce), 401, "X-Huren-Nonce", "replay")
    # nonces are per institution
    _register_key(api_b, hospital_key)
    assert _signed(api_b, hospital_key, "GET", KEY, nonce=nonce).status_code == 200
    for bad in ("short-nonce", "x" * 65, "has space in it 123", "semicolon;0123456789"):
        h = sign_headers(hospital_key, "GET", KEY, b"", nonce=bad)
        _refused(_send(api_a, "GET", KEY, headers=h), 401, "X-Huren-Nonce", "format")


def test_expired_nonces_are_purged(api_a: Api, hospital_key: sm2.Sm2Key, container: Container) -> None:
    from huren.services import transport as svc

    _register_key(api_a, hospital_key)
    assert _signed(api_a, hospital_key, "GET", KEY, nonce="to-be-purged-000001").status_code == 200
    with container.db.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM used_nonce").scalar() == 1
    container.clock.offset = svc.WINDOW_SECONDS + 5
    container.transport._purged_at = -1e9  # the next signed request purges
    try:
        h = sign_headers(hospital_key, "GET", KEY, b"", timestamp=str(int(container.clock.time())))
        assert _send(api_a, "GET", KEY, headers=h).status_code == 200
    finally:
        container.clock.offset = 0
    with container.db.read() as conn:
        rows = conn.exec_driver_sql("SELECT nonce FROM used_nonce").scalars().all()
    assert rows == [h["X-Huren-Nonce"]]


def test_unsigned_refused_only_where_required(api_a: Api, api_b: Api, hospital_key: sm2.Sm2Key) -> None:
    assert api_a.post(LAB, samples.lab()).status_code == 200  # no key yet: unsigned is fine
    _register_key(api_a, hospital_key)  # a key, but not required
    assert api_a.get(KEY).status_code == 200
    _register_key(api_a, hospital_key, require_signature=True)
    _refused(api_a.post(LAB, samples.lab()), 401, "X-Huren-Signature", "signature_required")
    _refused(api_a.get("/api/v1/quality/rejected"), 401, "X-Huren-Signature", "signature_required")
    # other institutions are unaffected
    b = samples.lab()
    b["labmaster"]["org_code"] = ORG_B[0]
    for item in b["lab_subitem"]:
        item["org_code"] = ORG_B[0]
    assert api_b.post(LAB, b).status_code == 200
    assert api_b.get("/api/v1/quality/rejected").status_code == 200
    # requests without a token still get the normal 401, and logging in needs no signature
    r = api_a.client.get("/api/v1/quality/rejected")
    assert r.status_code == 401 and r.json()["code"] == "unauthorized"
    login(api_a.client, ORG_A)
    # switching the requirement off needs a signed request now
    _refused(api_a.put(KEY, json={"public_key": hospital_key.public_hex}), 401, "X-Huren-Signature", "signature_required")
    body = orjson.dumps({"public_key": hospital_key.public_hex, "require_signature": False})
    assert _signed(api_a, hospital_key, "PUT", KEY, body).status_code == 200
    assert api_a.get("/api/v1/quality/rejected").status_code == 200


def test_soap_endpoint_is_not_touched(api_a: Api, hospital_key: sm2.Sm2Key) -> None:
    _register_key(api_a, hospital_key, require_signature=True)
    r = api_a.client.get("/Myhealth?wsdl", headers=api_a.headers)
    assert r.status_code != 401


# ------------------------------------------------------------------------------ SM4 bodies


def _wrap(platform: sm2.Sm2Key, sm4_key: bytes) -> str:
    return b64.b64e(sm2.sm2_encrypt(platform.public, sm4_key))


def test_sm4_body_and_response(api_a: Api, platform: sm2.Sm2Key, hospital_key: sm2.Sm2Key) -> None:
    sm4_key = os.urandom(16)
    enc = {"X-Huren-Encryption": "sm4", "X-Huren-Key": _wrap(platform, sm4_key)}
    body = sm4.sm4_encrypt(sm4_key, _lab_body())
    r = _send(api_a, "POST", LAB, body, enc)
    assert r.status_code == 200, r.text
    assert r.headers["x-huren-encryption"] == "sm4"
    assert int(r.headers["content-length"]) == len(r.content)
    reply = orjson.loads(sm4.sm4_decrypt(sm4_key, r.content))
    assert reply["code"] == "ok" and reply["created"] is True
    rid = reply["report_id"]
    # an encrypted GET (empty body) gets an encrypted PDF back
    pdf = _send(api_a, "GET", f"{LAB}/{rid}/pdf", headers=enc)
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert sm4.sm4_decrypt(sm4_key, pdf.content) == samples.PDF_BYTES
    # the API's own errors come back encrypted too
    missing = _send(api_a, "GET", f"{LAB}/999999", headers=enc)
    assert missing.status_code == 404
    assert orjson.loads(sm4.sm4_decrypt(sm4_key, missing.content))["code"] == "not_found"
    # signed + encrypted + gzip together: compress, encrypt, then sign the bytes sent
    _register_key(api_a, hospital_key, require_signature=True, require_encryption=True)
    p = samples.lab()
    p["labmaster"]["report_form_no"] = "all-three"
    for item in p["lab_subitem"]:
        item["report_form_no"] = "all-three"
    wire = sm4.sm4_encrypt(sm4_key, gzip.compress(orjson.dumps(p)))
    r = _signed(api_a, hospital_key, "POST", LAB, wire, enc | {"Content-Encoding": "gzip"})
    assert r.status_code == 200, r.text
    assert orjson.loads(sm4.sm4_decrypt(sm4_key, r.content))["created"] is True


def test_sm4_refusals(api_a: Api, platform: sm2.Sm2Key, hospital_key: sm2.Sm2Key) -> None:
    sm4_key = os.urandom(16)
    body = sm4.sm4_encrypt(sm4_key, _lab_body())
    wrong = _wrap(platform, os.urandom(16))
    _refused(_send(api_a, "POST", LAB, body, {"X-Huren-Encryption": "sm4", "X-Huren-Key": wrong}), 400, "body", "sm4")
    _refused(_send(api_a, "POST", LAB, body, {"X-Huren-Encryption": "sm4", "X-Huren-Key": b64.b64e(b"x" * 120)}), 400, "X-Huren-Key", "sm2")
    _refused(_send(api_a, "POST", LAB, body, {"X-Huren-Encryption": "sm4"}), 400, "X-Huren-Key", "required")
    _refused(_send(api_a, "POST", LAB, body, {"X-Huren-Encryption": "aes", "X-Huren-Key": wrong}), 400, "X-Huren-Encryption", "dictionary")
    # an institution that requires encryption: plain bodies refused, others unaffected
    _register_key(api_a, hospital_key, require_encryption=True)
    _refused(api_a.post(LAB, samples.lab()), 401, "X-Huren-Encryption", "encryption_required")
    enc = {"X-Huren-Encryption": "sm4", "X-Huren-Key": _wrap(platform, sm4_key)}
    assert _send(api_a, "POST", LAB, body, enc).status_code == 200


def test_sm4_without_platform_key(api_a: Api) -> None:
    r = _send(api_a, "POST", LAB, b"x" * 16, {"X-Huren-Encryption": "sm4", "X-Huren-Key": "AAAA"})
    assert r.status_code == 503 and r.json()["code"] == "not_configured"
    assert "keys init" in r.json()["message"]


# ------------------------------------------------------------------------------------ gzip


def test_gzip_body(api_a: Api, api_b: Api) -> None:
    r = _send(api_a, "POST", LAB, gzip.compress(_lab_body()), {"Content-Encoding": "gzip"})
    assert r.status_code == 200, r.text
    assert r.json()["created"] is True
    _refused(_send(api_a, "POST", LAB, b"not gzip at all", {"Content-Encoding": "gzip"}), 400, "Content-Encoding", "gzip")
    _refused(_send(api_a, "POST", LAB, gzip.compress(_lab_body())[:-20], {"Content-Encoding": "gzip"}), 400, "Content-Encoding", "gzip")
    _refused(_send(api_a, "POST", LAB, _lab_body(), {"Content-Encoding": "br"}), 415, "Content-Encoding", "dictionary")
    assert _send(api_b, "GET", "/api/v1/quality/rejected", headers={"Content-Encoding": "identity"}).status_code == 200


def test_gzip_bomb_refused(api_a: Api, container: Container) -> None:
    limit = container.settings.max_request_bytes
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"\0" * (1 << 20)
    parts = [z.compress(block) for _ in range(limit // len(block) + 1)]
    bomb = b"".join(parts) + z.flush()
    assert len(bomb) < limit // 500  # ~64 KB on the wire
    for path, method in ((LAB, "POST"), (KEY, "PUT")):  # the second reads no body itself
        r = _send(api_a, method, path, bomb, {"Content-Encoding": "gzip"})
        _refused(r, 413, "body", "max_size")
        assert "解压" in r.json()["message"]  # refused while decompressing, not later
    assert api_a.get("/api/v1/quality/rejected").status_code == 200  # still healthy


# ------------------------------------------------------------------------------ viewing links


def _link(api: Api, rid: int, **kw: Any) -> Any:
    r = api.post("/api/v1/links", {"kind": "lab", "report_id": rid} | kw)
    assert r.status_code == 200, r.text
    return r.json()


def test_viewing_link(api_a: Api, api_b: Api, client: TestClient, container: Container) -> None:
    rid = api_a.post(LAB, samples.lab()).json()["report_id"]
    link = _link(api_b, rid)  # another institution's doctor may read it, so may link it
    assert link["url"].startswith(container.settings.public_base + "/api/v1/links/")  # configured, not the Host header
    exp = datetime.strptime(link["expires_at"], "%Y-%m-%d %H:%M:%S")
    assert timedelta(seconds=890) < exp - container.clock.now() <= timedelta(seconds=900)
    path = link["url"][len(container.settings.public_base) :]
    r = client.get(path)  # no token
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/pdf"
    assert r.content == samples.PDF_BYTES
    assert r.headers["cache-control"] == "private, no-store"
    # tampered: another report id under the same MAC, or a changed MAC
    token = path.rsplit("/", 1)[1]
    body, mac = token.split(".")
    claims = orjson.loads(_unb64u(body))
    assert claims["i"] == rid  # the link names the report by its ref, never by the store id
    forged = _b64u(orjson.dumps(claims | {"i": container.refs.report("lab", container.refs.report_id("lab", rid) + 1)}))
    for bad in (f"{forged}.{mac}", f"{body}.{mac[:-2]}AA", f"{body}", "x.y", api_b.headers["Authorization"][7:]):
        t = client.get(f"/api/v1/links/{bad}")
        assert t.status_code == 403, (bad, t.text)
        assert t.json()["code"] == "forbidden"
    # expired
    container.clock.offset = 901
    try:
        e = client.get(path)
    finally:
        container.clock.offset = 0
    assert e.status_code == 410 and e.json()["code"] == "link_expired"
    # a chosen lifetime; the limits
    assert _link(api_b, rid, ttl_seconds=86400)["expires_at"]
    assert api_b.post("/api/v1/links", {"kind": "lab", "report_id": rid, "ttl_seconds": 86401}).status_code == 422
    assert api_b.post("/api/v1/links", {"kind": "lab", "report_id": rid, "ttl_seconds": 0}).status_code == 422
    assert api_b.post("/api/v1/links", {"kind": "exam", "report_id": rid}).status_code == 404
    assert client.post("/api/v1/links", json={"kind": "lab", "report_id": rid}).status_code == 401


def _b64u(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64u(text: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_link_without_pdf(api_a: Api) -> None:
    p = samples.lab()
    del p["labmaster"]["pdf"]
    rid = api_a.post(LAB, p).json()["report_id"]
    r = api_a.post("/api/v1/links", {"kind": "lab", "report_id": rid})
    assert r.status_code == 404


# ------------------------------------------------------------------------------ key ownership


def test_only_owner_or_supervisor_sets_a_key(api_a: Api, api_b: Api, api_sup: Api, container: Container) -> None:
    k = sm2.generate_key()
    r = api_b.put(KEY, json={"public_key": k.public_hex, "org_code": ORG_A[0], "require_signature": True})
    assert r.status_code == 403 and r.json()["problems"][0]["rule"] == "ownership"
    assert api_b.get(KEY, params={"org_code": ORG_A[0]}).status_code == 403
    assert api_a.get(KEY).status_code == 404  # nothing registered
    # the supervisor sets A's key; A then reads it
    r = api_sup.put(KEY, json={"public_key": k.public.to_pem(), "org_code": ORG_A[0]})
    assert r.status_code == 200, r.text
    got = api_a.get(KEY).json()["key"]
    assert got["public_key"] == k.public_hex and got["require_signature"] is False
    assert got["platform_public_key"] is None  # no platform key in this data dir
    assert api_sup.get(KEY, params={"org_code": ORG_A[0]}).status_code == 200
    assert api_sup.put(KEY, json={"public_key": k.public_hex, "org_code": "nope"}).status_code == 404
    # A replaces its own key
    k2 = sm2.generate_key()
    assert api_a.put(KEY, json={"public_key": k2.public_hex[2:]}).json()["key"]["public_key"] == k2.public_hex
    bad = api_a.put(KEY, json={"public_key": "04" + "11" * 64})
    assert bad.status_code == 422 and bad.json()["problems"][0]["field"] == "public_key"
    # a doctor's account may not
    container.directory.add_credential(ORG_A[0], "doc", "doctor-password", role="doctor")
    r = api_a.client.post("/api/v1/auth/token", json={"org_code": ORG_A[0], "username": "doc", "password": "doctor-password"})
    doc = Api(api_a.client, r.json()["access_token"])
    assert doc.put(KEY, json={"public_key": k.public_hex}).status_code == 403


def test_platform_public_key_listed(api_a: Api, platform: sm2.Sm2Key, hospital_key: sm2.Sm2Key) -> None:
    assert _register_key(api_a, hospital_key)["platform_public_key"] == platform.public_hex


# ----------------------------------------------------------------------------------- audit


def test_audit_rows(api_a: Api, api_b: Api, api_sup: Api, client: TestClient, container: Container) -> None:
    rid = api_a.post(LAB, samples.lab()).json()["report_id"]
    _register_key(api_a, sm2.generate_key())
    api_sup.get(KEY, params={"org_code": ORG_A[0]})
    path = _link(api_b, rid, ttl_seconds=60)["url"][len(container.settings.public_base) :]
    assert client.get(path).status_code == 200
    container.clock.offset = 61
    try:
        assert client.get(path).status_code == 410
    finally:
        container.clock.offset = 0
    with container.db.read() as conn:
        rows = audit.list_access(conn, container.keys.fields())
    seen = {(r["org_code"], r["username"], r["action"], r["id_no"]) for r in rows}
    assert (ORG_A[0], ORG_A[4], "transport_key_set", None) in seen
    assert ("650100000", "admin", "transport_key_get", None) in seen
    assert (ORG_B[0], ORG_B[4], "link_create_lab", samples.ID_NO) in seen
    assert (ORG_B[0], ORG_B[4], "link_pdf_lab", samples.ID_NO) in seen  # the viewer acts as the link's creator
    assert (ORG_B[0], ORG_B[4], "link_expired_lab", None) in seen
    view = next(r for r in rows if r["action"] == "link_pdf_lab")
    # the platform's own log names the store row (never shown in a URL or an answer to a hospital)
    assert view["target"] == f"lab:{container.refs.report_id('lab', rid)}" and view["remote_addr"] == "testclient"


# ------------------------------------------------------------------ OpenSSL as the signer


DISTID = "distid:1234567812345678"


def test_openssl_signed_request(api_a: Api, hospital_key: sm2.Sm2Key, tmp_path: Path) -> None:
    exe = shutil.which("openssl")
    if exe is None or subprocess.run([exe, "genpkey", "-algorithm", "SM2"], capture_output=True, check=False).returncode:
        if os.environ.get("HUREN_REQUIRE_ALL") == "1":
            pytest.fail("HUREN_REQUIRE_ALL=1 but no openssl with SM2")
        pytest.skip("no openssl with SM2 on PATH")
    _register_key(api_a, hospital_key, require_signature=True)
    (tmp_path / "k.pem").write_text(hospital_key.to_pem())
    body = _lab_body()

    def openssl_sign(nonce: str, *opts: str) -> dict[str, str]:
        ts = str(int(time.time()))
        (tmp_path / "tbs").write_bytes(string_to_sign(ts, nonce, "POST", LAB, body))
        sig = subprocess.run(
            [exe, "dgst", "-sm3", "-sign", str(tmp_path / "k.pem"), *opts, str(tmp_path / "tbs")],
            capture_output=True, check=True,
        ).stdout
        return {"X-Huren-Timestamp": ts, "X-Huren-Nonce": nonce, "X-Huren-Signature": b64.b64e(sig)}

    # OpenSSL 3's default ID is empty: without the distid option the signature does not verify
    _refused(_send(api_a, "POST", LAB, body, openssl_sign("openssl-no-distid-01")), 401, "X-Huren-Signature", "signature")
    r = _send(api_a, "POST", LAB, body, openssl_sign("openssl-with-distid-1", "-sigopt", DISTID))
    assert r.status_code == 200, r.text
