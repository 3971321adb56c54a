"""The study's report: E_hull distribution (the paper's Fig. 3), fractions under the thresholds, S.U.N. counts, and
the comparison with the paper and the baselines it quotes."""

from __future__ import annotations

import csv
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from pccd_flows.evaluation.metrics import match_groups, structural_validity
from pccd_flows.schemas.candidate import CandidateDoc

SUN_THRESHOLD = 0.1  # eV/atom: "stable" in S.U.N. (stable, unique, novel), as MatterGen counts it

# the paper's Fig. 3 / text: share of generated structures under 0.25 and 0.08 eV/atom (VASP PBE vs MP's hull)
PAPER_RESULTS = [
    {"method": "PCCD (paper, VASP PBE, 746 oxides)", "below_250meV": 0.6268, "below_80meV": 0.1635},
    {"method": "PGCGM (as quoted by the paper)", "below_250meV": None, "below_80meV": 0.053},
    {"method": "GAN, Kim et al. (as quoted)", "below_250meV": None, "below_80meV": 0.018},
    {"method": "iMatGen VAE (as quoted)", "below_250meV": None, "below_80meV": 0.0036},
]


class StudyReport(BaseModel):
    study: str
    n_structures: int = Field(description="Candidates that passed the initial screening.")
    n_judged: int = Field(description="Of those, relaxed and placed on the hull (fractions are over these).")
    fraction_ehull_below_250meV: float | None
    fraction_ehull_below_80meV: float | None
    fraction_ehull_below_0meV: float | None
    n_ehull_below_80meV: int
    n_relaxations_converged: int = Field(description="Judged candidates whose relaxation reached its fmax; the others "
                                                     "stopped at the step cap, their E_hull an upper bound.")
    n_relaxed_overlapping: int = Field(
        0, description="Judged candidates whose relaxed structure has atoms closer than 0.5 A: the force field "
                       "fused atoms that started too close; their E_hull is not a crystal's.")
    sun_count: int = Field(description="Relaxed structures with E_hull <= 0.1 eV/atom, unique among themselves and "
                                       "novel against MP (StructureMatcher), as MatterGen counts S.U.N.")
    sun_fraction: float | None
    sun_count_before_relaxation: int = Field(
        description="The same count judged on the generated structures (the prefilter's uniqueness and novelty), as "
                    "reported before 2026-11-26: two candidates that relax to one crystal count twice here.")
    n_stable_relaxed_duplicates: int = Field(
        0, description="Stable candidates whose relaxed structure matches a lower-energy one of the study.")
    n_stable_relaxed_to_known: int = Field(
        0, description="Stable candidates whose relaxed structure matches an MP crystal (with a novelty index).")
    sun_candidate_ids: list[str] = Field(default_factory=list, description="The S.U.N. candidates, lowest E_hull first.")
    novelty_source: str | None = Field(None, description="The known crystals the relaxed structures were matched "
                                                         "against; None: the prefilter's novelty was kept.")
    novel_fraction: float | None
    median_e_above_hull: float | None
    engine: str | None
    reference: str | None
    wall_seconds: float | None
    n_systems: int
    comparison: list[dict] = Field(default_factory=list)
    by_initial_min_distance: list[dict] = Field(
        default_factory=list, description="Judged candidates binned by their shortest interatomic distance as "
                                          "generated: how many, converged, and their fractions under 0.25/0.08.")


def judge_relaxed_novelty(docs: list[CandidateDoc], novelty_index,
                          progress: Callable[[int], None] | None = None) -> list[CandidateDoc]:
    """Novelty and uniqueness judged again on the relaxed structures, stored as ``relaxed_novelty``.

    Novel: no crystal of ``novelty_index`` (a :class:`~pccd_flows.evaluation.novelty.NoveltyIndex`) matches the
    relaxed structure. Unique: among the given candidates whose relaxed structures match one another, only the
    lowest in E_hull (then energy) is unique; the others name it in ``duplicate_of``. Candidates that were never
    relaxed are returned unchanged.
    """
    from pccd_flows.evaluation.novelty import relaxed_novelty

    relaxed = sorted((d for d in docs if d.relaxation is not None and d.relaxation.structure),
                     key=lambda d: (d.e_above_hull if d.e_above_hull is not None else float("inf"),
                                    d.relaxation.energy_per_atom if d.relaxation.energy_per_atom is not None
                                    else float("inf"), d.candidate_id))
    structures = [d.final_structure() for d in relaxed]
    first_of = {}
    for group in match_groups(structures):
        for index in group:
            first_of[index] = group[0]
    judged = {}
    for index, doc in enumerate(relaxed):
        head = first_of[index]
        novelty = relaxed_novelty(doc, novelty_index).model_copy(update={
            "unique": head == index, "duplicate_of": None if head == index else relaxed[head].candidate_id})
        judged[doc.candidate_id] = doc.model_copy(update={"relaxed_novelty": novelty})
        if progress:
            progress(1)
    return [judged.get(d.candidate_id, d) for d in docs]


