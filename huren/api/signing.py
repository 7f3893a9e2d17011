"""ASGI middleware for the signed REST transport under ``/api/v1/`` (BJ-1.3/1.4; not ``/Myhealth``).

For a request with a valid bearer token, in this order:

1. signature — when ``X-Huren-Signature`` (or a timestamp / nonce header) is present, or the
   institution requires signatures: check the timestamp, the SM3withSM2 signature over
   ``services.transport.string_to_sign`` of the body exactly as sent, and the nonce (401 otherwise);
2. SM4 — ``X-Huren-Encryption: sm4`` + ``X-Huren-Key``: decrypt the body; the response body is
   then SM4-encrypted with the same key (401 when the institution requires it and it is missing);
3. gzip — ``Content-Encoding: gzip``: decompress within the request size limit (413 beyond).

The application then sees the plain body. A request without a token (or with a bad one) passes
through untouched to the normal 401; so do ``/api/v1/auth/token`` and viewing links. Refusals are
the REST error JSON ``{code, message, problems}``, never encrypted. Wire format:
docs/signed-transport.md.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from huren.api.deps import VERIFIED_TOKEN, write
from huren.api.errors import huren_error_body
from huren.api.responses import Json
from huren.crypto import sm4
from huren.errors import HurenError, MalformedBody, Problem, TooLarge, Unauthorized, UnsupportedEncoding
from huren.services.container import Container
from huren.services.transport import TransportService, gunzip

PREFIX = "/api/v1/"
_SIGNATURE_HEADERS = ("x-huren-signature", "x-huren-timestamp", "x-huren-nonce")
_DROP = {b"content-encoding", b"content-length", b"transfer-encoding"}


class _Disconnected(Exception):
    pass


class SignedTransport:
    def __init__(self, app: ASGIApp, container: Container) -> None:
        self.app = app
        self.c = container

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        org_code = self._org(scope, headers)
        if org_code is None:
            await self.app(scope, receive, send)
            return
        policy = self.c.transport.policy(org_code)
        signed = any(h in headers for h in _SIGNATURE_HEADERS)
        encrypted = "x-huren-encryption" in headers or "x-huren-key" in headers
        coding = headers.get("content-encoding", "").strip().lower()
        need_sig = signed or (policy is not None and policy.require_signature)
        need_enc = encrypted or (policy is not None and policy.require_encryption)
        if not (need_sig or need_enc or coding not in ("", "identity")):
            await self.app(scope, receive, send)
            return
        try:
            body, key = await self._decode(scope, receive, headers, org_code, signed, need_sig, encrypted, need_enc, coding)
        except _Disconnected:
            return
        except HurenError as exc:
            extra = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
            body_json = huren_error_body(exc)
            await Json(body_json, exc.status, headers=extra)(scope, receive, send)
            return
        kept = [(k, v) for k, v in scope["headers"] if k not in _DROP]
        inner = dict(scope, headers=[*kept, (b"content-length", str(len(body)).encode())])
        await self.app(inner, _replay(body, receive), _encrypting(send, key) if key else send)

    def _org(self, scope: Scope, headers: Headers) -> str | None:
        """The institution of the request's access token (as ``deps.principal`` reads it), or None.
        The verified token is kept in the request state, so ``deps.principal`` does not verify it twice."""
        auth = headers.get("authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else headers.get("x-access-token", "")
        if not token:
            return None
        try:
            principal = self.c.auth.verify(token)
        except Unauthorized:
            return None
        scope.setdefault("state", {})[VERIFIED_TOKEN] = (token, principal)
        return principal.org_code

    async def _decode(
        self, scope: Scope, receive: Receive, headers: Headers, org_code: str,
        signed: bool, need_sig: bool, encrypted: bool, need_enc: bool, coding: str,
    ) -> tuple[bytes, bytes | None]:
        """The plain body and the SM4 key (None when not encrypted); HurenError on refusal."""
        limit = self.c.settings.max_request_bytes
        if coding not in ("", "identity", "gzip"):
            raise UnsupportedEncoding(
                f"不支持的 Content-Encoding：{coding}", [Problem("Content-Encoding", "dictionary", "只支持 gzip")]
            )
        raw = await _read(receive, limit)
        svc = self.c.transport
        if need_sig:
            if not signed:
                raise Unauthorized(
                    "本机构要求签名请求：请带 X-Huren-Timestamp、X-Huren-Nonce、X-Huren-Signature",
                    [Problem("X-Huren-Signature", "signature_required", "未签名的请求被拒绝")],
                )
            await write(
                self.c, svc.verify, org_code, headers.get("x-huren-timestamp", "").strip(),
                headers.get("x-huren-nonce", "").strip(), headers.get("x-huren-signature", "").strip(),
                scope["method"], _target(scope), raw,
            )
        key: bytes | None = None
        if need_enc:
            if not encrypted:
                raise Unauthorized(
                    "本机构要求加密传输：请求体须用SM4加密并带 X-Huren-Encryption: sm4 与 X-Huren-Key",
                    [Problem("X-Huren-Encryption", "encryption_required", "未加密的请求被拒绝")],
                )
            if headers.get("x-huren-encryption", "").strip().lower() != "sm4":
                raise MalformedBody(
                    "X-Huren-Encryption 应为 sm4", [Problem("X-Huren-Encryption", "dictionary", "只支持 sm4（SM4-ECB，PKCS#7 填充）")]
                )
            key = svc.unwrap(headers.get("x-huren-key", ""))  # SM2, cached by X-Huren-Key digest
            if raw:
                raw = TransportService.decrypt(key, raw)
        if coding == "gzip":
            raw = gunzip(raw, limit)
        return raw, key


def _target(scope: Scope) -> str:
    """The signed request target: the path as received (percent-encoded) plus ``?query`` if any."""
    path: bytes = scope.get("raw_path") or scope["path"].encode()
    query: bytes = scope.get("query_string", b"")
    return path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")


async def _read(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"请求体超过上限 {limit} 字节", [Problem("body", "max_size", f"请求体不能超过 {limit} 字节")])
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the app the decoded body, then defers to the server (disconnects)."""
    done = False

    async def inner() -> Message:
        nonlocal done
        if not done:
            done = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return inner


def _encrypting(send: Send, key: bytes) -> Callable[[Message], Awaitable[None]]:
    """A send that SM4-encrypts the (whole, buffered) response body with the request's key."""
    start: dict[str, Any] = {}
    chunks: list[bytes] = []

    async def inner(message: Message) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
            return
        if message["type"] != "http.response.body":
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        plain = b"".join(chunks)
        data = sm4.sm4_encrypt(key, plain) if plain else b""
        kept = [(k, v) for k, v in start.get("headers", []) if k.lower() not in _DROP]
        extra = [(b"x-huren-encryption", b"sm4")] if plain else []
        await send(start | {"headers": [*kept, (b"content-length", str(len(data)).encode()), *extra]})
        await send({"type": "http.response.body", "body": data})

    return inner
