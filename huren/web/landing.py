"""The platform's first page (``/``): what a newcomer opening the printed address finds — the
way to the pages (login, the doctor's workstation, supervision, HIS embedding) and to the REST
documentation, the SOAP profile's WSDL and the health check. Served by the host application
(the pages themselves live under /ui)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from huren import __version__
from huren.web.render import TEMPLATES

router = APIRouter(include_in_schema=False)

#: (group, [(label, path, note)]) shown on the landing page
LINKS = (
    ("页面", (
        ("登录", "/ui/login", "医生、医院管理员、监管人员用平台账号登录"),
        ("患者互认查询", "/ui/doctor", "医生工作台：患者近期检查检验记录、开单互认校验"),
        ("互认统计", "/ui/stats", "监管与医院：提醒、采纳、不采纳、引用"),
        ("HIS 嵌入说明", "/ui/embed", "在 HIS 中嵌入互认图标、提醒窗口与互认确认页面"),
    )),
    ("接口", (
        ("REST 接口文档", "/docs", "OpenAPI（Swagger UI），先调用 POST /api/v1/auth/token 获取令牌"),
        ("REST 接口文档（ReDoc）", "/redoc", "同一份接口说明的另一种排版"),
        ("SOAP 接口 WSDL", "/Myhealth?wsdl", "新疆方案（种子文档 002）的 SOAP 接口"),
        ("健康检查", "/healthz", "平台是否在运行"),
    )),
)


@router.get("/")
async def landing(request: Request) -> Response:
    html = TEMPLATES.get_template("landing.html").render(request=request, who=None, menu=[], links=LINKS, version=__version__)
    return Response(html, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})
