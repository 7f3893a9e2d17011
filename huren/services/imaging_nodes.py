"""DICOM nodes (AE titles): who may push studies (a calling AE → its institution, optionally bound
to hosts) and where a C-MOVE may send (``ImagingService.nodes``).

A calling AE title equal to an institution's code is that institution's, unless the institution
has configured a sending node of its own (then only its configured AE titles are). An AE title
not configured and not an institution's code is rejected at association (``None``).
"""

from __future__ import annotations

from typing import Any

from huren.context import Clock, Principal
from huren.domain import imaging
from huren.errors import InvalidInput, NotFound, Problem
from huren.services import access
from huren.store import directory
from huren.store import imaging_links as links
from huren.store.database import Database


def _hosts(hosts: str | list[str] | tuple[str, ...] | None) -> str | None:
    if hosts is None:
        return None
    items = hosts.split(",") if isinstance(hosts, str) else list(hosts)
    clean = [h.strip() for h in items if h.strip()]
    if any(len(h) > 253 or any(c.isspace() for c in h) for h in clean) or len(",".join(clean)) > 1024:
        msg = "主机地址列表无效（以逗号分隔的 IP 地址或主机名）"
        raise InvalidInput(msg, [Problem("hosts", "hosts", msg)])
    return ",".join(clean) or None


class NodeService:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def resolve_calling_ae(self, ae_title: str, host: str | None) -> str | None:
        """The institution a calling AE pushes for, or None (reject the association)."""
        ae = ae_title.strip()
        if not ae or len(ae) > imaging.AE_MAX:
            return None
        with self._db.read() as conn:
            node = links.get_node(conn, ae)
            if node is not None:
                if node["purpose"] == "pacs":
                    return None
                allowed = node["hosts"]
                if allowed and (host is None or host not in allowed.split(",")):
                    return None
                return str(node["org_code"])
            org = directory.get_org(conn, ae)
            if org is None or org.get("disabled") or links.org_has_node(conn, ae):
                return None
            return ae

    def add_node(
        self, ae_title: str, org_code: str, *, hosts: str | list[str] | tuple[str, ...] | None = None,
        port: int | None = None, purpose: str = "sender", principal: Principal | None = None,
    ) -> dict[str, Any]:
        """Configure (or reconfigure) an AE title for an institution. ``principal``: the caller,
        held to ``dicom_node.write`` (None: the operator at the command line)."""
        ae = imaging.check_ae(ae_title)
        if purpose not in imaging.NODE_PURPOSES:
            msg = f"用途必须是 {'、'.join(imaging.NODE_PURPOSES)} 之一"
            raise InvalidInput(msg, [Problem("purpose", "enum", msg)])
        if port is not None and not 0 < port < 65536:
            msg = "端口必须在 1–65535 之间"
            raise InvalidInput(msg, [Problem("port", "range", msg)])
        if purpose != "sender" and port is None:
            msg = "PACS 节点（C-MOVE 目的地）需要端口"
            raise InvalidInput(msg, [Problem("port", "required", msg)])
        row = {
            "ae_title": ae, "org_code": org_code, "hosts": _hosts(hosts), "port": port, "purpose": purpose,
            "created_at": self._clock.now(),
        }
        with self._db.write() as conn:
            if principal is not None:
                access.check_org(conn, principal, "dicom_node.write", org_code)
            if directory.get_org(conn, org_code) is None:
                raise NotFound(f"机构“{org_code}”不存在", [Problem("org_code", "not_found", f"没有机构编码为“{org_code}”的机构")])
            links.put_node(conn, row)
        return row

    def list_nodes(self) -> list[dict[str, Any]]:
        with self._db.read() as conn:
            return links.list_nodes(conn)

    def remove_node(self, ae_title: str, *, principal: Principal | None = None) -> bool:
        with self._db.write() as conn:
            node = links.get_node(conn, ae_title.strip())
            if node is None:
                return False
            if principal is not None:
                access.check_org(conn, principal, "dicom_node.write", str(node["org_code"]))
            return links.remove_node(conn, str(node["ae_title"]))

    def move_destination(self, ae_title: str) -> tuple[str, int] | None:
        """Where a C-MOVE to ``ae_title`` is sent: a node for ``pacs`` / ``both`` with a port (its first host)."""
        with self._db.read() as conn:
            node = links.get_node(conn, ae_title.strip())
        if node is None or node["purpose"] == "sender" or not node["port"] or not node["hosts"]:
            return None
        return str(node["hosts"]).split(",")[0], int(node["port"])
