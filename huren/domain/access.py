"""Who may do and see what: the one access policy of the platform (roles × actions × scope).

Every REST operation, SOAP method and page reaches a service, and the service asks this table
before it does anything (before validating, before keeping a rejected submission). A role either
may not do an action at all, or may do it within a scope:

    OWN     its own institution only
    REGION  the institutions within its reach: its institution's platform subtree
            (``huren.domain.platforms``) and its administrative division, both where its
            institution has them (a city supervisor: its city; the regional one: all cities)
    ALL     every institution (mutual recognition: a doctor reads results from anywhere)

The roles (``huren.context.ROLES``):

    doctor      reads patients' results, makes decisions (accept / reject), quotes, reminders
    admin       the hospital's administrator: its own institution's writes, and reads
    hospital    the hospital's system account (HIS, LIS, PACS, the gateway): as admin
    supervisor  the health commission: reads and statistics within its region, the standard
                catalog; no clinical writes
    platform    a platform's system account (issue 13): a city platform syncing its
                institutions' changes to the region, the region reading a city's feed; writes
                for the institutions of its platform subtree, never as a clinician

docs/pages.md holds the same table in Chinese. Pure: imports only the ground floor,
``huren.domain.regions`` and ``huren.domain.platforms``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from huren.context import ROLES, Principal
from huren.domain.platforms import PlatformTree
from huren.domain.regions import in_division
from huren.errors import Forbidden, Problem


class Scope(Enum):
    OWN = "own"
    REGION = "region"
    ALL = "all"


OWN, REGION, ALL = Scope.OWN, Scope.REGION, Scope.ALL

ROLE_NAMES = {"doctor": "医生", "admin": "医院管理员", "hospital": "机构接入账号", "supervisor": "监管人员", "platform": "平台接入账号"}


@dataclass(frozen=True, slots=True)
class Action:
    name: str
    title: str  # what the action is, in the words of a refusal ("注册、作废报告")
    grants: Mapping[str, Scope]  # role → scope; a role not listed may not
    write: bool = False

    def roles(self) -> tuple[str, ...]:
        return tuple(r for r in ROLES if r in self.grants)


_CLINIC = ("doctor", "admin", "hospital")
_INSTITUTION = ("admin", "hospital")


def _grants(roles: tuple[str, ...], scope: Scope, **more: Scope) -> dict[str, Scope]:
    return {r: scope for r in roles} | more


ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (
        # -- writes -----------------------------------------------------------------------------
        Action("report.write", "注册、重新提交、作废检查检验报告或上传报告PDF、日报", _grants(_INSTITUTION, OWN, platform=REGION), write=True),
        Action("directory.write", "上传本机构的科室、人员、患者、仪器、质控目录或编码对照", _grants(_INSTITUTION, OWN), write=True),
        Action("decision.write", "提交互认结果、引用结果或提醒调阅记录", _grants(_CLINIC, OWN, platform=REGION), write=True),
        Action("catalog.write", "导入标准项目目录", {"supervisor": ALL}, write=True),
        Action("transport.write", "登记机构传输密钥", _grants(_INSTITUTION, OWN, supervisor=REGION), write=True),
        # -- reads of patient data --------------------------------------------------------------
        Action("report.read", "查看患者的检查检验报告", _grants(_CLINIC, ALL, supervisor=REGION)),
        Action("recognition.read", "互认查询（近期记录、可互认明细、开单互认校验、已采纳报告）", _grants(_CLINIC, ALL)),
        Action("history.read", "查看报告的历史版本", _grants(_CLINIC, OWN, supervisor=REGION)),
        Action("report.list", "按机构查询报告列表", _grants(_INSTITUTION, OWN, supervisor=REGION)),
        Action("directory.read", "查看机构的科室、人员、患者、仪器、质控目录", _grants(_CLINIC, OWN, supervisor=REGION)),
        Action("records.read", "查看互认结果与引用结果记录", _grants(_INSTITUTION, OWN, supervisor=REGION)),
        Action("quality.read", "查看质控数据（完整性、及时性、被拒提交）", _grants(_INSTITUTION, OWN, supervisor=REGION)),
        # -- other reads ----------------------------------------------------------------------------
        Action("statistics.read", "查看互认统计", _grants(_INSTITUTION, OWN, supervisor=REGION)),
        Action("transport.read", "查看机构传输密钥", _grants(_CLINIC, OWN, supervisor=REGION)),
        Action("codemap.read", "查看本机构的编码对照", _grants(ROLES, OWN)),
        Action("reference.read", "查询项目目录、机构、字典", _grants(ROLES, ALL)),
        Action("account.write", "修改本账号的密码", _grants(ROLES, OWN), write=True),
        Action("page_token.issue", "为本机构医生签发嵌入页面令牌", {"hospital": OWN}, write=True),
        # -- imaging (issue 12) -------------------------------------------------------------------
        Action("image.write", "推送、提交或删除本机构的影像", _grants(_INSTITUTION, OWN), write=True),
        Action("image.read", "查询、调阅患者的影像", _grants(_CLINIC, ALL, supervisor=REGION)),
        Action("image_key.issue", "申请影像调阅密钥、下载密钥或云胶片链接", _grants(_CLINIC, ALL, supervisor=REGION), write=True),
        Action("image_key.verify", "校验本机构影像的调阅密钥", _grants(_INSTITUTION, OWN)),
        Action("dicom_node.write", "登记 DICOM 节点（AE 标题）", {"admin": OWN, "supervisor": REGION}, write=True),
        # -- federation (issue 13) ------------------------------------------------------------------
        Action("feed.read", "读取平台的变更订阅", {"platform": REGION, "supervisor": REGION}),
        Action("feed.write", "向上级平台同步下级平台的变更（报告、作废、PDF、日报、互认记录、机构）", {"platform": REGION}, write=True),
        Action("federation.read", "查看平台树与同步状态", {"platform": REGION, "supervisor": REGION, "admin": OWN}),
    )
}

#: the kind of a kept rejected submission → the action that would have stored it
SUBMISSION_ACTION = {
    "lab": "report.write",
    "exam": "report.write",
    "void_lab": "report.write",
    "void_exam": "report.write",
    "pdf": "report.write",
    "daily": "report.write",
    "report": "report.write",
    "dept": "directory.write",
    "staff": "directory.write",
    "patient": "directory.write",
    "device": "directory.write",
    "qc_record": "directory.write",
    "accept": "decision.write",
    "quote": "decision.write",
    "reminder_log": "decision.write",
}


def action(name: str) -> Action:
    return ACTIONS[name]


def roles_for(name: str) -> tuple[str, ...]:
    """The roles that may do ``name`` at all (for menus and page gates)."""
    return ACTIONS[name].roles()


def scope(principal: Principal, name: str) -> Scope | None:
    """The scope within which ``principal`` may do ``name``; None when its role may not."""
    return ACTIONS[name].grants.get(principal.role)


def role_name(role: str) -> str:
    return ROLE_NAMES.get(role, role)


def require(principal: Principal, name: str) -> Scope:
    """The caller's scope for ``name``; Forbidden (naming the role and the action) otherwise."""
    a = ACTIONS[name]
    s = a.grants.get(principal.role)
    if s is None:
        allowed = "、".join(role_name(r) for r in a.roles()) or "无"
        raise Forbidden(
            f"当前账号（{role_name(principal.role)}）无权{a.title}",
            [Problem("role", "access", f"{a.title}需要以下角色之一：{allowed}")],
        )
    return s


