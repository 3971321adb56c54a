"""The paper's three case studies (Ca2SnO4, Mg3CdO4, MgSc2O4, Fig. 4): the most stable PCCD candidate of each
composition, then the follow-up flow (GPAW relaxation and band structure, CHGNet phonons, DFT stability check)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from pccd_flows.progress import progress_bar
from pccd_flows.schemas.candidate import CandidateDoc
from pccd_flows.study.paper746 import (
    CASE_STUDY_SYSTEMS,
    StudySpec,
    generate_and_prefilter,
    load_study_model,
    relax_candidates,
)


def case_study_name(spec: StudySpec) -> str:
    """The study name under which the case studies store the crystals they generate themselves."""
    return f"{spec.name}-case-studies"


def best_candidate(candidates, spec: StudySpec, formula: str, extra_samples: int, log: Callable[[str], None]
                   ) -> CandidateDoc | None:
    """The lowest-E_hull screened candidate of this formula among the study's and ``extra_samples`` crystals PCCD
    generates for the composition (element channel fixed; seeded, stored under ``<study>-case-studies`` and
    generated once), relaxed and judged here where the study has not got there yet."""
    from pccd_flows.model.generate import GenerationConditions
    from pccd_flows.stability.hull import HullCalculator, judge
    from pccd_flows.stability.references import reference_set

    case_study = case_study_name(spec)
    pool = [d for d in candidates.find({"formula": formula, "prefilter.passed": True})
            if d.study in (spec.name, case_study)]
    composition = GenerationConditions(composition=formula).composition
    generated = candidates.count({"study": case_study, "provenance.conditions.composition": composition})
    if extra_samples > 0 and not generated:
        pool += generate_more(candidates, spec, formula, extra_samples, log)
    unrelaxed = [d for d in pool if d.relaxation is None]
    pool = [d for d in pool if d.relaxation is not None] + (
        relax_candidates(unrelaxed, spec.engine, spec.relax_steps, spec.relax_fmax) if unrelaxed else [])
    unjudged = [d for d in pool if d.e_above_hull is None and d.relaxation.energy_per_atom is not None]
    if unjudged:
        system = CASE_STUDY_SYSTEMS[formula]
        calculator = HullCalculator(reference_set(spec.reference, system.split("-"), spec.engine))
        pool = [d for d in pool if d not in unjudged] + judge(unjudged, calculator)
        candidates.upsert(pool)
    judged = [d for d in pool if d.e_above_hull is not None]
    return min(judged, key=lambda d: d.e_above_hull) if judged else None


def generate_more(candidates, spec: StudySpec, formula: str, extra_samples: int, log) -> list[CandidateDoc]:
    """Generate, prefilter and store ``extra_samples`` crystals of ``formula`` (element channel fixed) under
    ``<study>-case-studies``; the stored ones that passed the prefilter with that formula."""
    from pccd_flows.model.generate import network_evaluations

    system = CASE_STUDY_SYSTEMS[formula]
    log(f"{formula}: generating {extra_samples} crystals of that composition")
    loaded_model = load_study_model(spec)
    ticks = extra_samples * network_evaluations(spec.sampler_settings(), loaded_model[0].config.timesteps)
    with progress_bar(f"sampling {formula}", ticks) as advance:
        docs = generate_and_prefilter(candidates, spec, loaded_model, system, extra_samples, spec.seed + 7919,
                                      {"study": case_study_name(spec)}, composition=formula, progress=advance)
    candidates.upsert(docs)
    return [d for d in docs if d.prefilter.passed and d.formula == formula]


def run_case_studies(candidates, spec: StudySpec, out_dir: Path, follow_up_maker, extra_samples: int = 64,
                     formulas: list[str] | None = None, log: Callable[[str], None] = print) -> list[dict]:
    from pccd_flows.followup.local import run_follow_up_here
    from pccd_flows.stability.products import decomposition_products
    from pccd_flows.stability.references import ReferenceError

    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for formula in formulas or list(CASE_STUDY_SYSTEMS):
        doc = best_candidate(candidates, spec, formula, extra_samples, log)
        if doc is None:
            row = {"formula": formula, "error": f"no {formula} among the study's screened candidates nor among "
                                                f"{extra_samples} crystals generated for that composition"}
            (out_dir / f"{formula}.json").write_text(json.dumps(row, indent=2))
            rows.append(row)
            log(row["error"])
            continue
        products = None
        if not follow_up_maker.relaxes_with_force_field:
            try:
                products = decomposition_products(doc)
            except ReferenceError as exc:
                log(f"{formula}: no DFT stability check ({exc})")
        log(f"{formula}: {doc.candidate_id}, CHGNet E_hull {doc.e_above_hull:.3f} eV/atom; follow-up")
        flow = follow_up_maker.make(doc.final_structure(), doc.candidate_id, products)
        summary = run_follow_up_here(flow, doc.final_structure(), doc.candidate_id, out_dir) or {
            "formula": formula, "candidate_id": doc.candidate_id, "errors": ["the follow-up did not finish"]}
        summary.update(chgnet_e_above_hull=doc.e_above_hull, novel=doc.novel,
                       matched_mp_id=doc.prefilter.matched_mp_id, nsites=doc.nsites,
                       space_group=_space_group(doc.final_structure()), provenance=doc.provenance.model_dump(mode="json"),
                       settings=follow_up_maker.settings_record())
        (out_dir / f"{formula}.json").write_text(json.dumps(summary, indent=2))
        rows.append(summary)
    # a rerun for one formula keeps the others' results in the combined file
    combined = [json.loads(path.read_text()) for f in CASE_STUDY_SYSTEMS if (path := out_dir / f"{f}.json").is_file()]
    (out_dir / "case_studies.json").write_text(json.dumps(combined, indent=2))
    return rows


def _space_group(structure) -> str:
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    return SpacegroupAnalyzer(structure, symprec=0.1).get_space_group_symbol()
