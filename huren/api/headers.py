"""Security headers on every answer, in one place (issue 10 §1.14).

* ``X-Content-Type-Options: nosniff`` on everything: a browser renders an answer only as the
  type it is declared (a PDF that holds HTML is never run as a page).
* A ``Content-Disposition`` on every file answer (PDF, CSV, XLSX, kept payloads): the endpoint's
  own (``inline`` for a PDF the report page frames, ``attachment`` for downloads), else
  ``attachment`` here, so no file answer is shown as a document of the platform's origin.
* A ``Content-Security-Policy`` on every HTML page: scripts, styles and frames only from the
  platform itself, no plugins, forms posting only to it, and ``frame-ancestors`` as configured
  (``HUREN_FRAME_ANCESTORS``: a HIS that embeds the doctor's pages names its origin there).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from huren.settings import check_frame_ancestors

#: Answers that are not files: JSON, pages, the SOAP profile and its WSDL, the pages' own
#: scripts, styles and images, and plain text.
_NOT_FILES = (
    b"application/json", b"text/html", b"text/xml", b"application/soap+xml", b"application/xml",
    b"text/css", b"text/javascript", b"application/javascript", b"image/", b"text/plain", b"font/",
)
def content_security_policy(frame_ancestors: str | None) -> str:
    """The pages' policy; ``frame_ancestors`` None leaves framing to the browser's default (the
    gateway's pages, which a HIS may frame from any origin, a local file included)."""
    policy = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-src 'self'"
    )
    return policy if frame_ancestors is None else f"{policy}; frame-ancestors {check_frame_ancestors(frame_ancestors)}"


class SecurityHeaders:
    """ASGI middleware adding the headers above to every HTTP answer."""

    #: the interactive API documentation (fastapi-offline) runs an inline script: no policy there
    EXEMPT = ("/docs", "/redoc")

    def __init__(self, app: ASGIApp, frame_ancestors: str | None = "'self'") -> None:
        self.app = app
        self.csp = content_security_policy(frame_ancestors).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        csp = not str(scope.get("path", "")).startswith(self.EXEMPT)

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                ctype = next((v.lower() for k, v in headers if k.lower() == b"content-type"), b"")
                if b"x-content-type-options" not in names:
                    headers.append((b"x-content-type-options", b"nosniff"))
                if csp and ctype.startswith(b"text/html") and b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", self.csp))
                if (
                    ctype
                    and not ctype.startswith(_NOT_FILES)
                    and b"content-disposition" not in names
                    and message.get("status", 200) < 300
                ):
                    headers.append((b"content-disposition", b"attachment"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, sending)
