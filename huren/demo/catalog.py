"""The packaged demo catalog (``huren/demo/data/catalog-demo.csv``): read by the generator, and
loaded onto the platform with a few local codes of the first demo institution mapped onto it.

Only the package's data file is read here; the platform is reached through the public import
methods of the catalog service it is handed (imported for type checking only, so that the
gateway's demo hospital, which uses the generator, loads nothing of the platform).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import TYPE_CHECKING

from huren.context import Principal

if TYPE_CHECKING:
    from huren.services.catalog import CatalogService

__all__ = ["DEMO_MAPPINGS", "CatalogItem", "import_packaged_demo", "load_catalog", "recognition"]

_FILE = "data/catalog-demo.csv"

#: Local codes of the first demo institution's LIS / PACS and the standard codes they stand for.
DEMO_MAPPINGS: tuple[tuple[str, str, str, str], ...] = (
    ("lab", "ALB", "白蛋白(溴甲酚绿法)", "250301002"),
    ("lab", "TP", "总蛋白(双缩脲法)", "250301001"),
    ("lab", "GLU", "空腹血糖", "250302001"),
    ("lab", "K", "钾", "250304001"),
    ("lab", "NA", "钠", "250304002"),
    ("lab", "CREA", "肌酐(酶法)", "250307002"),
    ("exam", "CT-HEAD", "颅脑CT平扫", "210300001"),
    ("exam", "DR-CHEST", "胸部正位(DR)", "210102015"),
    ("exam", "US-ABD", "腹部彩超(肝胆胰脾)", "220301001"),
)


@dataclass(frozen=True)
class CatalogItem:
    """One row of the packaged standard-item catalog."""

    kind: str  # "lab" or "exam"
    code: str
    name: str
    unit: str
    validity_days: int


@cache
def load_catalog() -> Mapping[str, CatalogItem]:
    """The packaged catalog keyed by code (read-only)."""
    text = (
        resources.files("huren.demo")
        .joinpath(_FILE)
        .read_text(encoding="utf-8")
    )
    items: dict[str, CatalogItem] = {}
    for row in csv.DictReader(io.StringIO(text)):
        items[row["code"]] = CatalogItem(
            kind=row["kind"],
            code=row["code"],
            name=row["name"],
            unit=row["unit"],
            validity_days=int(row["validity_days"]),
        )
    return MappingProxyType(items)


def recognition(kind: str, code: str) -> str:
    """The seed's ``recognition`` flag of an item: "1" if ``code`` is a catalog item of ``kind``."""
    item = load_catalog().get(code)
    return "1" if item is not None and item.kind == kind else "0"


def import_packaged_demo(catalog: CatalogService, principal: Principal, *, map_org: Principal | None = None) -> int:
    """Import the packaged demo catalog as ``principal`` (a supervisor) and, for ``map_org``, map
    a few of its local codes onto it (:data:`DEMO_MAPPINGS`). Returns the number of catalog items."""
    data = resources.files("huren.demo").joinpath(_FILE).read_bytes()
    catalog.import_file(data, "catalog-demo.csv", principal)
    if map_org is not None:
        catalog.upload_mappings(
            [{"kind": k, "local_code": lc, "local_name": ln, "std_code": sc} for k, lc, ln, sc in DEMO_MAPPINGS],
            map_org,
        )
    return catalog.count()
