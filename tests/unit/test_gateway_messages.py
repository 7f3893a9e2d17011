"""What the gateway tells its operator about a broken configuration is Simplified Chinese, names
the key as the config file spells it, and shows no Python repr or traceback — read in-process
(``load`` + ``build_sources``) and as ``huren gateway`` prints it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from huren.gateway.config import ConfigError, build_sources, load

ROOT = Path(__file__).resolve().parents[2]
CJK = re.compile(r"[\u4e00-\u9fff]")
#: what a Python repr or traceback leaves in a message: a stack, an exception class, a quoted
#: repr of a str / dict / list, an object's default repr
PYTHONIC = re.compile(r"Traceback|File \"|\b\w+(Error|Exception)\b|<\w[\w.]* object|\{'|\['|=\s*'")

PLATFORM = '[platform]\nbase_url = "http://127.0.0.1:1"\norg_code = "12345678901"\nusername = "his"\npassword = "p"\n'
DB = '[[source]]\nname = "lis"\ntype = "db"\nkind = "lab"\nurl = "sqlite:///his.db"\nmaster_view = "v_m"\nitem_view = "v_i"\n'

#: (the config file, what the message must name)
BROKEN = [
    ('[platform\nbase_url = "x"\n', "第 1 行"),
    ("[platform]\norg_code = \"1\"\n", "[platform] 缺少 base_url"),
    (PLATFORM.replace('password = "p"', 'password_env = "HUREN_NO_SUCH_VAR"'), "HUREN_NO_SUCH_VAR"),
    (PLATFORM + '[schedule]\ndaily_at = "3 o\'clock"\n', "[schedule] daily_at"),
    (PLATFORM + '[schedule]\ndaily_counts = "sometimes"\n', "[schedule] daily_counts"),
    (PLATFORM + "[outbox]\nbatch_size = 0\n", "[outbox] batch_size"),
    (PLATFORM + DB + DB, 'name = "lis"'),
    (PLATFORM + '[[source]]\nname = "lis"\n', "type"),
    (PLATFORM + '[[source]]\nname = "lis"\ntype = "ftp"\n', "sources[lis].type"),
    (PLATFORM + DB + "colums = {}\n", "colums"),
    (PLATFORM + DB.replace('"lab"', '"xray"'), "sources[lis].kind"),
    (PLATFORM + DB.replace("his.db", "no-such.db"), "sources[lis].url"),
    (PLATFORM + DB.replace("sqlite:///his.db", "mssql+nosuchdriver://u:secret@h/d"), "sources[lis].url"),
    (PLATFORM + DB + "batch_size = 5000\n", "sources[lis].batch_size"),
    (PLATFORM + DB + 'columns = { no_such_field = "X" }\n', "no_such_field"),
    (PLATFORM + '[[source]]\nname = "drop"\ntype = "folder"\npath = "in"\ndone_dir = "/tmp/done"\n', "sources[drop].done_dir"),
    (PLATFORM + '[[source]]\nname = "his"\ntype = "his"\nurl = "sqlite:///his.db"\norg_code = "1"\n', "patients"),
    (PLATFORM + '[[source]]\nname = "pacs"\ntype = "pacs_http"\nurl = "http://pacs"\ntypes = ["x"]\n', "sources[pacs].types"),
    (PLATFORM + '[[source]]\nname = "own"\nfactory = "no_such_module_x:make"\n', "factory"),
    (PLATFORM + '[mapping]\nsource = "excel"\n', "[mapping] source"),
    (PLATFORM + '[mapping]\nsource = "csv"\nrefresh = 5\n', "refresh"),
    (PLATFORM + '[mapping]\nsource = "csv"\n', "[mapping] 缺少 table"),
]


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "his.db").write_bytes(b"")  # an (empty) SQLite file: the db sources' url resolves
    (tmp_path / "in").mkdir(exist_ok=True)
    path = tmp_path / "gateway.toml"
    path.write_text(text, "utf-8")
    return path


def _error(path: Path) -> str:
    with pytest.raises(ConfigError) as refused:
        build_sources(load(path))
    return str(refused.value)


def assert_operator_message(message: str, names: str) -> None:
    assert CJK.search(message), message
    assert names in message, message
    assert not PYTHONIC.search(message), message
    assert "secret" not in message, message  # a connection string's password is never echoed


@pytest.mark.parametrize(("text", "names"), BROKEN, ids=[n for _, n in BROKEN])
def test_a_broken_configuration_is_explained_in_chinese_naming_the_key(tmp_path: Path, text: str, names: str) -> None:
    assert_operator_message(_error(_write(tmp_path, text)), names)


def test_a_missing_or_unreadable_config_file_is_explained_in_chinese(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as missing:
        load(tmp_path / "gateway.toml")
    assert_operator_message(str(missing.value), "文件不存在")
    (tmp_path / "gbk.toml").write_bytes('[platform]\nbase_url = "前置机"\n'.encode("gbk"))
    with pytest.raises(ConfigError) as gbk:
        load(tmp_path / "gbk.toml")
    assert_operator_message(str(gbk.value), "UTF-8")


@pytest.mark.parametrize(
    ("command", "text", "names"),
    [
        ("status", "[platform]\n", "[platform] 缺少 base_url"),
        ("run", PLATFORM + DB.replace('"lab"', '"xray"'), "sources[lis].kind"),
    ],
)
def test_the_gateway_command_prints_the_message_without_a_traceback(
    tmp_path: Path, command: str, text: str, names: str
) -> None:
    path = _write(tmp_path, text)
    proc = subprocess.run(
        [sys.executable, "-m", "huren.cli", "gateway", command, "--config", str(path)],
        capture_output=True, text=True, timeout=120, cwd=ROOT, env=os.environ | {"PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("错误：配置文件有误："), proc.stderr
    assert_operator_message(proc.stderr, names)
