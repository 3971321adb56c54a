"""The paper's three case studies (Ca2SnO4, Mg3CdO4, MgSc2O4, Fig. 4): the most stable PCCD candidate of each
composition, then the follow-up flow (GPAW relaxation and band structure, CHGNet phonons, DFT stability check)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from pccd_flows.progress import progress_bar
from pccd_flows.schemas.candidate import CandidateDoc
from pccd_flows.stability.references import ReferenceError
from pccd_flows.study.paper746 import CASE_STUDY_SYSTEMS, StudySpec


def case_study_name(spec: StudySpec) -> str:
    """The study name under which the case studies store the crystals they generate themselves."""
    return f"{spec.name}-case-studies"


def best_candidate(candidates, spec: StudySpec, formula: str, extra_samples: int, log: Callable[[str], None]
                   ) -> CandidateDoc | None:
    """The lowest-E_hull screened candidate of this formula among the study's and ``extra_samples`` crystals PCCD
    generates for the composition (element channel fixed; seeded, stored under ``<study>-case-studies`` and
    generated once), relaxed and judged here, through the screening core, where the study has not got there yet."""
    from pccd_flows.model.generate import GenerationConditions
    from pccd_flows.pipeline import (
        judge_candidates,
        needs_judging,
        needs_relaxation,
        relax_candidates,
        relaxation_settings,
    )
    from pccd_flows.pipeline.judge import write_judgements

    case_study = case_study_name(spec)
    pool = [d for d in candidates.find({"formula": formula, "prefilter.passed": True})
            if d.study in (spec.name, case_study)]
    composition = GenerationConditions(composition=formula).composition
    generated = candidates.count({"study": case_study, "provenance.conditions.composition": composition})
    if extra_samples > 0 and not generated:
        pool += generate_more(candidates, spec, formula, extra_samples, log)
    settings = relaxation_settings(spec.engine, spec.relax_steps, spec.relax_fmax)
    todo = [d for d in pool if needs_relaxation(d, settings)]
    if todo:
        log(f"{formula}: relaxing {len(todo)} candidates")
        relaxed = {d.candidate_id: d for d in relax_candidates(todo, spec.engine, spec.relax_steps, spec.relax_fmax,
                                                                 store=candidates)}
        pool = [relaxed.get(d.candidate_id, d) for d in pool]
    unjudged = [d for d in pool if d.relaxation is not None and d.relaxation.energy_per_atom is not None
                and needs_judging(d, spec.reference, spec.confirm_with, confirm_from=spec.confirm_from)]
    if unjudged:
        result = judge_candidates(unjudged, spec.reference, spec.engine, confirm_with=spec.confirm_with,
                                  confirm_from=spec.confirm_from)
        if result.reference_errors:
            raise ReferenceError("; ".join(result.reference_errors.values()))
        write_judgements(candidates, result.candidates)
        judged = {d.candidate_id: d for d in result.candidates}
        pool = [judged.get(d.candidate_id, d) for d in pool]
    ranked = [d for d in pool if d.e_above_hull is not None]
    return min(ranked, key=lambda d: d.e_above_hull) if ranked else None


def generate_more(candidates, spec: StudySpec, formula: str, extra_samples: int, log) -> list[CandidateDoc]:
    """Generate, prefilter and store ``extra_samples`` crystals of ``formula`` (element channel fixed) under
    ``<study>-case-studies``; the stored ones that passed the prefilter with that formula."""
    from pccd_flows.model.generate import network_evaluations
    from pccd_flows.pipeline import generate_candidates, load_generator, prefilter_against_store

    system = CASE_STUDY_SYSTEMS[formula]
    log(f"{formula}: generating {extra_samples} crystals of that composition")
    model = load_generator(spec.checkpoint)[0]
    ticks = extra_samples * network_evaluations(spec.sampler_settings(), model.config.timesteps)
    with progress_bar(f"sampling {formula}", ticks) as advance:
        docs = generate_candidates(system, extra_samples, spec.seed + 7919, spec.sampler_settings(), spec.checkpoint,
                                   composition=formula, tags={"study": case_study_name(spec)}, progress=advance)
    docs = prefilter_against_store(docs, candidates, spec.prefilter_settings())
    candidates.upsert(docs)
    return [d for d in docs if d.prefilter.passed and d.formula == formula]


def run_case_studies(candidates, spec: StudySpec, out_dir: Path, follow_up_maker, extra_samples: int = 64,
                     formulas: list[str] | None = None, log: Callable[[str], None] = print) -> list[dict]:
    from pccd_flows.followup.local import run_follow_up_here
    from pccd_flows.stability.products import decomposition_products

    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for formula in formulas or list(CASE_STUDY_SYSTEMS):
        try:
            doc = best_candidate(candidates, spec, formula, extra_samples, log)
            error = None if doc is not None else (f"no {formula} among the study's screened candidates nor among "
                                                  f"{extra_samples} crystals generated for that composition")
        except ReferenceError as exc:  # recorded in its row; the other formulas go on
            doc, error = None, f"no hull for {formula}: {exc}"
        if doc is None:
            row = {"formula": formula, "error": error}
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
        log(f"{formula}: {doc.candidate_id}, E_hull {doc.e_above_hull:.3f} eV/atom ({doc.stability.engine}); follow-up")
        flow = follow_up_maker.make(doc.final_structure(), doc.candidate_id, products)
        summary = run_follow_up_here(flow, doc.final_structure(), doc.candidate_id, out_dir) or {
            "formula": formula, "candidate_id": doc.candidate_id, "errors": ["the follow-up did not finish"]}
        if summary.get("dft_e_above_hull") is None and doc.dft_check is not None and doc.dft_check.e_above_hull is not None:
            # the force-field follow-up has no DFT stability check of its own: `pccd validate dft --candidate-id`'s
            summary.update(dft_e_above_hull=doc.dft_check.e_above_hull, dft_check_protocol=doc.dft_check.protocol)
        summary.update(chgnet_e_above_hull=doc.own_stability.e_above_hull, e_above_hull=doc.e_above_hull,
                       judge=doc.stability.engine, novel=doc.novel,
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
