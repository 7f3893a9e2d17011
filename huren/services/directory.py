"""Institutions and their credentials (XC-P7 institutions by region; `huren org add`)."""

from __future__ import annotations

from typing import Any

from huren.context import ROLES, Clock
from huren.domain.regions import division_prefix, is_org_region, level_name, parse_level
from huren.errors import Conflict, InvalidInput, NotFound, Problem
from huren.services.auth import hash_password
from huren.store import directory
from huren.store.database import Database


def org_out(o: dict[str, Any]) -> dict[str, Any]:
    return {
        "code": o["code"],
        "name": o["name"],
        "region_code": o["region_code"],
        "level": o["level"],
        "grade": o["grade"],
        "level_name": level_name(o["level"], o["grade"]),
    }


class DirectoryService:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

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
    ) -> dict[str, Any]:
        problems = []
        if not code or len(code) > 128:
            problems.append(Problem("code", "required", "机构编码不能为空且不超过128个字符"))
        if not name:
            problems.append(Problem("name", "required", "机构名称不能为空"))
        if not is_org_region(region_code):
            problems.append(Problem("region", "format", "行政区划代码应为6位（或9/12位）数字"))
        if user is not None and (not password or len(password) < 8):
            problems.append(Problem("password", "min_length", "密码至少8个字符"))
        if role not in ROLES:
            problems.append(Problem("role", "dictionary", f"角色应为 {', '.join(ROLES)} 之一"))
        if problems:
            raise InvalidInput("机构信息无效", problems)
        lvl, grade = parse_level(str(level))
        now = self._clock.now()
        row = {"code": code, "name": name, "region_code": region_code, "level": lvl, "grade": grade, "platform": "", "created_at": now}
        try:
            with self._db.write() as conn:
                directory.add_org(conn, row)
                if user is not None and password is not None:
                    directory.add_credential(conn, code, user, hash_password(password), role, now)
        except Conflict as exc:  # a unique key, translated by the store (huren.store.database)
            raise Conflict(f"机构编码“{code}”已存在") from exc
        return org_out(row)

    def add_credential(self, org_code: str, user: str, password: str, role: str = "hospital") -> None:
        if role not in ROLES:
            raise InvalidInput("角色无效", [Problem("role", "dictionary", f"角色应为 {', '.join(ROLES)} 之一")])
        if len(password) < 8:
            raise InvalidInput("密码太短", [Problem("password", "min_length", "密码至少8个字符")])
        try:
            with self._db.write() as conn:
                if directory.get_org(conn, org_code) is None:
                    raise NotFound(f"机构“{org_code}”不存在")
                directory.add_credential(conn, org_code, user, hash_password(password), role, self._clock.now())
        except Conflict as exc:  # a unique key, translated by the store (huren.store.database)
            raise Conflict(f"用户“{user}”已存在") from exc

    def list_orgs(self, region: str | None = None) -> list[dict[str, Any]]:
        prefix = division_prefix(region) if region else None
        with self._db.read() as conn:
            return [org_out(o) for o in directory.list_orgs(conn, prefix)]

    def get_org(self, code: str) -> dict[str, Any]:
        with self._db.read() as conn:
            o = directory.get_org(conn, code)
        if o is None:
            raise NotFound(f"机构“{code}”不存在")
        return org_out(o)
