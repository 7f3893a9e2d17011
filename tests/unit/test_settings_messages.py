"""A wrong ``HUREN_*`` setting is refused in Chinese naming the variable (never pydantic's English),
secrets are never repeated, and ``HUREN_DATA_DIR=""`` is refused instead of meaning the current
directory; ``huren`` itself prints them and exits 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from huren.errors import HurenError
from huren.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.upper().startswith("HUREN_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HUREN_DATA_DIR", str(tmp_path / "data"))
    return monkeypatch


def refused(env: pytest.MonkeyPatch, name: str, value: str) -> SettingsError:
    env.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        Settings()
    err = info.value
    assert isinstance(err, HurenError) and isinstance(err, ValueError)
    assert [p.field for p in err.problems] == [name]
    assert err.message == f"设置有误（{name}），请改正后再运行"
    assert str(err).startswith(f"{name} ")
    for text in (str(err), err.problems[0].message):
        assert not any(w in text for w in ("Input should", "value_error", "Value error", "validation error", "pydantic")), text
    return err


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("HUREN_PORT", "80x", "应为 1 到 65535 之间的整数，现为“80x”"),
        ("HUREN_PORT", "70000", "应为 1 到 65535 之间的整数，现为“70000”"),
        ("HUREN_PORT", "0", "应为 1 到 65535 之间的整数，现为“0”"),
        ("HUREN_DICOM_PORT", "65536", "应为 1 到 65535 之间的整数，现为“65536”"),
        ("HUREN_WORKERS", "many", "应为 1 到 64 之间的整数，现为“many”"),
        ("HUREN_OVERVIEW_RATE_RED", "120", "应为 0 到 100 之间的数，现为“120”"),
        ("HUREN_OVERVIEW_SILENT_HOURS", "0", "应为数（> 0，≤ 8784），现为“0”"),
        ("HUREN_READ_RATE_PER_MINUTE", "-1", "应为整数（≥ 0），现为“-1”"),
        ("HUREN_DEMO", "maybe", "应为 true 或 false（也可写 1/0、yes/no、on/off），现为“maybe”"),
    ],
)
def test_a_bad_number_or_flag_names_the_variable(clean_env: pytest.MonkeyPatch, name: str, value: str, reason: str) -> None:
    err = refused(clean_env, name, value)
    assert err.problems[0].message.startswith(reason)
    assert str(err).startswith(f"{name} {reason}")


@pytest.mark.parametrize("value", ["A\\B", "ABCDEFGHIJKLMNOPQ", "   ", "", "ÄET"])
def test_a_bad_dicom_aet(clean_env: pytest.MonkeyPatch, value: str) -> None:
    err = refused(clean_env, "HUREN_DICOM_AET", value)
    assert err.problems[0].message == (
        f"应为 1 到 16 个可打印 ASCII 字符（不含反斜杠，不能全是空格），例如 HUREN，现为“{value}”"
    )


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("HUREN_ORTHANC_URL", "ftp://pacs:8042", "应为 http(s) 地址，例如 http://pacs:8042"),
        ("HUREN_ORTHANC_URL", "pacs:8042", "应为 http(s) 地址"),
        ("HUREN_ORTHANC_URL", "http://pacs:99999", "中的端口无效"),
        ("HUREN_ORTHANC_URL", "http://orthanc:secret@pacs:8042", "不应写用户名或密码（地址会出现在日志里）：请用 HUREN_ORTHANC_USERNAME 与 HUREN_ORTHANC_PASSWORD"),
        ("HUREN_IMAGING_FALLBACK_URL", "https://x.org/dicom-web?x=1", "应为 http(s) 地址，例如 https://pacs.example.org/dicom-web"),
        ("HUREN_PUBLIC_BASE_URL", "huren.example.gov.cn", "应为 http(s) 地址，例如 https://huren.example.gov.cn"),
        ("HUREN_HIS_ORIGINS", "https://his.example.org/path", "应为以空格分隔的来源"),
        ("HUREN_FRAME_ANCESTORS", "'self'; script-src *", "应为以空格分隔的 CSP 来源"),
        ("HUREN_DATABASE_URL", "not a url", "不是有效的数据库 URL"),
        ("HUREN_TIMEZONE", "Mars/Olympus", "应为 IANA 时区名，例如 Asia/Shanghai，现为“Mars/Olympus”"),
        ("HUREN_PASSWORD_HASH_N", "1000", "应为 2 的幂（例如 16384），现为“1000”"),
    ],
)
def test_a_bad_address_or_text_names_the_variable(clean_env: pytest.MonkeyPatch, name: str, value: str, says: str) -> None:
    err = refused(clean_env, name, value)
    assert says in err.problems[0].message and says in str(err)


def test_an_unknown_choice_lists_the_choices(clean_env: pytest.MonkeyPatch) -> None:
    err = refused(clean_env, "HUREN_IMAGING_ARCHIVE", "s3")
    assert err.problems[0].message == "应为 local、orthanc 之一，现为“s3”"
    clean_env.delenv("HUREN_IMAGING_ARCHIVE")
    err = refused(clean_env, "HUREN_SM2_CIPHER_ORDER", "C2C1C3")
    assert err.problems[0].message == "应为 C1C3C2、C1C2C3 之一，现为“C2C1C3”"


def test_orthanc_without_its_url(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("HUREN_IMAGING_ARCHIVE", "orthanc")
    with pytest.raises(SettingsError) as info:
        Settings()
    assert [p.field for p in info.value.problems] == ["HUREN_ORTHANC_URL"]
    assert str(info.value) == "HUREN_IMAGING_ARCHIVE=orthanc 时须设置 HUREN_ORTHANC_URL（Orthanc 的 HTTP 地址，例如 http://pacs:8042）"
    clean_env.setenv("HUREN_ORTHANC_URL", "http://127.0.0.1:8042")
    assert Settings().orthanc_url == "http://127.0.0.1:8042"


def test_secrets_are_never_repeated(clean_env: pytest.MonkeyPatch) -> None:
    err = refused(clean_env, "HUREN_SECRET_KEY", "hunter2-short")
    assert "hunter2" not in str(err) and "hunter2" not in err.problems[0].message
    assert err.problems[0].message.startswith("至少应有 32 个字符")
    clean_env.delenv("HUREN_SECRET_KEY")
    err = refused(clean_env, "HUREN_DATABASE_URL", "postgresql+psycopg://u:pa ss@:/")
    assert "pa ss" not in str(err)
    clean_env.delenv("HUREN_DATABASE_URL")
    err = refused(clean_env, "HUREN_ORTHANC_TIMEOUT_SECONDS", "0")
    assert "现为“0”" in str(err)  # not a secret: shown


def test_several_bad_settings_are_all_named(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("HUREN_PORT", "x")
    clean_env.setenv("HUREN_DICOM_AET", "A\\B")
    clean_env.setenv("HUREN_TIMEZONE", "Nowhere")
    with pytest.raises(SettingsError) as info:
        Settings()
    # a field's type error stops pydantic before the cross-field checks: the port first, then the rest
    assert [p.field for p in info.value.problems] == ["HUREN_PORT"]
    clean_env.setenv("HUREN_PORT", "8000")
    with pytest.raises(SettingsError) as info:
        Settings()
    assert [p.field for p in info.value.problems] == ["HUREN_DICOM_AET", "HUREN_TIMEZONE"]
    assert info.value.message == "设置有误（HUREN_DICOM_AET、HUREN_TIMEZONE），请改正后再运行"
    assert str(info.value).count("；") == 1


def test_an_empty_data_dir_is_not_the_current_directory(clean_env: pytest.MonkeyPatch) -> None:
    for value in ("", "   "):
        err = refused(clean_env, "HUREN_DATA_DIR", value)
        assert err.problems[0].message.startswith("已设置但为空：请给出数据目录的路径")
        assert "空值不会被当作当前目录" in str(err)
    clean_env.delenv("HUREN_DATA_DIR")
    assert Settings().data_dir == Path("data")  # unset: the documented default


def test_good_settings_still_pass(clean_env: pytest.MonkeyPatch) -> None:
    for name, value in (("HUREN_PORT", "8443"), ("HUREN_DICOM_AET", " PACSGW "), ("HUREN_TIMEZONE", "Asia/Urumqi"),
                        ("HUREN_IMAGING_FALLBACK_URL", "https://pacs.example.org/dicom-web"), ("HUREN_DEMO", "yes")):
        clean_env.setenv(name, value)
    s = Settings()
    assert (s.port, s.dicom_aet, s.timezone, s.demo) == (8443, "PACSGW", "Asia/Urumqi", True)


def test_the_cli_prints_the_message_and_exits_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("HUREN_")}
    env |= {"HUREN_DATA_DIR": "", "HUREN_PORT": "80x", "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"}
    r = subprocess.run([sys.executable, "-m", "huren.cli", "serve"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert r.stderr.splitlines()[0] == "错误：设置有误（HUREN_DATA_DIR、HUREN_PORT），请改正后再运行"
    assert "  - HUREN_PORT: 应为 1 到 65535 之间的整数，现为“80x”" in r.stderr
    assert "  - HUREN_DATA_DIR: 已设置但为空" in r.stderr and "Traceback" not in r.stderr
    assert list(tmp_path.iterdir()) == []  # nothing created in the current directory
