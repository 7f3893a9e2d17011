"""The demo hospital's gateway configuration (``gateway.toml``, written by
``huren demo --hospital DIR``): the sources reading the demo hospital's database and drop folder,
the platform account, and ``[preload]`` with freshly generated tokens, so the local API and the
doctor's pages work out of the box."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from pathlib import Path

from huren.demo.generator import DemoOrg

DB = "his.db"
CONFIG = "gateway.toml"
#: RIS view column names (seed name → RIS name), mapped back in gateway.toml.
RIS_MASTER = {
    "report_form_no": "BGDH", "patient_id": "BRID", "event_no": "JZLSH", "last_update_dtime": "GXSJ",
    "id_no": "SFZH", "name": "XM", "data_status": "ZT",
}
RIS_ITEM = {
    "report_form_no": "BGDH", "event_no": "JZLSH", "exam_item_code": "XMDM", "exam_item_name": "XMMC", "last_update_dtime": "GXSJ",
}


def _toml(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def _table(d: Mapping[str, str]) -> str:
    return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in d.items()) + " }"


PRELOAD_LISTEN = "127.0.0.1:8765"


def new_token() -> str:
    """A random token for the local API or the pages (43 characters, 256 bits)."""
    return secrets.token_urlsafe(32)


def gateway_toml(directory: Path, org: DemoOrg, platform_url: str, *, api_token: str, page_token: str) -> str:
    d = directory.resolve()
    db = _toml(f"sqlite:///{(d / DB).as_posix()}")
    return f"""# 演示医院的前置机配置（由 `huren demo --hospital {d}` 生成）
# A gateway configuration for the demo hospital in this folder: run
#   huren gateway run --config {_toml(str(d / CONFIG))}
# while the platform runs at {platform_url} (`huren demo` then `huren serve`).

[platform]
base_url = {_toml(platform_url)}
org_code = {_toml(org.code)}            # {org.name}
username = {_toml(org.user)}
password = {_toml(org.password)}        # demo only: use password_env in a real hospital

[outbox]
path = {_toml(str(d / "gateway-outbox.db"))}

[schedule]
poll_every_seconds = 5

[mapping]
source = "platform"                     # local item codes (ALB, CT-HEAD …) through the platform's code map
cache = {_toml(str(d / "codemap.json"))}

[[source]]
name = "lis"                            # lab reports, PDF as a BLOB
type = "db"
url = {db}
kind = "lab"
master_view = "v_lab_report"
item_view = "v_lab_item"
pdf_column = "pdf"

[[source]]
name = "pacs"                           # exam reports, PDF as a file path
type = "db"
url = {db}
kind = "exam"
master_view = "v_exam_report"
item_view = "v_exam_item"
pdf_path_column = "pdf_path"
pdf_dir = {_toml(str(d))}

[[source]]
name = "ris"                            # exam reports from views with other column names
type = "db"
url = {db}
kind = "exam"
master_view = "v_ris_report"
item_view = "v_ris_item"
columns = {_table(RIS_MASTER)}
item_columns = {_table(RIS_ITEM)}
pdf_path_column = "BGLJ"
pdf_dir = {_toml(str(d))}

[[source]]
name = "his"                            # patients, departments, staff
type = "his"
url = {db}
org_code = {_toml(org.code)}
patients = {{ view = "v_patient" }}
depts = {{ view = "v_dept" }}
staff = {{ view = "v_staff" }}

[[source]]
name = "lis-drop"                       # PDF + JSON / XML pairs written by the LIS
type = "folder"
path = {_toml(str(d / "drop"))}
settle_seconds = 2

[preload]                               # the local API for the HIS and the doctor's pages
listen = {_toml(PRELOAD_LISTEN)}
path = {_toml(str(d / "preload.db"))}
# the HIS sends it with every call: Authorization: Bearer <api_token>
api_token = {_toml(api_token)}
# the HIS opens the pages with it: http://{PRELOAD_LISTEN}/ui/widget?id_type_code=01&id_no=…&token=<page_token>
page_token = {_toml(page_token)}
"""