def refresh_relaxed_novelty(docs: list[CandidateDoc], novelty_index, store=None,
                            progress: Callable[[int], None] | None = None) -> list[CandidateDoc]:
    """Judge (or re-judge, when the known-structure source changed) the relaxed novelty of a run's candidates and
    store it on each, so that queries and reports read one verdict."""
    source = str(novelty_index.source)
    relaxed = [d for d in docs if d.relaxation is not None and d.relaxation.structure]
    if relaxed and all(d.relaxed_novelty is not None and d.relaxed_novelty.source == source
                       and d.relaxed_novelty.unique is not None for d in relaxed):
        return docs
    docs = judge_relaxed_novelty(docs, novelty_index, progress)
    if store is not None:
        store.patch({d.candidate_id: {"relaxed_novelty": d.relaxed_novelty} for d in docs
                     if d.relaxed_novelty is not None})
    return docs


def stable_unique_novel(judged: list[CandidateDoc], novelty_index=None) -> tuple[list[CandidateDoc], int, int]:
    """S.U.N. on the relaxed structures: E_hull <= 0.1 eV/atom; novel, i.e. no MP crystal of the formula matches the
    relaxed structure (``novelty_index``: a :class:`~pccd_flows.evaluation.novelty.NoveltyIndex`; without one the
    prefilter's verdict on the generated structure stands); unique, i.e. of relaxed structures that match, only the
    lowest in energy counts. Returns the S.U.N. candidates (lowest E_hull first), the number of relaxed duplicates and
    the number relaxed onto MP crystals."""
    if judged and all(d.relaxed_novelty is not None and d.relaxed_novelty.unique is not None for d in judged):
        # the stored verdicts on the relaxed structures (judge_relaxed_novelty) decide
        stable = sorted((d for d in judged if d.e_above_hull <= SUN_THRESHOLD), key=lambda d: d.e_above_hull)
        novel = [(d, d.final_structure()) for d in stable if d.relaxed_novelty.novel]
        # a group's head has the lowest E_hull of its members, so a stable duplicate always has a stable head
        sun = [d for d, _ in novel if d.relaxed_novelty.unique]
        return sun, len(novel) - len(sun), len(stable) - len(novel)
    stable = sorted((d for d in judged if d.e_above_hull <= SUN_THRESHOLD
                     and (novelty_index is not None or d.prefilter.novel is not False)),
                    key=lambda d: d.e_above_hull)
    relaxed = [(d, d.final_structure()) for d in stable]
    novel = [(d, s) for d, s in relaxed if novelty_index is None or novelty_index.find_match(s) is None]
    # each group's first member is its lowest in energy, and groups come in the order of their first members
    groups = match_groups([s for _, s in novel])
    sun = [novel[group[0]][0] for group in groups]
    n_duplicates, n_known = len(novel) - len(groups), len(relaxed) - len(novel)
    return sun, n_duplicates, n_known


def study_report(docs: list[CandidateDoc], study: str, wall_seconds: float | None = None,
                 novelty_index=None) -> StudyReport:
    """``novelty_index`` (see :func:`stable_unique_novel`) judges the relaxed structures' novelty for S.U.N."""
    judged = [d for d in docs if d.e_above_hull is not None]
    e_hull = np.array([d.e_above_hull for d in judged])

    def fraction(mask_count: int, total: int) -> float | None:
        return round(mask_count / total, 4) if total else None

    sun, n_relaxed_duplicates, n_relaxed_to_known = stable_unique_novel(judged, novelty_index)
    sun_as_generated = [d for d in judged
                        if d.e_above_hull <= SUN_THRESHOLD and d.prefilter.unique and d.prefilter.novel]
    engines = sorted({d.stability.engine for d in judged})
    references = sorted({d.stability.reference for d in judged})
    report = StudyReport(
        study=study, n_structures=len(docs), n_judged=len(judged),
        fraction_ehull_below_250meV=fraction(int((e_hull <= 0.25).sum()), len(judged)),
        fraction_ehull_below_80meV=fraction(int((e_hull <= 0.08).sum()), len(judged)),
        fraction_ehull_below_0meV=fraction(int((e_hull <= 0.0).sum()), len(judged)),
        n_ehull_below_80meV=int((e_hull <= 0.08).sum()),
        n_relaxations_converged=sum(bool(d.relaxation.converged) for d in judged),
        n_relaxed_overlapping=sum(not structural_validity(d.final_structure()) for d in judged),
        sun_count=len(sun), sun_fraction=fraction(len(sun), len(judged)),
        sun_count_before_relaxation=len(sun_as_generated), n_stable_relaxed_duplicates=n_relaxed_duplicates,
        n_stable_relaxed_to_known=n_relaxed_to_known,
        sun_candidate_ids=[d.candidate_id for d in sun],
        novelty_source=novelty_index.source.name if novelty_index is not None else None,
        novel_fraction=fraction(sum(bool(d.prefilter.novel) for d in docs), len(docs)),
        median_e_above_hull=round(float(np.median(e_hull)), 4) if len(judged) else None,
        engine=",".join(engines) or None, reference=",".join(references) or None,
        wall_seconds=round(wall_seconds, 1) if wall_seconds is not None else None,
        n_systems=len({d.chemsys for d in docs}),
    )
    ours = {"method": f"pccd-flows ({report.engine}, {report.reference}, {report.n_judged} judged)",
            "below_250meV": report.fraction_ehull_below_250meV, "below_80meV": report.fraction_ehull_below_80meV}
    return report.model_copy(update={"comparison": [ours, *PAPER_RESULTS],
                                     "by_initial_min_distance": _by_initial_min_distance(judged)})


