"""Accounts (issue 10 §1.5, §1.6, §3): revocation of tokens and sessions, throttled and logged
failed logins on REST, SOAP and the login page, the same cost for unknown users, a configurable
password-hash cost."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from huren.api import soap
from huren.bootstrap import build
from huren.errors import InvalidInput, TooMany, Unauthorized
from huren.services.container import Container
from huren.settings import Settings
from huren.store.tables import access_log, credential, login_failure
from huren.wire.xj_xml import Credential
from tests import samples
from tests.conftest import ORG_A, ORG_B, SECRET, Api, login


def _token(client: TestClient, org: tuple[str, ...], password: str | None = None) -> Any:
    return client.post(
        "/api/v1/auth/token", json={"org_code": org[0], "username": org[4], "password": password or org[5]}
    )


def _failures(container: Container, action: str = "login_failed") -> list[dict[str, Any]]:
    with container.db.read() as conn:
        q = select(access_log).where(access_log.c.action == action).order_by(access_log.c.id)
        return [dict(r) for r in conn.execute(q).mappings()]


# -- §1.5 revocation ---------------------------------------------------------------------------------
def test_disabled_user_token_stops_reading_and_writing(client: TestClient, api_a: Api, container: Container) -> None:
    assert api_a.get("/api/v1/orgs").status_code == 200
    container.directory.set_user_disabled(ORG_A[0], ORG_A[4], True)
    r = api_a.get("/api/v1/orgs")
    assert r.status_code == 401 and "失效" in r.json()["message"]
    assert api_a.post("/api/v1/lab-reports", samples.lab()).status_code == 401
    r = _token(client, ORG_A)
    assert r.status_code == 401 and "停用" in r.json()["message"]
    # enabled again: the old token stays dead (its version was bumped), a new login works
    container.directory.set_user_disabled(ORG_A[0], ORG_A[4], False)
    assert api_a.get("/api/v1/orgs").status_code == 401
    assert login(client, ORG_A).get("/api/v1/orgs").status_code == 200


def test_disabled_org_stops_every_user(client: TestClient, api_a: Api, api_b: Api, container: Container) -> None:
    container.directory.add_credential(ORG_A[0], "doc", "doctor-pass", "doctor")
    doc = login(client, (ORG_A[0], "", "", "", "doc", "doctor-pass"))
    out = container.directory.set_org_disabled(ORG_A[0], True)
    assert out["disabled"] is True
    assert api_a.get("/api/v1/orgs").status_code == 401
    assert doc.get("/api/v1/orgs").status_code == 401
    assert _token(client, ORG_A).status_code == 401
    assert api_b.get("/api/v1/orgs").status_code == 200  # another institution is untouched
    container.directory.set_org_disabled(ORG_A[0], False)
    assert api_a.get("/api/v1/orgs").status_code == 401
    assert login(client, ORG_A).get("/api/v1/orgs").status_code == 200


def test_password_change_ends_old_tokens(client: TestClient, api_a: Api, container: Container) -> None:
    container.directory.set_password(ORG_A[0], ORG_A[4], "a-new-password")
    assert api_a.get("/api/v1/orgs").status_code == 401
    assert _token(client, ORG_A).status_code == 401
    assert _token(client, ORG_A, "a-new-password").status_code == 200


def test_rest_password_change_for_the_caller(client: TestClient, api_a: Api, api_b: Api) -> None:
    r = api_a.post("/api/v1/auth/password", {"old_password": "wrong-password", "new_password": "a-new-password"})
    assert r.status_code == 401 and r.json()["problems"][0]["field"] == "old_password"
    r = api_a.post("/api/v1/auth/password", {"old_password": ORG_A[5], "new_password": "short"})
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "new_password"
    r = api_a.post("/api/v1/auth/password", {"old_password": ORG_A[5], "new_password": "a-new-password"})
    assert r.status_code == 200, r.text
    fresh = Api(client, r.json()["access_token"])
    assert fresh.get("/api/v1/orgs").status_code == 200
    assert api_a.get("/api/v1/orgs").status_code == 401
    assert api_b.get("/api/v1/orgs").status_code == 200
    assert _token(client, ORG_A, "a-new-password").status_code == 200


def test_another_process_sees_a_revocation_within_60_seconds(
    client: TestClient, api_a: Api, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A change made by another process (here: a second container on the same database, as the
    CLI is) holds once the cached state is older than 60 s."""
    assert api_a.get("/api/v1/orgs").status_code == 200
    other = build(container.settings, clock=container.clock)
    try:
        other.directory.set_user_disabled(ORG_A[0], ORG_A[4], True)
    finally:
        other.close()
    assert container.auth.check_ttl <= 60
    real = time.monotonic
    monkeypatch.setattr(time, "monotonic", lambda: real() + 60.5)
    assert api_a.get("/api/v1/orgs").status_code == 401


