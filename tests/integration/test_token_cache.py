"""Access tokens remembered after their first signature check (AuthService.verify): a repeat
skips only the MAC and the decoding; expiry and revocation hold on every call as before."""

from __future__ import annotations

from typing import Any

import pytest

from huren.errors import Unauthorized
from huren.services import auth as auth_mod
from huren.services.container import Container
from tests.conftest import ORG_A


def _counting_open(container: Container, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = container.auth._tokens.open

    def counted(value: str) -> Any:
        calls.append(value)
        return real(value)

    monkeypatch.setattr(container.auth._tokens, "open", counted)
    return calls


def _token(container: Container) -> str:
    return container.auth.issue(ORG_A[0], ORG_A[4], ORG_A[5]).access_token


def test_signature_checked_once_per_token(container: Container, monkeypatch: pytest.MonkeyPatch) -> None:
    token = _token(container)
    calls = _counting_open(container, monkeypatch)
    first = container.auth.verify(token)
    assert container.auth.verify(token) == first
    assert container.auth.verify(token) == first
    assert calls == [token]
    assert (first.org_code, first.username) == (ORG_A[0], ORG_A[4])


def test_a_near_copy_of_a_remembered_token_is_checked_and_refused(container: Container) -> None:
    token = _token(container)
    container.auth.verify(token)
    body, mac = token.split(".")
    for forged in (body + "." + mac[:-1] + ("A" if mac[-1] != "A" else "B"), token + "x", token[:-1]):
        with pytest.raises(Unauthorized):
            container.auth.verify(forged)
    assert container.auth.verify(token).org_code == ORG_A[0]


def test_remembered_token_expires(container: Container) -> None:
    token = _token(container)
    container.auth.verify(token)
    container.clock.offset += container.auth.ttl + 1
    with pytest.raises(Unauthorized, match="过期"):
        container.auth.verify(token)


@pytest.mark.parametrize("change", ["user_disabled", "org_disabled", "password"])
def test_remembered_token_revoked(container: Container, change: str) -> None:
    token = _token(container)
    container.auth.verify(token)
    if change == "user_disabled":
        container.directory.set_user_disabled(ORG_A[0], ORG_A[4], True)
    elif change == "org_disabled":
        container.directory.set_org_disabled(ORG_A[0], True)
    else:
        container.directory.set_password(ORG_A[0], ORG_A[4], "a-new-password")
    with pytest.raises(Unauthorized, match="失效"):
        container.auth.verify(token)


def test_expired_tokens_are_not_remembered_and_the_memory_is_bounded(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth_mod, "TOKEN_CACHE", 3)
    old = _token(container)
    container.clock.offset += container.auth.ttl + 1
    with pytest.raises(Unauthorized, match="过期"):
        container.auth.verify(old)
    assert old not in container.auth._opened
    tokens = []
    for _ in range(5):
        container.clock.offset += 1
        tokens.append(_token(container))
        container.auth.verify(tokens[-1])
    assert len(container.auth._opened) == 3
    assert list(container.auth._opened) == tokens[-3:]
    assert all(container.auth.verify(t).username == ORG_A[4] for t in tokens)  # evicted ones are checked again
