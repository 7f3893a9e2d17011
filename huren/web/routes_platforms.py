"""The page 「平台与同步」 (issue 13 §1–3): the platform tree within the caller's reach (levels,
virtual or not, hosted on this deployment or not, the institutions of each) and the sync state of
every child platform applied here (applied and source sequence numbers, backlog, last applied,
lag, idle, gaps, last error) with the alerts in Chinese. For supervisors (their platform's
subtree), platform accounts, and hospital administrators (their own institution's platform): the
``federation.read`` action of the one policy. The figures come from
:mod:`huren.services.platform_view`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from huren.domain import access
from huren.domain.limits import excerpt
from huren.errors import InvalidInput
from huren.services.platform_view import SILENT_MINUTES, minutes, platform_view
from huren.web import charts
from huren.web.render import Caller, caller, container, invalid, page
from huren.web.routes_supervision import call, problem_dicts

router = APIRouter(include_in_schema=False)

PAGE_ROLES = access.roles_for("federation.read")


def _minutes_param(text: str) -> float:
    text = text.strip()
    if not text:
        return SILENT_MINUTES
    try:
        value = float(text)
    except ValueError:
        raise invalid("silent_minutes", "number", f"静默阈值应为分钟数，而不是“{excerpt(text)}”") from None
    if not 1 <= value <= 60 * 24 * 30:
        raise invalid("silent_minutes", "range", "静默阈值应在 1 到 43200 分钟（30 天）之间")
    return value


@router.get("/ui/platforms")
async def platforms_page(request: Request, who: Annotated[Caller, Depends(caller)], silent_minutes: str = "") -> Response:
    who.require(PAGE_ROLES, "平台与同步页面")
    view = platform_view(container(request))
    form = {"silent_minutes": silent_minutes}
    try:
        n = _minutes_param(silent_minutes)
    except InvalidInput as exc:
        return page(request, who, "supervision/platforms.html", 422, form=form, tree=None, sync=None,
                    error=exc.text(), problems=problem_dicts(exc))
    sync = await call(view.sync, who.principal, n)
    tree = await call(view.tree, who.principal, sync["feeds"])
    form["silent_minutes"] = charts.number(n)
    own_only = access.scope(who.principal, "federation.read") == access.OWN
    return page(request, who, "supervision/platforms.html", form=form, tree=tree, sync=sync, own_only=own_only,
                duration=minutes, error="", problems=[])