@dataclass(frozen=True, slots=True)
class Place:
    """Where an institution stands: its administrative division and its platform ("" for none)."""

    region: str = ""
    platform: str = ""


def in_reach(principal: Principal, s: Scope, org_code: str, org: Place | None, own: Place | None, tree: PlatformTree | None = None) -> bool:
    """Whether an institution (``org_code``, at ``org``) is within scope ``s`` of the caller (whose
    institution is at ``own``).

    REGION is the intersection of what the caller's institution declares: its platform's subtree
    when it has a platform (in ``tree``), and its division when it has one. An institution with
    neither reaches only itself."""
    if s is ALL or org_code == principal.org_code:
        return True
    if s is OWN or org is None or own is None:
        return False
    by_platform = bool(own.platform and tree is not None and own.platform in tree)
    if not by_platform and not own.region:
        return False
    if by_platform and (tree is None or not org.platform or not tree.covers(own.platform, org.platform)):
        return False
    return not (own.region and not (org.region and in_division(org.region, own.region)))


def platform_in_reach(
    principal: Principal, s: Scope, code: str, own: Place | None, tree: PlatformTree, *, ancestors: bool = False
) -> bool:
    """Whether platform ``code`` (its feed, its status) is within scope ``s`` of the caller: in the
    subtree of the caller's institution's platform, and within its division when both have one.

    ``ancestors`` (a platform account reading a feed): also a platform above the caller's — a city
    mirrors its region's feed, the results of every other city, as its doctors may read them
    anywhere (``recognition.read`` is ALL); the city's own changes come without their content."""
    if s is ALL:
        return True
    if s is OWN or own is None or not own.platform or code not in tree:
        return False
    if ancestors and principal.role == "platform" and code in tree.path(own.platform):
        return True
    if not tree.covers(own.platform, code):
        return False
    p = tree.by_code[code]
    return not (own.region and p.division and not in_division(p.division, own.region))


def refuse(principal: Principal, s: Scope, name: str, org_code: str, field: str = "org_code") -> Forbidden:
    """The refusal for an institution outside the caller's scope."""
    verb = "提交或修改" if ACTIONS[name].write else "查看"
    if s is OWN:
        return Forbidden(
            f"只能{verb}本机构的数据",
            [Problem(field, "ownership", f"机构编码“{org_code}”不是当前登录机构“{principal.org_code}”")],
        )
    return Forbidden(
        f"只能{verb}本监管区域（本平台及其下级平台）内机构的数据",
        [Problem(field, "region", f"机构“{org_code}”不在当前账号的管辖区域内")],
    )
