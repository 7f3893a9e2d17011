"""The fallback imaging platform's description (:class:`Peer`) and a relayed answer
(:class:`Relayed`), with the small HTTP helpers of the relay (XC-E-note; the rules are in
:mod:`huren.services.imaging_forward`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

import httpx2

from huren.errors import InvalidInput, Problem

MAX_PARAMS = 64
MAX_PARAM_LEN = 1024
_DROP_PARAMS = frozenset({"key", "access_token", "token"})


@dataclass(frozen=True, slots=True)
class Peer:
    """Another conforming imaging platform: its DICOMweb root, the name the doctor is shown, how to
    authenticate (a bearer token, or basic auth), and the bounds of a relay."""

    name: str
    url: str
    token: str | None = None
    username: str | None = None
    password: str | None = None
    timeout: float = 10.0
    max_json_bytes: int = 32 * 1024 * 1024
    max_bytes: int = 2 * 1024 * 1024 * 1024
    failover: bool = False
    pause_after: int = 3
    pause_seconds: float = 30.0
    #: the peer's WADO-URI address; None: ``url`` with its last path segment replaced by ``wado``
    wado_url: str | None = None

    @property
    def root(self) -> str:
        return self.url.rstrip("/")

    @property
    def wado(self) -> str:
        if self.wado_url:
            return self.wado_url.rstrip("/")
        head, _, _ = self.root.rpartition("/")
        return f"{head}/wado"


@dataclass(slots=True)
class Relayed:
    """The peer's answer: status, media type, the body (JSON read whole, else streamed) and its origin."""

    origin: str
    status: int
    media_type: str
    body: bytes | None = None
    chunks: Iterator[bytes] | None = None
    length: int | None = None
    _response: httpx2.Response | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        return f"影像来源：{self.origin}"

    def headers(self) -> dict[str, str]:
        """Headers a transport adds: the origin (percent-encoded UTF-8, RFC 3986) and a Warning."""
        h = {"X-Image-Source": quote(self.origin, safe=""), "Warning": '299 huren "Images from another imaging platform, see X-Image-Source"'}
        if self.length is not None:
            h["Content-Length"] = str(self.length)
        return h

    def iter_bytes(self) -> Iterator[bytes]:
        if self.body is not None:
            yield self.body
        elif self.chunks is not None:
            yield from self.chunks

    def close(self) -> None:
        if self._response is not None:
            self._response.close()



def params_of(params: Mapping[str, str] | Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    items = list(params.items()) if isinstance(params, Mapping) else list(params)
    if len(items) > MAX_PARAMS:
        msg = f"查询参数过多（最多 {MAX_PARAMS} 个）"
        raise InvalidInput(msg, [Problem("query", "limit", msg)])
    out = []
    for k, v in items:
        if len(k) > 64 or len(v) > MAX_PARAM_LEN:
            msg = f"查询参数 {k[:64]} 过长"
            raise InvalidInput(msg, [Problem(k[:64], "length", msg)])
        if k not in _DROP_PARAMS:
            out.append((k, v))
    return out


def with_query(url: str, items: list[tuple[str, str]]) -> str:
    """``url`` with the query, ``/`` ``:`` ``,`` ``*`` left as they are (RFC 3986 allows them in a
    query; Orthanc's WADO-URI does not decode ``contentType=application%2Fdicom``)."""
    if not items:
        return url
    return url + "?" + "&".join(f"{quote(k, safe='')}={quote(v, safe='/:,*')}" for k, v in items)


def length_of(resp: httpx2.Response) -> int | None:
    raw = resp.headers.get("content-length")
    return int(raw) if raw and raw.isdigit() and not resp.headers.get("content-encoding") else None


def excerpt(resp: httpx2.Response) -> str:
    """A short printable excerpt of a peer's error answer."""
    try:
        raw = next(resp.iter_bytes(512), b"")
    except httpx2.HTTPError:
        return ""
    return "".join(c for c in raw.decode("utf-8", "replace") if c.isprintable())[:200]



__all__ = ["MAX_PARAMS", "MAX_PARAM_LEN", "Peer", "Relayed", "excerpt", "length_of", "params_of", "with_query"]
