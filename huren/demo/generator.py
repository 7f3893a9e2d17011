"""Deterministic demo data for the report-sync interfaces of seed 002 §1.2.2: the generator's
public API, gathered from the modules of one concept each that make it up.

Everything is pure: the only source of randomness is the ``random.Random`` passed in (plus
fixed, hash-derived per-institution rosters and per-visit details, so the same patient seen at
the same institution on the same day gets the same visit number, department and ordering
doctor). The only I/O is reading the packaged item catalog (``huren/demo/data/catalog-demo.csv``).

Payload values are strings exactly as they would appear as XML attributes: times
``YYYY-MM-DD HH:MM:SS``, dates ``YYYY-MM-DD``. Field names are those of the seed's tables
(``labmaster``, ``lab_subitem``, ``exammaster``, ``exam_subitem``, ``lab_exam_report``).

==================  ==================================================================
module              what
==================  ==================================================================
``institutions``    the region's eight institutions (:class:`DemoOrg`)
``names``           people's names (Han, Hui, Uyghur, Kazakh)
``patients``        patients with valid ID numbers (:class:`DemoPatient`)
``profiles``        each institution's departments, staff and devices
``visits``          the visit behind a report (number, department, doctor) and its priority
``catalog``         the packaged item catalog (and its loading onto the platform)
``lab_panels``      lab panels: items, reference ranges, derived values
``lab_reports``     ``labmaster`` + ``lab_subitem`` payloads
``exam_templates``  exam templates: findings, conclusions, cases
``exam_reports``    ``exammaster`` + ``exam_subitem`` payloads
``daily``           ``lab_exam_report`` daily counts
``values``          value formats and the stable hash fixed details derive from
==================  ==================================================================
"""

from __future__ import annotations

from huren.demo.catalog import CatalogItem, load_catalog
from huren.demo.daily import make_daily_counts
from huren.demo.exam_reports import make_exam_report
from huren.demo.institutions import DemoOrg, demo_orgs
from huren.demo.lab_reports import make_lab_report
from huren.demo.patients import DemoPatient, make_patients

__all__ = [
    "CatalogItem",
    "DemoOrg",
    "DemoPatient",
    "demo_orgs",
    "load_catalog",
    "make_daily_counts",
    "make_exam_report",
    "make_lab_report",
    "make_patients",
]
