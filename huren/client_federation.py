"""The federation calls of :class:`huren.client.HurenClient` (issue 13; a mixin like
``ImagingCalls``): a platform's change feed, the applying of a batch on the platform above, its
watermark there, and the PDFs carried by SHA-256. Nobody outside the client spells these paths."""

from __future__ import annotations

import re
from typing import Any, Protocol

import httpx2
import orjson

from huren.client_rest import API
from huren.errors import NotFound, PlatformRefused, PlatformUnavailable, Problem

_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_SHA = re.compile(r"[0-9a-f]{64}")


def platform_path(code: str, what: str) -> str:
    """``/api/v1/platforms/{code}/{what}``; a code of another shape names no platform (NotFound)."""
    if not isinstance(code, str) or not _CODE.fullmatch(code):
        raise NotFound("平台不存在", [Problem("platform", "format", "平台编码格式不对")])
    return f"{API}/platforms/{code}/{what}"


class _Rest(Protocol):
    def rest_call(
        self, verb: str, path: str, *, json: Any = None, content: bytes | None = None, params: Any = None, timeout: float | None = None
    ) -> Any: ...

    def send(
        self, verb: str, path: str, *, json: Any = None, content: bytes | None = None, params: Any = None, timeout: float | None = None
    ) -> httpx2.Response: ...


class FederationCalls:
    def feed(self: _Rest, code: str, since: int, limit: int = 1000, wait: float = 0.0) -> dict[str, Any]:
        """The changes of platform ``code`` after ``since`` (``{"last_seq", "more", "changes"}``)."""
        params = {"since": since, "limit": limit, "wait": wait}
        out: dict[str, Any] = self.rest_call("GET", platform_path(code, "changes"), params=params, timeout=wait + 60.0)
        return out

    def apply_batch(self: _Rest, code: str, batch: dict[str, Any]) -> dict[str, Any]:
        """Apply a batch of ``code``'s feed on this platform; PlatformRefused 409 for a gap."""
        out: dict[str, Any] = self.rest_call("POST", platform_path(code, "changes"), content=orjson.dumps(batch), timeout=300.0)
        return out

    def watermark(self: _Rest, code: str) -> dict[str, Any]:
        out: dict[str, Any] = self.rest_call("GET", platform_path(code, "watermark"))
        return out

    def missing_files(self: _Rest, code: str, digests: list[str]) -> list[str]:
        out = self.rest_call("POST", platform_path(code, "files/missing"), json={"sha256": digests})
        return [str(d) for d in out.get("missing", [])]

    def get_file(self: _Rest, code: str, sha: str) -> bytes:
        if not _SHA.fullmatch(sha):
            raise NotFound("文件不存在")
        r = self.send("GET", platform_path(code, f"files/{sha}"))
        if r.status_code >= 500:
            raise PlatformUnavailable(f"HTTP {r.status_code}", [Problem("platform", "unavailable", f"平台应答 HTTP {r.status_code}")])
        if r.status_code >= 400:
            raise PlatformRefused(r.status_code, r.text[:500])
        return r.content

    def put_file(self: _Rest, code: str, sha: str, data: bytes) -> None:
        if not _SHA.fullmatch(sha):
            raise NotFound("文件不存在")
        self.rest_call("PUT", platform_path(code, f"files/{sha}"), content=data)

    def federation_status(self: _Rest) -> dict[str, Any]:
        out: dict[str, Any] = self.rest_call("GET", f"{API}/federation/status")
        return out
