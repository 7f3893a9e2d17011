"""Institutions and their credentials (XC-P7 institutions by region; `huren org add`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from huren.context import ROLES, Clock, Principal
from huren.domain.limits import check_text, clean_text
from huren.domain.regions import division_prefix, is_org_region, level_name, parse_level
from huren.errors import Conflict, InvalidInput, NotFound, Problem
from huren.services import access
from huren.services.auth import PasswordHasher
from huren.store import directory, platforms
from huren.store.database import Database


def org_out(o: dict[str, Any]) -> dict[str, Any]:
    return {
        "code": o["code"],
        "name": o["name"],
        "region_code": o["region_code"],
        "level": o["level"],
        "grade": o["grade"],
        "level_name": level_name(o["level"], o["grade"]),
        "platform": o.get("platform") or "",
    }


MIN_PASSWORD = 8
MAX_PASSWORD = 256


def _password_problems(password: str | None, field: str = "password") -> list[Problem]:
    if not password or len(password) < MIN_PASSWORD:
        return [Problem(field, "min_length", f"密码至少{MIN_PASSWORD}个字符")]
    if len(password) > MAX_PASSWORD:
        return [Problem(field, "max_length", f"密码不超过{MAX_PASSWORD}个字符")]
    return []


class DirectoryService:
    """Institutions and their users: adding them, disabling and enabling them, passwords.

    Every change to a credential bumps its version, so tokens and sessions issued before are
    refused on use; ``on_change(org_code, username | None)`` tells this process's
    ``AuthService`` at once (other processes notice within its check interval)."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        hasher: PasswordHasher | None = None,
        on_change: Callable[[str, str | None], None] | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._hasher = hasher or PasswordHasher()
        self._on_change = on_change or (lambda org_code, username: None)

    def add_org(
        self,
        code: str,
        name: str,
        region_code: str,
        level: str | int,
        *,
        user: str | None = None,
        password: str | None = None,
        role: str = "hospital",
        platform: str | None = None,
    ) -> dict[str, Any]:
        """Add an institution (and its first user); it joins ``platform``, or when not given the
        local platform whose division covers ``region_code`` most closely (none in a deployment
        without platforms)."""
        problems = []
        if not code or len(code) > 128:
            problems.append(Problem("code", "required", "机构编码不能为空且不超过128个字符"))
        if not name:
            problems.append(Problem("name", "required", "机构名称不能为空"))
        if not is_org_region(region_code):
            problems.append(Problem("region", "format", "行政区划代码应为6位（或9/12位）数字"))
        if user is not None:
            check_text(user, "user", "用户名", problems, 128)
            problems += _password_problems(password)
        if role not in ROLES:
            problems.append(Problem("role", "dictionary", f"角色应为 {', '.join(ROLES)} 之一"))
        if problems:
            raise InvalidInput("机构信息无效", problems)
        lvl, grade = parse_level(str(level))
        now = self._clock.now()
        row = {"code": code, "name": name, "region_code": region_code, "level": lvl, "grade": grade, "platform": platform or "", "created_at": now}
        try:
            with self._db.write() as conn:
                tree = platforms.tree(conn)
                if platform and platform not in tree:
                    raise InvalidInput("机构信息无效", [Problem("platform", "not_found", f"平台“{platform}”不存在")])
                if platform is None:  # the local platform whose division covers the institution's, if any
                    row["platform"] = tree.for_division(region_code)
                directory.add_org(conn, row)
                if user is not None and password is not None:
                    directory.add_credential(conn, code, user, self._hasher.hash(password), role, now)
        except Conflict as exc:  # a unique key, translated by the store (huren.store.database)
            raise Conflict(f"机构编码“{code}”已存在") from exc
        return org_out(row)

    def add_credential(self, org_code: str, user: str, password: str, role: str = "hospital") -> None:
        if role not in ROLES:
            raise InvalidInput("角色无效", [Problem("role", "dictionary", f"角色应为 {', '.join(ROLES)} 之一")])
        if not user or len(user) > 128:
            raise InvalidInput("用户名无效", [Problem("username", "required", "用户名不能为空且不超过128个字符")])
        clean_text(user, "username", "用户名")
        if problems := _password_problems(password):
            raise InvalidInput("密码无效", problems)
        try:
            with self._db.write() as conn:
                if directory.get_org(conn, org_code) is None:
                    raise NotFound(f"机构“{org_code}”不存在")
                directory.add_credential(conn, org_code, user, self._hasher.hash(password), role, self._clock.now())
        except Conflict as exc:  # a unique key, translated by the store (huren.store.database)
            raise Conflict(f"用户“{user}”已存在") from exc

    def list_orgs(self, region: str | None = None) -> list[dict[str, Any]]:
        prefix = division_prefix(region) if region else None
        with self._db.read() as conn:
            return [org_out(o) for o in directory.list_orgs(conn, prefix)]

    def orgs_within(self, principal: Principal, action: str) -> list[dict[str, Any]]:
        """The institutions ``action`` reaches for ``principal`` (the access policy's scope: a
        supervisor's platform subtree and division), for a page's institution picker."""
        with self._db.read() as conn:
            scope = access.org_scope(conn, principal, action)
            rows = directory.list_orgs(conn)
        return [org_out(o) for o in rows if scope is None or o["code"] in scope]

    def get_org(self, code: str) -> dict[str, Any]:
        with self._db.read() as conn:
            o = directory.get_org(conn, code)
        if o is None:
            raise NotFound(f"机构“{code}”不存在")
        return org_out(o)

    # -- revocation: disabling, enabling, passwords ----------------------------------------
    def set_org_disabled(self, code: str, disabled: bool) -> dict[str, Any]:
        """Disable (or enable) an institution: its users cannot log in, and every token and
        session of theirs stops working."""
        with self._db.write() as conn:
            if not directory.set_org_disabled(conn, code, disabled, self._clock.now()):
                raise NotFound(f"机构“{code}”不存在")
            row = directory.get_org(conn, code)
        self._on_change(code, None)
        assert row is not None
        return org_out(row) | {"disabled": bool(row["disabled"])}

    def set_user_disabled(self, org_code: str, username: str, disabled: bool) -> None:
        self._update(org_code, username, disabled=disabled)

    def set_password(self, org_code: str, username: str, password: str) -> None:
        """A new password: every token and session issued before is refused from now on."""
        if problems := _password_problems(password):
            raise InvalidInput("密码无效", problems)
        self._update(org_code, username, password_hash=self._hasher.hash(password))

    def _update(self, org_code: str, username: str, **values: Any) -> None:
        with self._db.write() as conn:
            if not directory.update_credential(conn, org_code, username, self._clock.now(), **values):
                raise NotFound(f"机构“{org_code}”的用户“{username}”不存在")
        self._on_change(org_code, username)

    def list_users(self, org_code: str) -> list[dict[str, Any]]:
        with self._db.read() as conn:
            if directory.get_org(conn, org_code) is None:
                raise NotFound(f"机构“{org_code}”不存在")
            return directory.list_credentials(conn, org_code)