def test_soap_credential_cache_follows_revocation(container: Container) -> None:
    """A change in this process holds for the SOAP credential cache at once."""
    profile = soap.SoapProfile(container)
    cred = Credential(ORG_A[0], ORG_A[1], "0", ORG_A[4], ORG_A[5])
    assert profile.principal(cred, "10.0.0.1").org_code == ORG_A[0]
    container.directory.set_user_disabled(ORG_A[0], ORG_A[4], True)
    with pytest.raises(Unauthorized):
        profile.principal(cred, "10.0.0.1")
    container.directory.set_user_disabled(ORG_A[0], ORG_A[4], False)
    assert profile.principal(cred, "10.0.0.1").org_code == ORG_A[0]
    container.directory.set_password(ORG_A[0], ORG_A[4], "a-new-password")
    with pytest.raises(Unauthorized):
        profile.principal(cred, "10.0.0.1")


def test_soap_credential_cache_at_most_60_seconds_stale(container: Container, monkeypatch: pytest.MonkeyPatch) -> None:
    """A change by another process (a second container on the same database, as the CLI is)."""
    profile = soap.SoapProfile(container)
    cred = Credential(ORG_A[0], ORG_A[1], "0", ORG_A[4], ORG_A[5])
    assert profile.principal(cred, "10.0.0.1").org_code == ORG_A[0]
    other = build(container.settings, clock=container.clock)
    try:
        other.directory.set_password(ORG_A[0], ORG_A[4], "a-new-password")
    finally:
        other.close()
    assert profile.principal(cred, "10.0.0.1").org_code == ORG_A[0]  # still cached here
    assert soap.CREDENTIAL_TTL <= 60
    real = time.monotonic
    monkeypatch.setattr(time, "monotonic", lambda: real() + 60.5)
    with pytest.raises(Unauthorized):
        profile.principal(cred, "10.0.0.1")


# -- §1.6 brute force --------------------------------------------------------------------------------
def test_rest_wrong_passwords_throttled_then_locked_and_logged(client: TestClient, container: Container) -> None:
    for _ in range(5):
        assert _token(client, ORG_A, "wrong-password").status_code == 401
    r = _token(client, ORG_A)  # at once, even the right password waits while the account is throttled
    assert r.status_code == 429 and r.json()["code"] == "too_many" and r.headers["retry-after"] == "2"
    assert "次数过多" in r.json()["message"] and r.json()["problems"][0]["field"] == "password"
    for _ in range(5):  # keep failing, waiting out each delay: failures 6 … 10
        container.clock.offset += 61
        assert _token(client, ORG_A, "wrong-password").status_code == 401
    container.clock.offset += 61
    r = _token(client, ORG_A)
    assert r.status_code == 429 and "锁定" in r.json()["message"] and int(r.headers["retry-after"]) > 800
    container.clock.offset += 900
    assert _token(client, ORG_A).status_code == 200
    # every failure is in the access log, naming the channel and the reason
    failed = _failures(container)
    assert len(failed) == 10
    assert {(f["org_code"], f["username"], f["target"]) for f in failed} == {(ORG_A[0], ORG_A[4], "rest:password")}
    assert all(f["remote_addr"] == "testclient" for f in failed)
    assert len(_failures(container, "login_refused")) == 2
    # another account is not held up by A's lock
    assert _token(client, ORG_B).status_code == 200


def test_throttle_waits_grow(client: TestClient, container: Container) -> None:
    waits = []
    for _ in range(10):
        assert _token(client, ORG_A, "wrong-password").status_code == 401
        with container.db.read() as conn:
            row = conn.execute(select(login_failure).where(login_failure.c.key == f"a:{ORG_A[0]}/{ORG_A[4]}")).mappings().one()
        # the wait the failure set, measured from the failure itself (not from a later reading of the clock)
        waits.append(round(row["locked_until"] - row["last_at"]) if row["locked_until"] else 0)
        container.clock.offset += 61
    assert waits == [0, 0, 0, 0, 2, 4, 8, 16, 32, 900]
    assert _token(client, ORG_A, "wrong-password").status_code == 429  # locked: 61 s later still


def test_unknown_accounts_throttled_too_and_per_address(client: TestClient, container: Container) -> None:
    for i in range(20):  # guessing 20 accounts from one address
        org = ("000000", "", "", "", f"user{i}", "")
        assert _token(client, org, "guess-password").status_code == 401
    r = _token(client, ORG_B)  # the address must now wait, whatever account it tries
    assert r.status_code == 429 and "地址" in r.json()["message"]
    assert {f["target"] for f in _failures(container)} == {"rest:unknown"}