MIN_DISTANCE_BINS = (0.5, 1.0, 1.4, 1.7, None)  # A; the prefilter rejects anything under 0.5


def _by_initial_min_distance(judged: list[CandidateDoc]) -> list[dict]:
    """Where the generated geometry starts tells how the relaxation ends: atoms closer than ~1 A (a decoder that
    split one atom in two) rarely relax to anything near the hull."""
    shortest = np.array([_shortest_distance(d) for d in judged])
    rows = []
    for low, high in pairwise(MIN_DISTANCE_BINS):
        members = [d for d, x in zip(judged, shortest) if x >= low and (high is None or x < high)]
        e_hull = np.array([d.e_above_hull for d in members])
        rows.append({"min_distance_A": f"{low}-{high}" if high else f">={low}", "n": len(members),
                     "n_converged": sum(bool(d.relaxation.converged) for d in members),
                     "below_250meV": round(float((e_hull <= 0.25).mean()), 4) if members else None,
                     "below_80meV": round(float((e_hull <= 0.08).mean()), 4) if members else None})
    return rows


def _shortest_distance(doc: CandidateDoc) -> float:
    distances = doc.generated_structure().distance_matrix
    return float(distances[~np.eye(len(distances), dtype=bool)].min()) if len(distances) > 1 else np.inf


def write_figures(docs: list[CandidateDoc], report: StudyReport, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    e_hull = np.array([d.e_above_hull for d in docs if d.e_above_hull is not None])
    fig, ax = plt.subplots(figsize=(6.5, 4))
    if len(e_hull):
        clipped = np.clip(e_hull, -0.2, 1.5)
        ax.hist(clipped, bins=np.arange(-0.2, 1.55, 0.05), color="tab:blue", edgecolor="white")
    for threshold, colour in ((0.25, "tab:orange"), (0.08, "tab:red"), (0.0, "black")):
        ax.axvline(threshold, color=colour, linestyle="--", label=f"{threshold} eV/atom")
    ax.set_xlabel("E above hull (eV/atom, clipped to [-0.2, 1.5])")
    ax.set_ylabel("structures")
    ax.set_title(f"{report.study}: {report.n_judged} structures, {report.engine} vs {report.reference}\n"
                 f"<= 0.25: {_percent(report.fraction_ehull_below_250meV)}, "
                 f"<= 0.08: {_percent(report.fraction_ehull_below_80meV)} (paper: 62.68%, 16.35%)")
    ax.legend()
    path = out_dir / "ehull_distribution.png"
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return [path]


def write_stable_csv(docs: list[CandidateDoc], path: Path, threshold: float = 0.08,
                     sun_candidate_ids: list[str] | None = None) -> int:
    """The candidates within ``threshold`` of the hull, lowest first; ``novel`` is the prefilter's verdict on the
    generated structure, ``sun`` whether the candidate counts in the report's S.U.N. (relaxed: novel and unique)."""
    sun = set(sun_candidate_ids or ())
    rows = sorted((d for d in docs if d.e_above_hull is not None and d.e_above_hull <= threshold),
                  key=lambda d: d.e_above_hull)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["candidate_id", "formula", "chemsys", "nsites", "e_above_hull", "decomposition", "novel",
                         "matched_mp_id", "sun", "engine", "reference", "checkpoint_sha256", "seed", "index"])
        for d in rows:
            writer.writerow([d.candidate_id, d.formula, d.chemsys, d.nsites, round(d.e_above_hull, 4),
                             " + ".join(f"{f} {x:.3f}" for f, x in d.stability.decomposition.items()),
                             d.novel, d.matched_mp_id,
                             d.candidate_id in sun if sun_candidate_ids is not None else "",
                             d.stability.engine, d.stability.reference,
                             d.provenance.checkpoint_sha256[:12], d.provenance.seed, d.provenance.index])
    return len(rows)


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"
