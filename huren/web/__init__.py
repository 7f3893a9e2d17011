"""Pages for people (issue #6): the doctor's widget, reminder panel, decision dialog and report
view; the supervision pages (completeness, timeliness, rectification, recognition statistics,
catalog and mapping maintenance); login with roles. Server-rendered HTML and SVG (Jinja2) with a
little script of our own; no third-party front-end code. Pages call the same services as the API.

The platform serves them all (``install``); a hospital's gateway serves the doctor's pages over
its preload cache (``install_doctor_pages``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from huren.web.render import HERE
from huren.web.session import SessionCodec

if TYPE_CHECKING:
    from huren.services.container import Container
    from huren.web.backend import DoctorBackend

PREFIX = "/ui"


class Pages(BaseRoute):
    """Everything under /ui (or another ``prefix``) goes, path unchanged, to the pages' own
    application, which answers its errors as Chinese pages (huren.web.errors) while the host app
    keeps its own error form."""

    def __init__(self, app: ASGIApp, prefix: str = PREFIX) -> None:
        self.app = app
        self.prefix = prefix

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path == self.prefix or path.startswith(self.prefix + "/"):
                return Match.FULL, {}
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def _pages_app(backend: DoctorBackend, sessions: SessionCodec | None) -> FastAPI:
    from huren.web import errors

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.web_sessions = sessions
    app.state.doctor_backend = backend
    errors.install(app)
    app.mount(PREFIX + "/static", StaticFiles(directory=HERE / "static"), name="ui-static")
    return app


def install(app: FastAPI, container: Container) -> None:
    """Serve every page under /ui on the platform's app."""
    from huren.web import (
        routes_auth,
        routes_catalog,
        routes_doctor,
        routes_film,
        routes_imaging,
        routes_overview,
        routes_platforms,
        routes_rectification,
        routes_report,
        routes_stats,
        routes_supervision,
    )
    from huren.web.backend import PlatformBackend

    sessions = SessionCodec(
        container.auth.secret, container.clock,
        idle=container.settings.web_session_idle_seconds, absolute=container.settings.web_session_max_seconds,
        guard=container.auth,  # sessions carry a credential version; logout revokes on the server
    )
    pages = _pages_app(PlatformBackend(container), sessions)
    pages.state.container = container
    pages.state.public_base = container.settings.public_base  # links in pages: never the Host header
    for module in (routes_auth, routes_doctor, routes_report, routes_imaging, routes_supervision, routes_rectification, routes_stats,
                   routes_catalog, routes_overview, routes_platforms):
        pages.router.routes.extend(module.router.routes)
    app.router.routes.append(Pages(pages))
    # the patient's cloud film (YB-4.3): outside /ui's login, the key in its URL is the credential
    pages.router.routes.extend(routes_film.film_router.routes)
    app.router.routes.append(Pages(pages, routes_film.FILM_PREFIX))


def install_doctor_pages(app: FastAPI, backend: DoctorBackend, *, his_origins: tuple[str, ...] = ()) -> None:
    """Serve the doctor's pages (token only, no login) on another app: the gateway's local API.
    ``his_origins``: the exact HIS origins the saved dialog posts its decisions to."""
    from huren.web import routes_doctor, routes_report

    pages = _pages_app(backend, None)
    pages.state.his_origins = his_origins
    pages.router.routes.extend(routes_doctor.router.routes)
    pages.router.routes.extend(routes_report.router.routes)
    app.router.routes.append(Pages(pages))