def test_unknown_user_costs_the_same_scrypt(container: Container, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = hashlib.scrypt

    def counting(password: bytes, **kw: Any) -> bytes:
        calls.append(kw["n"])
        return real(password, **kw)

    container.auth.hasher.warm()  # the dummy hash is made before the first login of a process
    monkeypatch.setattr(hashlib, "scrypt", counting)
    with pytest.raises(Unauthorized):
        container.auth.login(ORG_A[0], ORG_A[4], "wrong-password")
    known = list(calls)
    calls.clear()
    for org, user in (("000000", "nobody"), (ORG_A[0], "nobody")):
        with pytest.raises(Unauthorized) as err:
            container.auth.login(org, user, "wrong-password")
        assert err.value.message == "机构编码、用户名或密码错误"
    assert len(known) == 1 and calls == known * 2


def test_soap_failures_throttled_and_logged(container: Container) -> None:
    profile = soap.SoapProfile(container)
    bad = Credential(ORG_A[0], ORG_A[1], "0", ORG_A[4], "wrong-password")
    for _ in range(5):
        with pytest.raises(Unauthorized):
            profile.principal(bad, "10.0.0.9")
    with pytest.raises(TooMany) as err:
        profile.principal(Credential(ORG_A[0], ORG_A[1], "0", ORG_A[4], ORG_A[5]), "10.0.0.9")
    assert soap.error_text(err.value).startswith("error:") and "次数过多" in soap.error_text(err.value)
    failed = _failures(container)
    assert len(failed) == 5 and {(f["target"], f["remote_addr"]) for f in failed} == {("soap:password", "10.0.0.9")}


# -- §3 the password-hash cost -------------------------------------------------------------------------
def test_password_hash_cost_from_settings(container: Container, tmp_path: Any) -> None:
    cheap = build(
        Settings(data_dir=tmp_path / "cheap", database_url=container.settings.db_url, secret_key=SECRET, password_hash_n=2),
        clock=container.clock,
    )
    try:
        cheap.directory.add_credential(ORG_B[0], "cheap", "cheap-password", "doctor")
        with cheap.db.read() as conn:
            stored = conn.execute(select(credential.c.password_hash).where(credential.c.username == "cheap")).scalar_one()
        assert stored.startswith("scrypt$2$8$1$")
        assert cheap.auth.authenticate(ORG_B[0], "cheap", "cheap-password").role == "doctor"
        assert cheap.auth.hasher.n == 2
    finally:
        cheap.close()
    assert Settings.model_fields["password_hash_n"].default == 2**14  # production's cost (the suite runs cheap)
    with pytest.raises(ValueError):
        Settings(password_hash_n=3)


def test_migration_0005_keeps_existing_accounts_working(tmp_path: Any) -> None:
    """An installation at 0004 with accounts: after the upgrade every credential is enabled, at
    version 1, and logs in with its old password."""
    from datetime import datetime

    from huren.services.auth import PasswordHasher
    from huren.store import migrate
    from huren.store.database import make_engine

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine, "0004")
    now = datetime(2026, 11, 1)
    with engine.begin() as conn:  # rows as 0004 knew them (no disabled / cred_version columns)
        conn.exec_driver_sql(
            "INSERT INTO org (code, name, region_code, level, grade, platform, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            ("X1", "旧医院", "650102", 3, "甲", "", now),
        )
        conn.exec_driver_sql(
            "INSERT INTO credential (org_code, username, password_hash, role, created_at) VALUES (?, ?, ?, ?, ?)",
            ("X1", "his", PasswordHasher(2).hash("old-password"), "hospital", now),
        )
    migrate.upgrade(engine, "0005")
    engine.dispose()
    c = build(Settings(data_dir=tmp_path / "d", database_url=url, secret_key=SECRET), upgrade=True)
    try:
        with c.db.read() as conn:
            row = conn.execute(select(credential.c.disabled, credential.c.cred_version)).one()
        assert (bool(row.disabled), row.cred_version) == (False, 1)
        account = c.auth.login("X1", "his", "old-password")
        assert account.version == 1 and c.auth.verify(c.auth.sign(account)).org_code == "X1"
    finally:
        c.close()


def test_login_refuses_text_no_store_can_hold(client: TestClient, container: Container) -> None:
    """NUL or a bidi override in the institution code or user name is named and refused before any
    look-up, on every channel (on PostgreSQL it used to surface as a database range error)."""
    for org, user, field in (("4577\x0059922", "his", "org_code"), (ORG_A[0], "h\u202eis", "username"), ("x" * 129, "his", "org_code")):
        with pytest.raises(InvalidInput) as err:
            container.auth.login(org, user, "password-a", channel="web")
        assert err.value.problems[0].field == field
    import re

    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/ui/login").text)
    assert token
    r = client.post("/ui/login", data={"org_code": "4577\x0059922", "username": "his", "password": "x", "csrf_token": token.group(1)})
    assert r.status_code == 422 and "机构编码（org_code）含有不允许的字符 U+0000" in r.text
    assert _failures(container) == []
    with pytest.raises(InvalidInput):
        container.directory.add_credential(ORG_A[0], "d\x07oc", "doctor-pass", "doctor")
