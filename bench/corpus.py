"""A generated DICOM corpus for the imaging bench and tests: N patients, one study each.

Patient ``i`` has one CT study (even ``i``, from pydicom's bundled ``CT_small.dcm``) or MR study
(odd ``i``, ``MR_small.dcm``) of ``instances`` images in two series, made by
:func:`huren.demo.imaging.study_files` (the demo's generator): Chinese names, GB18030 for half the
patients and UTF-8 for the others, new UIDs, increasing positions. Deterministic for a given seed.

Run ``.venv/bin/python bench/corpus.py DIR [--patients 300] [--instances 10]`` to write one.
"""

from __future__ import annotations

import argparse
import random
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from huren.demo.imaging import PLANS, ModalityPlan, SeriesPlan, StudySpec, charset_for, derived_uid, study_files
from huren.demo.patients import make_patients


@dataclass(frozen=True)
class CorpusInstance:
    patient_id: str
    study_uid: str
    series_uid: str
    sop_uid: str
    path: Path
    size: int


@dataclass(frozen=True)
class Corpus:
    root: Path
    instances: list[CorpusInstance]

    @property
    def patient_ids(self) -> list[str]:
        return sorted({i.patient_id for i in self.instances})

    @property
    def total_bytes(self) -> int:
        return sum(i.size for i in self.instances)


def _plan(modality: str, instances: int) -> ModalityPlan:
    base = PLANS[modality]
    first = (instances + 1) // 2
    series = [SeriesPlan(base.series[0].description, first)]
    if instances - first:
        series.append(SeriesPlan(base.series[1].description, instances - first, flip=True))
    return ModalityPlan(base.modality, base.template, tuple(series))


def make_corpus(root: Path, patients: int = 300, instances: int = 10, seed: int = 12) -> Corpus:
    """Write the corpus under ``root`` (one directory per patient) and return its manifest."""
    rng = random.Random(seed)
    people = make_patients(rng, patients)
    start = datetime(2026, 10, 1, 8, 0, 0)
    plans = {m: _plan(m, instances) for m in ("CT", "MR")}
    out: list[CorpusInstance] = []
    root.mkdir(parents=True, exist_ok=True)
    for i, person in enumerate(people):
        modality = "CT" if i % 2 == 0 else "MR"
        pid = f"BP{seed:02d}{i:06d}"
        spec = StudySpec(
            study_uid=derived_uid("huren-bench", str(seed), pid),
            patient_id=pid,
            patient_name=person.name,
            sex={"1": "M", "2": "F"}.get(person.sex_code, "O"),
            birth_date=person.birth_date,
            accession=f"A{seed:02d}{i:08d}",
            study_time=start + timedelta(minutes=7 * i),
            report_class=modality,
            description="基准测试 " + ("胸部CT平扫" if modality == "CT" else "头颅MRI平扫"),
            institution="基准医院",
            referring="",
            body_part="CHEST" if modality == "CT" else "HEAD",
            charset=charset_for(pid),
        )
        d = root / pid
        d.mkdir(exist_ok=True)
        for series_uid, sop_uid, data in study_files(spec, plans[modality]):
            path = d / f"{sop_uid}.dcm"
            path.write_bytes(data)
            out.append(CorpusInstance(pid, spec.study_uid, series_uid, sop_uid, path, len(data)))
    return Corpus(root, out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--patients", type=int, default=300)
    ap.add_argument("--instances", type=int, default=10)
    ap.add_argument("--seed", type=int, default=12)
    a = ap.parse_args()
    c = make_corpus(a.dir, a.patients, a.instances, a.seed)
    print(f"{len(c.instances)} instances, {len(c.patient_ids)} patients, {c.total_bytes / 1e6:.1f} MB in {a.dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
