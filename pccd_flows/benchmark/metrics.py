"""Metrics of `pccd benchmark`, MatterGen's definitions on the project's judge.

- stable: E_hull <= 0.1 eV/atom (``pccd_flows.study.report.SUN_THRESHOLD``); on hull: E_hull <= 0 (to 1e-6).
- S.U.N.: stable, novel (the relaxed structure matches no known crystal of its formula:
  :class:`pccd_flows.evaluation.novelty.NoveltyIndex`) and unique within the generator's run (of stable novel
  relaxed structures that match, StructureMatcher at ``MATCHER_TOLERANCES``, only the lowest in E_hull counts).
- RMSD to relaxed: MatterGen's ``rmsd_from_relaxation``: pymatgen's StructureMatcher RMS displacement between the
  generated and relaxed structure (ltol 0.5, stol 0.5, angle_tol 10, no volume scaling, supercells allowed),
  converted from pymatgen's (V/atom)^(1/3) units to A; a pair the matcher cannot align counts as the cap, 0.5 in those
  units.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence

import numpy as np
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure

from pccd_flows.benchmark.generators import error_kind
from pccd_flows.benchmark.schemas import BenchmarkCandidate, GeneratorMetrics
from pccd_flows.evaluation.metrics import match_groups
from pccd_flows.study.report import SUN_THRESHOLD

ON_HULL_TOLERANCE = 1e-6  # eV/atom: a phase on the hull computes to 0 up to rounding
RMSD_CAP = 0.5  # MatterGen's MAX_RMSD, in StructureMatcher's normalised units


def rmsd_to_relaxed(generated: Structure, relaxed: Structure) -> float:
    """MatterGen's RMSD (A) between a generated structure and its relaxed one.

    Parameters
    ----------
    generated, relaxed : Structure
        The same atoms before and after relaxation.

    Returns
    -------
    float
        pymatgen's RMS displacement (StructureMatcher with ltol 0.5, stol 0.5, angle_tol 10, ``scale=False``,
        ``attempt_supercell=True``) times (V/N)^(1/3) of the two lattices' average: A. A pair that cannot be aligned
        gets the cap (0.5 in the matcher's units), as in MatterGen.
    """
    matcher = StructureMatcher(ltol=0.5, stol=RMSD_CAP, angle_tol=10, primitive_cell=True, scale=False,
                               attempt_supercell=True, allow_subset=False)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            match = matcher.get_rms_dist(generated, relaxed)
    except (ValueError, ArithmeticError, np.linalg.LinAlgError):
        match = None
    average = Lattice.from_parameters(*((np.array(generated.lattice.parameters)
                                         + np.array(relaxed.lattice.parameters)) / 2))
    length = (average.volume / len(generated)) ** (1 / 3)
    return float((match[0] if match is not None else RMSD_CAP) * length)


def mark_sun(candidates: Sequence[BenchmarkCandidate], novelty_index) -> list[BenchmarkCandidate]:
    """Novelty of every judged candidate's relaxed structure, and S.U.N. (uniqueness among the stable novel ones of
    the same generator, the lowest E_hull of a matching group counting), set on copies.

    Parameters
    ----------
    candidates : sequence of BenchmarkCandidate
        One generator's run (all systems).
    novelty_index : NoveltyIndex
        Known crystals (``pccd_flows.evaluation.novelty``).
    """
    marked = []
    for candidate in candidates:
        if candidate.judged and candidate.e_above_hull is not None and candidate.relaxed_structure is not None:
            matched = novelty_index.find_match(candidate.final_structure())
            candidate = candidate.model_copy(update={"novel": matched is None, "matched_mp_id": matched})
        marked.append(candidate)
    stable_novel = sorted((i for i, c in enumerate(marked) if c.novel and c.e_above_hull <= SUN_THRESHOLD),
                          key=lambda i: (marked[i].e_above_hull, i))
    groups = match_groups([marked[i].final_structure() for i in stable_novel])
    heads = {stable_novel[group[0]] for group in groups}
    in_group = {stable_novel[i] for group in groups for i in group}
    for i, candidate in enumerate(marked):
        if i in in_group:
            marked[i] = candidate.model_copy(update={"unique": i in heads, "sun": i in heads})
        elif candidate.judged and candidate.e_above_hull is not None:
            marked[i] = candidate.model_copy(update={"sun": False})
    return marked


def generator_metrics(candidates: Sequence[BenchmarkCandidate]) -> GeneratorMetrics:
    """The metrics of one generator's candidates (S.U.N. as marked by :func:`mark_sun`); rates over all of them.

    Parameters
    ----------
    candidates : sequence of BenchmarkCandidate
        Every crystal asked of the generator, failures included.
    """
    n = len(candidates)
    judged = [c for c in candidates if c.e_above_hull is not None]
    e_hull = np.array([c.e_above_hull for c in judged])
    rmsds = [c.rmsd_to_relaxed for c in judged if c.rmsd_to_relaxed is not None]
    failures = Counter(error_kind(c.error) for c in candidates if c.e_above_hull is None and c.error)
    n_sun = sum(bool(c.sun) for c in candidates)
    cpu = float(sum(c.generation_cpu_seconds + c.relax_cpu_seconds for c in candidates))

    def rate(count: int) -> float | None:
        return round(count / n, 4) if n else None

    return GeneratorMetrics(
        n=n, n_generated=sum(c.structure is not None for c in candidates), n_judged=len(judged),
        n_failed=n - len(judged), failures=dict(sorted(failures.items())),
        stable_rate=rate(int((e_hull <= SUN_THRESHOLD).sum())),
        on_hull_rate=rate(int((e_hull <= ON_HULL_TOLERANCE).sum())),
        novel_rate=rate(sum(bool(c.novel) for c in candidates)),
        sun_rate=rate(n_sun), n_sun=n_sun,
        median_e_above_hull=round(float(np.median(e_hull)), 4) if len(judged) else None,
        rmsd_to_relaxed=round(float(np.mean(rmsds)), 4) if rmsds else None,
        cpu_seconds=round(cpu, 1), cpu_seconds_per_sun=round(cpu / n_sun, 1) if n_sun else None,
    )
