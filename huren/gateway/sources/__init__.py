"""Hospital sources of the gateway, one module per kind, built from ``[[sources]]`` tables.

Every ``[[sources]]`` table has ``name`` (unique; it names the source in the outbox, ``gateway
status`` and the logs) and ``type``; the other keys depend on the type and are documented in its
module:

==============  =====================================  ===========================================
type            module                                 what it reads
==============  =====================================  ===========================================
``db``          :mod:`~.dbview`                        lab or exam report views (master + items)
                                                       over any SQLAlchemy URL, by last_update_dtime
``folder``      :mod:`~.folder`                        a drop folder of PDF + JSON / XML index pairs
``pacs_http``   :mod:`~.pacs_http`                     a PACS answering POST {startTime, endTime, type}
``his``         :mod:`~.his`                           HIS patients, departments and staff views
==============  =====================================  ===========================================

A short example (paths relative to the config file's folder)::

    [[sources]]
    name = "lis"
    type = "db"
    url = "sqlite:///his.db"
    kind = "lab"
    master_view = "v_lab_report"
    item_view = "v_lab_item"
    pdf_column = "pdf"

    [[sources]]
    name = "lis-drop"
    type = "folder"
    path = "drop"

No source ever writes to a hospital system. Reading errors raise :class:`SourceError` (poll
again later); configuration errors raise :class:`ConfigError` naming ``sources[<name>].<key>``.
The folder source also has ``done(record, ok, reason)``, to be called once the platform has
accepted (or refused) the record; the PACS source has ``position`` (how far its windows reached).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from huren.gateway.model import Source
from huren.gateway.sources.base import ConfigError, SourceError, report_key, void_filter

if TYPE_CHECKING:
    from huren.gateway.mapping import Mapper

__all__ = ["TYPES", "ConfigError", "SourceError", "build", "report_key", "void_filter"]

TYPES = ("db", "folder", "pacs_http", "his")


def _builders() -> dict[str, Callable[..., Source]]:
    from huren.gateway.sources import dbview, folder, his, pacs_http

    return {"db": dbview.build, "folder": folder.build, "pacs_http": pacs_http.build, "his": his.build}


def build(conf: Mapping[str, Any], *, base_dir: Path | None = None, mapper: Mapper | None = None) -> Source:
    """The source a ``[[sources]]`` table describes. ``base_dir`` resolves relative paths (the config
    file's folder); ``mapper`` (report sources only) makes local item / department codes standard
    before the records are yielded."""
    kind = conf.get("type")
    if kind not in TYPES:
        raise ConfigError(f"sources[{conf.get('name', '?')}].type 应为 {'、'.join(TYPES)} 之一，而不是 \"{kind}\"")
    if not isinstance(conf.get("name"), str) or not conf["name"].strip():
        raise ConfigError(f"有一个 type = \"{kind}\" 的 [[source]] 表缺少 name")
    return _builders()[kind](conf, base_dir=base_dir, mapper=mapper)
