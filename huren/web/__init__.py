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

from huren.web.render import HERE
from huren.web.session import SessionCodec

if TYPE_CHECKING:
    from huren.services.container import Container
    from huren.web.backend import DoctorBackend


def install(app: FastAPI, container: Container) -> None:
    """Mount every page under /ui on the platform's app."""
    from huren.web import routes_auth, routes_doctor, routes_supervision
    from huren.web.backend import PlatformBackend

    app.state.web_sessions = SessionCodec(
        container.auth.secret, container.clock,
        idle=container.settings.web_session_idle_seconds, absolute=container.settings.web_session_max_seconds,
    )
    app.state.doctor_backend = PlatformBackend(container)
    app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui-static")
    for module in (routes_auth, routes_doctor, routes_supervision):
        app.router.routes.extend(module.router.routes)


def install_doctor_pages(app: FastAPI, backend: DoctorBackend) -> None:
    """Mount the doctor's pages (token only, no login) on another app: the gateway's local API."""
    from huren.web import routes_doctor

    app.state.web_sessions = None
    app.state.doctor_backend = backend
    app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui-static")
    app.router.routes.extend(routes_doctor.router.routes)
