"""The paper's screening study: PCCD oxides of alkaline-earth, rare-earth and transition metals, screened to a target
number, relaxed, and judged against the convex hull. Everything lives in the candidate store, so an interrupted
study resumes where it stopped.

The element pools follow the paper's text ("rare-earth, alkaline-earth and transition-metal elements") and its
examples (Ca2SnO4, Mg3CdO4, MgSc2O4): ternary A-B-O with A an alkaline earth and B a rare earth, a transition metal
or Sn, and binary oxides of all of them.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from pccd_flows.schemas.candidate import CandidateDoc
from pccd_flows.settings import DEFAULT_REPULSION_RATIO, DEFAULT_SAMPLER_ETA, DEFAULT_SAMPLER_STEPS

ALKALINE_EARTHS = ("Mg", "Ca", "Sr", "Ba")
RARE_EARTHS = ("Sc", "Y", "La", "Ce", "Nd", "Sm", "Gd")
TRANSITION_METALS = ("Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Zr", "Nb", "Mo", "Cd", "Hf", "Ta", "W")
POST_TRANSITION = ("Sn",)  # the paper's Ca2SnO4
CASE_STUDY_SYSTEMS = {"Ca2SnO4": "Ca-O-Sn", "Mg3CdO4": "Cd-Mg-O", "MgSc2O4": "Mg-O-Sc"}


def chemsys(*elements: str) -> str:
    return "-".join(sorted(elements))


class StudySpec(BaseModel):
    """What defines a study run; candidates carry its name, batches are seeded from (seed, batch index)."""

    name: str = "paper-746"
    target: int = Field(746, ge=1, description="Candidates that pass the initial screening, exactly.")
    seed: int = 0
    n_systems: int = Field(36, ge=1, description="Chemical systems (the case studies' first).")
    systems: list[str] | None = Field(None, description="Explicit chemical systems instead of the drawn ones.")
    per_batch: int = Field(16, ge=1, description="Structures generated per system and batch.")
    max_batches: int = Field(2000, ge=1, description="Give up (clearly) if the screening passes too few.")
    engine: str = "chgnet"
    reference: str = "mp-structures"
    relax_steps: int = Field(300, ge=1, description="Relaxation step cap (FIRE, cell and positions).")
    relax_fmax: float = Field(0.1, gt=0, description="Force convergence of the relaxations, eV/A.")
    relax_chunk: int = Field(8, ge=1, description="Structures per force-field call (the model loads once).")
    relax_workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1,
                               description="Relaxation processes, one torch thread each.")
    checkpoint: str | None = None
    sampler_steps: int = DEFAULT_SAMPLER_STEPS
    sampler_eta: float = DEFAULT_SAMPLER_ETA
    sampler_repulsion: float = DEFAULT_REPULSION_RATIO
    # The paper's "initial screening" is not described. Ours keeps what a chemist would relax: no atoms closer
    # than 0.6 of their covalent radii (fewer than 0.01% of MP's pairs are) and a charge balance with ICSD
    # oxidation states. In the first full run (docs/study), which screened for neither, the 50 of 746 candidates
    # that met both reached 58% <= 0.25 and 30% <= 0.08 eV/atom (all 746: 29.6% and 5.0%).
    min_covalent_ratio: float | None = Field(0.6, description="Reject atoms closer than this fraction of the sum "
                                                               "of their covalent radii.")
    require_icsd_oxidation_states: bool = True

    def sampler_settings(self):
        from pccd_flows.schemas.provenance import SamplerSettings

        return SamplerSettings(steps=self.sampler_steps, eta=self.sampler_eta, repulsion_ratio=self.sampler_repulsion)

    def prefilter_settings(self):
        """The study's screening (novelty judged, SMACT required, its covalent and ICSD requirements)."""
        from pccd_flows.pipeline import PrefilterSettings

        return PrefilterSettings(min_covalent_ratio=self.min_covalent_ratio,
                                 require_icsd_oxidation_states=self.require_icsd_oxidation_states)

    def chemical_systems(self) -> list[str]:
        if self.systems:
            return [chemsys(*s.replace(",", "-").split("-")) for s in self.systems]
        ternary = [chemsys(a, b, "O") for a in ALKALINE_EARTHS for b in (*RARE_EARTHS, *TRANSITION_METALS,
                                                                         *POST_TRANSITION)]
        binary = [chemsys(m, "O") for m in (*ALKALINE_EARTHS, *RARE_EARTHS, *TRANSITION_METALS, *POST_TRANSITION)]
        cases = list(CASE_STUDY_SYSTEMS.values())
        rest = [s for s in ternary + binary if s not in cases]
        rng = np.random.default_rng(self.seed)
        # three ternaries for each binary, as the paper's study is mostly ternary oxides
        n_rest = self.n_systems - len(cases)
        n_binary = max(n_rest // 4, 0)
        ternary_rest = [s for s in rest if s.count("-") == 2]
        binary_rest = [s for s in rest if s.count("-") == 1]
        chosen = list(rng.choice(ternary_rest, size=min(n_rest - n_binary, len(ternary_rest)), replace=False))
        chosen += list(rng.choice(binary_rest, size=min(n_binary, len(binary_rest)), replace=False))
        return (cases + sorted(str(s) for s in chosen))[: self.n_systems]


class StudyProgress(BaseModel):
    """The study's own record (next to the candidate store): phases done and wall time, summed over resumes."""

    spec: StudySpec
    batches_done: int = 0
    screened: int = 0
    relaxed: int = 0
    judged: int = 0
    wall_seconds: float = 0.0
    finished: bool = False
    submitted: list[str] = Field(default_factory=list, description="Candidates handed to a LaunchPad to relax.")


def progress_path(spec: StudySpec, store_dir: Path) -> Path:
    return Path(store_dir) / "studies" / f"{spec.name}.json"


# free to change between resumes: how the work is spread over processes, and where the checkpoint lies (the
# candidates' provenance pins the model itself, see _check_same_checkpoint)
EXECUTION_FIELDS = {"target", "relax_chunk", "relax_workers", "checkpoint"}
# how candidates are relaxed: free to change only while none has been relaxed
RELAX_FIELDS = {"relax_steps", "relax_fmax"}
# what a field meant in progress records written before it existed (the behaviour of that time)
FIELDS_ADDED_LATER = {"sampler_repulsion": 0.0}


def load_progress(spec: StudySpec, store_dir: Path, resume: bool) -> StudyProgress:
    path = progress_path(spec, store_dir)
    if resume and path.is_file():
        recorded = json.loads(path.read_text())
        recorded["spec"] = {**FIELDS_ADDED_LATER, **recorded["spec"]}
        previous = StudyProgress.model_validate(recorded)
        nothing_relaxed = previous.relaxed == 0 and not previous.submitted
        free = EXECUTION_FIELDS | (RELAX_FIELDS if nothing_relaxed else set())
        before = previous.spec.model_dump(exclude=free)
        changed = sorted(k for k, v in spec.model_dump(exclude=free).items() if before.get(k) != v)
        if changed:
            raise ValueError(f"{path} holds a study with other settings ({', '.join(changed)}); "
                             "use another --name or drop --resume")
        return previous.model_copy(update={"spec": spec, "finished": False})
    return StudyProgress(spec=spec)


def recorded_spec(name: str, store_dir: Path) -> StudySpec | None:
    """The settings study ``name`` ran with, from its progress record (None where it has none)."""
    path = progress_path(StudySpec(name=name), store_dir)
    if not path.is_file():
        return None
    recorded = json.loads(path.read_text())
    return StudySpec.model_validate({**FIELDS_ADDED_LATER, **recorded["spec"]})


def save_progress(progress: StudyProgress, store_dir: Path) -> None:
    path = progress_path(progress.spec, store_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(progress.model_dump_json(indent=2))


def run_study(spec: StudySpec, candidates, store_dir: Path, resume: bool = False,
              log: Callable[[str], None] = print, relax_here: bool = True) -> StudyProgress:
    """Screen to ``spec.target`` candidates, relax them, judge them; returns the progress record.

    Resuming regenerates no finished batch (batches are counted in the progress record and their candidates are
    in the store), relaxes only unrelaxed candidates, and judges only unjudged ones. ``relax_here=False`` stops
    after the screening (the relaxations then go to FireWorks workers through :func:`submit_relaxations`).
    """
    started = time.perf_counter()
    progress = load_progress(spec, store_dir, resume)
    if not resume and candidates.count({"study": spec.name}):
        raise ValueError(f"the store already holds study {spec.name!r}: add --resume to continue it")

    def checkpoint_progress(**update) -> None:
        nonlocal started
        now = time.perf_counter()
        update["wall_seconds"] = progress.wall_seconds + (now - started)
        started = now
        for key, value in update.items():
            setattr(progress, key, value)
        save_progress(progress, store_dir)

    _screen(spec, candidates, progress, checkpoint_progress, log)
    if not relax_here:
        checkpoint_progress()
        return progress
    _relax_and_judge(spec, candidates, checkpoint_progress, log)
    checkpoint_progress(finished=True)
    return progress


def relaxations_flow(spec: StudySpec, candidates, skip: set[str] = frozenset()):
    """The relaxations and hull placements still to do, as one jobflow Flow for FireWorks workers: per system, a
    relaxation job per candidate (atomate2's makers, fanned out by ``RelaxCandidatesMaker``) and one stability job,
    both writing to the study's candidate store; and the candidates it relaxes. ``None`` if nothing is left."""
    from jobflow import Flow

    from pccd_flows.makers.relax import RelaxCandidatesMaker, needs_relaxation, relaxation_settings
    from pccd_flows.makers.stability import StabilityMaker

    relax = RelaxCandidatesMaker(engine=spec.engine, steps=spec.relax_steps, fmax=spec.relax_fmax,
                                 store=candidates.store)
    settings = relaxation_settings(spec.engine, spec.relax_steps, spec.relax_fmax)
    stability = StabilityMaker(reference=spec.reference, engine=spec.engine, store=candidates.store)
    jobs, ids = [], []
    for system in spec.chemical_systems():
        todo = [d for d in study_candidates(candidates, spec.name, system=system)
                if d.candidate_id not in skip and needs_relaxation(d, settings)]
        if not todo:
            continue
        relaxed = relax.make(todo)
        relaxed.name = f"{spec.name} relax {system}"
        judged = stability.make(relaxed.output)
        judged.name = f"{spec.name} stability {system}"
        jobs += [relaxed, judged]
        ids += [d.candidate_id for d in todo]
    return (Flow(jobs, name=f"{spec.name} relaxations"), ids) if jobs else (None, [])


def submit_relaxations(spec: StudySpec, candidates, progress: StudyProgress, store_dir: Path, add_workflow
                       ) -> int:
    """Hand the study's remaining relaxations to a LaunchPad (``add_workflow(workflow)``); candidates handed over
    before are not handed over again (FireWorks' ``lpad rerun_fws`` reruns failed ones). Returns how many went."""
    from pccd_flows.stores.config import fireworks_workflow

    flow, ids = relaxations_flow(spec, candidates, skip=set(progress.submitted))
    if flow is None:
        return 0
    add_workflow(fireworks_workflow(flow))
    progress.submitted = sorted({*progress.submitted, *ids})
    save_progress(progress, store_dir)
    return len(ids)


def study_candidates(candidates, name: str, selected_only: bool = True, system: str | None = None
                     ) -> list[CandidateDoc]:
    criteria = {"study": name, **({"prefilter.passed": True} if selected_only else {}),
                **({"chemsys": system} if system else {})}
    return list(candidates.find(criteria))


def load_study_model(spec: StudySpec):
    """The study's model, codec and checkpoint payload (loaded once per process)."""
    from pccd_flows.pipeline import load_generator

    return load_generator(spec.checkpoint)


def generate_and_prefilter(candidates, spec: StudySpec, system: str, n: int, seed: int, tags: dict,
                           composition: str | None = None, progress: Callable[[int], None] | None = None
                           ) -> list[CandidateDoc]:
    """A seeded batch of one system (of one exact ``composition`` if given) from the study's checkpoint, judged by
    the prefilter against the store's earlier candidates of that system (not yet stored: the caller decides what to
    keep)."""
    from pccd_flows.pipeline import generate_candidates, prefilter_against_store

    docs = generate_candidates(system, n, seed, spec.sampler_settings(), spec.checkpoint, composition=composition,
                               tags=tags, progress=progress)
    return prefilter_against_store(docs, candidates, spec.prefilter_settings())


def _check_same_checkpoint(spec: StudySpec, candidates, checkpoint: dict) -> None:
    """A study's candidates all come from one checkpoint: resuming after the default checkpoint changed (a new
    release) must not mix two models in one distribution."""
    earlier = list(candidates.find({"study": spec.name}, limit=1))
    if earlier and earlier[0].provenance.checkpoint_sha256 != checkpoint["sha256"]:
        raise ValueError(
            f"study {spec.name!r} was generated with checkpoint {earlier[0].provenance.checkpoint_sha256[:12]}, "
            f"not {checkpoint['sha256'][:12]} ({checkpoint.get('path')}): resume it with --checkpoint pointing "
            "at that file, or start another --name")


def _screen(spec, candidates, progress, checkpoint_progress, log) -> None:
    def passed_in_store(**query) -> int:
        return candidates.count({"study": spec.name, "prefilter.passed": True, **query})

    passed = passed_in_store()
    if passed >= spec.target:
        checkpoint_progress(screened=passed)
        return
    systems = spec.chemical_systems()
    _check_same_checkpoint(spec, candidates, load_study_model(spec)[2])
    batch = progress.batches_done
    while passed < spec.target:
        if batch >= spec.max_batches:
            raise RuntimeError(f"{spec.max_batches} batches passed only {passed} of {spec.target} candidates")
        system = systems[batch % len(systems)]
        judged = generate_and_prefilter(candidates, spec, system, spec.per_batch,
                                        spec.seed * 1_000_003 + batch, {"study": spec.name, "study_batch": batch})
        # counted from the store, without this batch: an interruption after storing a batch but before recording
        # it regenerates the same candidates, which must not count twice
        room = spec.target - passed_in_store(study_batch={"$ne": batch})
        kept = []
        for doc in judged:  # exactly the target: candidates past it are kept, marked as over the target
            if doc.prefilter.passed and room <= 0:
                doc = doc.model_copy(update={"prefilter": doc.prefilter.model_copy(
                    update={"passed": False, "reject_reason": "beyond the study's target"})})
            elif doc.prefilter.passed:
                room -= 1
            kept.append(doc)
        candidates.upsert(kept)
        passed = passed_in_store()
        batch += 1
        checkpoint_progress(batches_done=batch, screened=passed)
        log(f"batch {batch} ({system}): {sum(d.prefilter.passed for d in kept)} of {len(kept)} passed; "
            f"{passed}/{spec.target} screened")


def relax_candidates(docs: list[CandidateDoc], engine: str, steps: int, fmax: float) -> list[CandidateDoc]:
    """One chunk on one loaded potential (:func:`pccd_flows.pipeline.relax_candidates`); failures per candidate."""
    from pccd_flows.pipeline import relax_candidates as relax_chunk

    return relax_chunk(docs, engine, steps, fmax)


def _one_torch_thread() -> None:
    """Worker initializer: on CPU, CHGNet's small graphs run as fast on one thread as on two (measured, docs/study),
    so one process per core relaxes twice as many structures."""
    import torch

    torch.set_num_threads(1)


def warm_references(reference: str, system: str, engine: str) -> str | None:
    """Compute (and cache in the reference store) a system's hull references; why not, if they cannot be made."""
    from pccd_flows.stability.references import ReferenceError, reference_set

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            reference_set(reference, system.split("-"), engine)
        except ReferenceError as exc:
            return str(exc)
    return None


def _relax_and_judge(spec: StudySpec, candidates, checkpoint_progress, log) -> None:
    """Relax every unrelaxed screened candidate in chunks spread over worker processes, and judge each system as
    soon as its relaxations and references are in. Results are stored chunk by chunk, so an interruption loses at
    most the chunks in flight."""
    from pccd_flows.pipeline import needs_relaxation, relaxation_settings

    selected = study_candidates(candidates, spec.name)
    settings = relaxation_settings(spec.engine, spec.relax_steps, spec.relax_fmax)
    done = sum(not needs_relaxation(d, settings) for d in selected)
    tasks: list[tuple[str, str, tuple]] = []  # (system, kind, arguments)
    for system in spec.chemical_systems():
        of_system = [d for d in selected if d.chemsys == system]
        todo = [d for d in of_system if needs_relaxation(d, settings)]
        unjudged = [d for d in of_system if d.relaxation is not None and d.relaxation.energy_per_atom is not None
                    and (d.stability is None or d.stability.reference != spec.reference)]
        if not todo and not unjudged:
            continue
        tasks.append((system, "references", (spec.reference, system, spec.engine)))
        tasks += [(system, "relax", (todo[i:i + spec.relax_chunk], spec.engine, spec.relax_steps, spec.relax_fmax))
                  for i in range(0, len(todo), spec.relax_chunk)]
    if not tasks:
        return
    remaining = {system: sum(t[0] == system for t in tasks) for system, _, _ in tasks}
    started, relaxed_now, total = time.perf_counter(), 0, len(selected)

    def finished(system: str, kind: str, result) -> None:
        nonlocal done, relaxed_now
        if kind == "relax":
            candidates.upsert(result)
            done += len(result)
            relaxed_now += len(result)
            checkpoint_progress(relaxed=done)
            rate = relaxed_now / (time.perf_counter() - started)
            log(f"relaxed {done}/{total} ({system}; {rate * 3600:.0f}/h, about {(total - done) / rate / 60:.0f} min "
                "left)")
        elif result:
            log(f"{system}: no hull references ({result})")
        remaining[system] -= 1
        if remaining[system] == 0:
            _judge(spec, candidates, checkpoint_progress, log, system)

    functions = {"references": warm_references, "relax": relax_candidates}
    if spec.relax_workers == 1:
        for system, kind, arguments in tasks:
            finished(system, kind, functions[kind](*arguments))
        return
    # spawn, not fork: the parent may hold torch and sqlite state that must not be copied into workers
    pool = ProcessPoolExecutor(spec.relax_workers, mp_context=get_context("spawn"), initializer=_one_torch_thread)
    try:
        pending: dict[Future, tuple[str, str]] = {pool.submit(functions[kind], *arguments): (system, kind)
                                                  for system, kind, arguments in tasks}
        while pending:
            completed, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in completed:
                system, kind = pending.pop(future)
                finished(system, kind, future.result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _judge(spec, candidates, checkpoint_progress, log, system: str) -> None:
    from pccd_flows.pipeline import judge_candidates
    from pccd_flows.pipeline.judge import write_judgements

    selected = study_candidates(candidates, spec.name)
    todo = [d for d in selected if d.chemsys == system and d.relaxation and d.relaxation.energy_per_atom is not None
            and (d.stability is None or d.stability.reference != spec.reference)]
    judged_count = len([d for d in selected if d.stability is not None and d.stability.reference == spec.reference])
    if not todo:
        return
    result = judge_candidates(todo, spec.reference, spec.engine)
    if result.reference_errors:
        log(f"{system}: no hull ({result.reference_errors[system]}); its {len(todo)} candidates stay unjudged")
        return
    write_judgements(candidates, result.candidates)
    judged_count += sum(d.stability is not None for d in result.candidates)
    checkpoint_progress(judged=judged_count)
    log(f"{system}: judged {len(result.candidates)}; {judged_count}/{len(selected)}")
