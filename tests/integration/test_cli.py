"""The command line as a real process: db upgrade, org add / list, --data-dir, demo."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ORG = ["--code", "123456789", "--name", "测试医院", "--region", "650102", "--level", "3甲"]
CRED = ["--user", "his", "--password", "secret-pass"]


def _env(data_dir: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("HUREN_")}
    if data_dir is not None:
        env["HUREN_DATA_DIR"] = str(data_dir)
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def huren(*args: str, data_dir: Path | None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "huren.cli", *args],
        env=_env(data_dir),
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stdout


def _tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_db_upgrade_creates_sqlite_under_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    out = ok(huren("db", "upgrade", data_dir=data))
    db = data / "huren.db"
    assert db.is_file()
    assert "数据库已升级" in out and str(db.resolve()) in out
    tables = _tables(db)
    assert "alembic_version" in tables
    assert len(tables) > 3
    with sqlite3.connect(db) as conn:
        (version,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert version
    # a second upgrade is a no-op, not an error
    ok(huren("db", "upgrade", data_dir=data))
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(version,)]


@pytest.fixture(scope="module")
def org_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("cli") / "data"
    out = ok(huren("org", "add", *ORG, *CRED, data_dir=data))
    org = json.loads(out)
    assert org["code"] == "123456789"
    assert org["name"] == "测试医院"
    assert org["region_code"] == "650102"
    assert (org["level"], org["grade"]) == (3, "甲")
    return data


def _listed(out: str) -> list[list[str]]:
    return [line.split("\t") for line in out.splitlines() if line]


def test_org_list_shows_added_org(org_dir: Path) -> None:
    rows = _listed(ok(huren("org", "list", data_dir=org_dir)))
    assert len(rows) == 1
    code, region, level_name, name = rows[0]
    assert (code, region, name) == ("123456789", "650102", "测试医院")
    assert level_name.startswith("三级") and "甲" in level_name


@pytest.mark.parametrize(
    ("region", "found"), [("650100", True), ("650000", True), ("650102", True), ("650103", False), ("110000", False)]
)
def test_org_list_by_region(org_dir: Path, region: str, found: bool) -> None:
    rows = _listed(ok(huren("org", "list", "--region", region, data_dir=org_dir)))
    assert [r[0] for r in rows] == (["123456789"] if found else [])


def test_duplicate_org_add_fails_cleanly(org_dir: Path) -> None:
    proc = huren("org", "add", *ORG, "--user", "his2", "--password", "other-pass", data_dir=org_dir)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("错误：")
    assert "123456789" in proc.stderr and "已存在" in proc.stderr
    assert len(_listed(ok(huren("org", "list", data_dir=org_dir)))) == 1


def test_invalid_org_add_lists_problems(tmp_path: Path) -> None:
    proc = huren(
        "org", "add", "--code", "1", "--name", "x", "--region", "65", "--level", "3",
        "--user", "u", "--password", "short", data_dir=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0] == "错误：机构信息无效"
    assert any(line.strip().startswith("- region:") for line in lines)
    assert any(line.strip().startswith("- password:") for line in lines)


def test_data_dir_option_overrides_environment(tmp_path: Path) -> None:
    env_dir, opt_dir = tmp_path / "from-env", tmp_path / "from-option"
    ok(huren("org", "add", *ORG, *CRED, "--data-dir", str(opt_dir), data_dir=env_dir))
    assert (opt_dir / "huren.db").is_file()
    assert not env_dir.exists()
    assert [r[0] for r in _listed(ok(huren("org", "list", "--data-dir", str(opt_dir), data_dir=env_dir)))] == [
        "123456789"
    ]
    assert _listed(ok(huren("org", "list", data_dir=env_dir))) == []


def test_data_dir_env_relative_to_cwd(tmp_path: Path) -> None:
    ok(huren("db", "upgrade", data_dir=Path("rel-data"), cwd=tmp_path))
    assert (tmp_path / "rel-data" / "huren.db").is_file()


def test_demo_then_if_empty(tmp_path: Path) -> None:
    data = tmp_path / "data"
    summary: dict[str, Any] = json.loads(ok(huren("demo", "--reports", "30", data_dir=data)))
    assert summary["reports_registered"] == 30
    assert summary["rejected_examples"] == 2
    creds = summary["credentials"]
    # one system account per institution (hospitals and the supervisor), plus page accounts for each hospital
    system = [c for c in creds if c["role"] in ("hospital", "supervisor")]
    assert len(system) == summary["institutions"]
    assert {c["role"] for c in creds} == {"hospital", "supervisor", "admin", "doctor"}
    hospitals = {c["org_code"] for c in creds if c["role"] == "hospital"}
    assert {c["org_code"] for c in creds if c["role"] in ("admin", "doctor")} == hospitals
    assert all(c["org_code"] and c["username"] and len(c["password"]) >= 8 for c in creds)

    again = json.loads(ok(huren("demo", "--if-empty", "--reports", "30", data_dir=data)))
    assert again["skipped"] is True
    assert again["reason"]

    listed = _listed(ok(huren("org", "list", data_dir=data)))
    # nothing added twice; besides the accounts' institutions, those a real city's feed brought (issue 13)
    assert sorted(r[0] for r in listed) == sorted([c["org_code"] for c in system] + summary["synced_institutions"])


def test_account_commands_revoke_tokens(tmp_path: Path) -> None:
    """``huren user add | disable | enable | passwd`` and ``huren org disable | enable`` (§1.5):
    each change ends the tokens issued before it."""
    from huren.bootstrap import build
    from huren.errors import Unauthorized
    from huren.settings import Settings

    data = tmp_path / "data"
    ok(huren("org", "add", *ORG, *CRED, data_dir=data))
    who = ["--org", "123456789", "--username", "doc"]
    out = ok(huren("user", "add", *who, "--password", "doctor-pass", "--role", "doctor", data_dir=data))
    assert "新增用户 doc" in out
    c = build(Settings(data_dir=data))
    try:

        def token(password: str = "doctor-pass") -> str:
            return c.auth.issue("123456789", "doc", password).access_token

        def refused(tok: str) -> bool:
            c.auth.forget()  # as another process would see it: at most 60 s later
            try:
                c.auth.verify(tok)
            except Unauthorized:
                return True
            return False

        first = token()
        assert c.auth.verify(first).role == "doctor"
        assert "已停用" in ok(huren("user", "disable", *who, data_dir=data))
        assert refused(first)
        try:
            token()
        except Unauthorized as exc:
            assert "停用" in exc.message
        else:
            raise AssertionError("a disabled user logged in")
        ok(huren("user", "enable", *who, data_dir=data))
        assert refused(first)
        second = token()
        assert not refused(second)
        assert "密码已修改" in ok(huren("user", "passwd", *who, "--password", "another-pass", data_dir=data))
        assert refused(second)
        third = token("another-pass")
        assert "已停用" in ok(huren("org", "disable", "123456789", data_dir=data))
        assert refused(third)
        ok(huren("org", "enable", "123456789", data_dir=data))
        assert refused(third) and not refused(token("another-pass"))
    finally:
        c.close()
    proc = huren("user", "disable", "--org", "123456789", "--username", "nobody", data_dir=data)
    assert proc.returncode == 2 and "不存在" in proc.stderr and "Traceback" not in proc.stderr
    proc = huren("org", "disable", "999", data_dir=data)
    assert proc.returncode == 2 and "不存在" in proc.stderr
    proc = huren("user", "add", *who[:2], "--username", "x", "--password", "short", data_dir=data)
    assert proc.returncode == 2 and "密码至少8个字符" in proc.stderr
    proc = huren("user", "add", *who[:2], "--username", "x", "--password", "long-enough", "--role", "root", data_dir=data)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_serve_with_the_dicom_port_taken_says_so_in_chinese(tmp_path: Path) -> None:
    """A DICOM port another program holds: a Chinese line naming the port and the settings, exit 2,
    no traceback (and no web server started)."""
    import socket

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        env = _env(tmp_path / "data") | {"HUREN_DICOM_PORT": str(port), "HUREN_PORT": "1"}
        r = subprocess.run([sys.executable, "-m", "huren.cli", "serve"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert f"127.0.0.1:{port}" in r.stderr and "HUREN_DICOM_PORT" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
