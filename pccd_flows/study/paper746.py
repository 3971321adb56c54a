"""The paper's screening study: PCCD oxides of alkaline-earth, rare-earth and transition metals, screened to a target
number, relaxed, and judged against the convex hull.

The study is a jobflow Flow of the screening Makers (:class:`StudyFlowMaker`): a screening job generates and
prefilters seeded batches until enough new candidates passed, then adds their relaxations (one job per chunk) with a
stability job each, and the next screening job, until exactly the target passed. It runs wherever a flow runs: here
(:func:`pccd_flows.pipeline.executors.run_flow`, in this process or over N worker processes on a private embedded
LaunchPad) or on a user's LaunchPad (:func:`submit_study`). Everything lives in the candidate store, the one record
of what is done: a resumed study is a new flow made from it, which redoes nothing finished.

The element pools follow the paper's text ("rare-earth, alkaline-earth and transition-metal elements") and its
examples (Ca2SnO4, Mg3CdO4, MgSc2O4): ternary A-B-O with A an alkaline earth and B a rare earth, a transition metal
or Sn, and binary oxides of all of them.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from jobflow import Flow, Maker, Response, job
from maggma.core import Store
from pydantic import BaseModel, Field

from pccd_flows.makers.generate import GenerateCandidatesMaker
from pccd_flows.makers.prefilter import PrefilterMaker
from pccd_flows.makers.relax import GENERATE_CATEGORY, RelaxCandidatesMaker
from pccd_flows.makers.stability import StabilityMaker
from pccd_flows.schemas.candidate import STUDY_NAME, CandidateDoc
from pccd_flows.settings import DEFAULT_REPULSION_RATIO, DEFAULT_SAMPLER_ETA, DEFAULT_SAMPLER_STEPS

logger = logging.getLogger(__name__)

ALKALINE_EARTHS = ("Mg", "Ca", "Sr", "Ba")
RARE_EARTHS = ("Sc", "Y", "La", "Ce", "Nd", "Sm", "Gd")
TRANSITION_METALS = ("Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Zr", "Nb", "Mo", "Cd", "Hf", "Ta", "W")
POST_TRANSITION = ("Sn",)  # the paper's Ca2SnO4
CASE_STUDY_SYSTEMS = {"Ca2SnO4": "Ca-O-Sn", "Mg3CdO4": "Cd-Mg-O", "MgSc2O4": "Mg-O-Sc"}


def _settings():
    from pccd_flows.settings import get_settings

    return get_settings()


def chemsys(*elements: str) -> str:
    return "-".join(sorted(elements))


class StudySpec(BaseModel):
    """What defines a study run; candidates carry its name, batches are seeded from (seed, batch index)."""

    name: str = Field("paper-746", pattern=STUDY_NAME,
                      description="Also names its files in the store directory: letters, digits, . _ -.")
    target: int = Field(746, ge=1, description="Candidates that pass the initial screening, exactly.")
    seed: int = 0
    n_systems: int = Field(36, ge=1, description="Chemical systems (the case studies' first).")
    systems: list[str] | None = Field(None, description="Explicit chemical systems instead of the drawn ones.")
    per_batch: int = Field(16, ge=1, description="Structures generated per system and batch.")
    max_batches: int = Field(2000, ge=1, description="Give up (clearly) if the screening passes too few.")
    engine: str = "chgnet"
    confirm_with: str = Field(default_factory=lambda: _settings().confirm_with,
                              description="Force fields that must agree with the engine's verdict ('none': none).")
    confirm_from: str = Field(default_factory=lambda: _settings().confirm_from,
                              description="What the confirming force fields relax: generated or relaxed.")
    reference: str = "mp-structures"
    relax_steps: int = Field(300, ge=1, description="Relaxation step cap (FIRE, cell and positions).")
    relax_fmax: float = Field(0.1, gt=0, description="Force convergence of the relaxations, eV/A.")
    relax_chunk: int = Field(default_factory=lambda: _settings().relax_chunk_size, ge=1,
                             description="Candidates per relaxation job (one FireWork each; the model loads once).")
    relax_workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1,
                               description="Worker processes here (one torch thread each); 1 runs in-process.")
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
    """The study's own record (next to the candidate store): its settings and the wall time summed over resumes.
    The counts are read from the candidate store at the end of each run (the store is the record of what is done)."""

    spec: StudySpec
    batches_done: int = 0
    screened: int = 0
    relaxed: int = 0
    relax_failed: int = 0
    judged: int = 0
    wall_seconds: float = 0.0
    finished: bool = False
    executor: str | None = Field(None, description="Where the last run ran (run_locally, N workers, a LaunchPad).")
    failed_jobs: list[str] = Field(default_factory=list, description="Jobs of the last run that failed.")
    unjudged: dict[str, str] = Field(default_factory=dict, description="Chemical system -> why relaxed candidates "
                                                                       "have no hull placement.")
    launchpad_workflow: str | None = Field(None, description="Name of the workflow added to a LaunchPad, if any.")
    submitted: list[str] = Field(default_factory=list, description="Legacy: candidates handed to a LaunchPad.")


def progress_path(spec: StudySpec, store_dir: Path) -> Path:
    return Path(store_dir) / "studies" / f"{spec.name}.json"


# free to change between resumes: how the work is spread over processes, where the checkpoint lies (the
# candidates' provenance pins the model itself, see check_same_checkpoint), and how candidates are relaxed (a
# relaxation with other settings is redone, so that all of the study's candidates are relaxed alike)
EXECUTION_FIELDS = {"target", "relax_chunk", "relax_workers", "checkpoint"}
RELAX_FIELDS = {"relax_steps", "relax_fmax"}
# a study resumed with other confirming force fields keeps its candidates and judges them again
JUDGE_FIELDS = {"confirm_with", "confirm_from"}
# what a field meant in progress records written before it existed (the behaviour of that time)
FIELDS_ADDED_LATER = {"sampler_repulsion": 0.0, "confirm_with": "none", "confirm_from": "generated"}


def load_progress(spec: StudySpec, store_dir: Path, resume: bool) -> StudyProgress:
    path = progress_path(spec, store_dir)
    if resume and path.is_file():
        recorded = json.loads(path.read_text())
        recorded["spec"] = {**FIELDS_ADDED_LATER, **recorded["spec"]}
        previous = StudyProgress.model_validate(recorded)
        free = EXECUTION_FIELDS | RELAX_FIELDS | JUDGE_FIELDS
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


def study_candidates(candidates, name: str, selected_only: bool = True, system: str | None = None
                     ) -> list[CandidateDoc]:
    criteria = {"study": name, **({"prefilter.passed": True} if selected_only else {}),
                **({"chemsys": system} if system else {})}
    return list(candidates.find(criteria))


def load_study_model(spec: StudySpec):
    """The study's model, codec and checkpoint payload (loaded once per process)."""
    from pccd_flows.pipeline import load_generator

    return load_generator(spec.checkpoint)


def check_same_checkpoint(name: str, candidates, checkpoint: dict) -> None:
    """A study's candidates all come from one checkpoint: resuming after the default checkpoint changed (a new
    release) must not mix two models in one distribution."""
    earlier = list(candidates.find({"study": name}, limit=1))
    if earlier and earlier[0].provenance.checkpoint_sha256 != checkpoint["sha256"]:
        raise ValueError(
            f"study {name!r} was generated with checkpoint {earlier[0].provenance.checkpoint_sha256[:12]}, "
            f"not {checkpoint['sha256'][:12]} ({checkpoint.get('path')}): resume it with --checkpoint pointing "
            "at that file, or start another --name")


class ScreenedBatches(BaseModel):
    """What one screening job did."""

    first_batch: int
    next_batch: int
    passed_now: int = Field(description="Candidates of these batches that passed (within the target).")
    passed: int = Field(description="The study's passed candidates in the store after these batches.")
    target: int


@dataclass
class StudyFlowMaker(Maker):
    """The study as a jobflow Flow of the screening Makers, screening batches until exactly ``target`` passed.

    Each screening job (:meth:`screen`, category ``generate``) generates seeded batches (batch ``b`` is system
    ``systems[b % len(systems)]`` with seed ``seed * 1_000_003 + b``) and prefilters them with the ``generate``
    and ``prefilter`` Makers' settings through :mod:`pccd_flows.pipeline`, stores them (candidates past the
    target are kept, marked as over it), and once ``relax.chunk_size`` new ones passed (or the target is reached)
    adds, through a jobflow ``Response``, one ``relax`` job per chunk (category ``relax``) with a ``stability`` job
    each, and the next screening job. Screening jobs follow one another, so the target is met exactly; relaxations
    run beside them.

    Parameters
    ----------
    name : str
        The Maker's name (jobflow renames it with its jobs).
    study : str
        The study's name (stored on every candidate).
    target : int
        Candidates that pass the screening, exactly.
    systems : list of str
        Chemical systems, in batch order.
    seed, per_batch, max_batches : int
        Seed of the study, structures per batch, and the batch count at which it gives up (clearly).
    generate, prefilter, relax, stability : Maker
        The screening Makers; their stores are the study's candidate store.
    store : Store, optional
        The candidate store (default: the configured one, resolved when the flow is made).
    """

    name: str = "pccd study"
    study: str = "paper-746"
    target: int = 746
    systems: list[str] = field(default_factory=list)
    seed: int = 0
    per_batch: int = 16
    max_batches: int = 2000
    generate: GenerateCandidatesMaker = field(default_factory=GenerateCandidatesMaker)
    prefilter: PrefilterMaker = field(default_factory=PrefilterMaker)
    relax: RelaxCandidatesMaker = field(default_factory=RelaxCandidatesMaker)
    stability: StabilityMaker = field(default_factory=StabilityMaker)
    store: Store | None = None

    @classmethod
    def from_spec(cls, spec: StudySpec, store: Store | None = None) -> StudyFlowMaker:
        """The Makers of a :class:`StudySpec`, all writing to ``store`` (default: the configured candidate store)."""
        from pccd_flows.stores.config import candidate_store

        store = store if store is not None else candidate_store()
        return cls(study=spec.name, target=spec.target, systems=spec.chemical_systems(), seed=spec.seed,
                   per_batch=spec.per_batch, max_batches=spec.max_batches,
                   generate=GenerateCandidatesMaker(checkpoint=spec.checkpoint, n=spec.per_batch,
                                                    steps=spec.sampler_steps, eta=spec.sampler_eta,
                                                    repulsion=spec.sampler_repulsion),
                   prefilter=PrefilterMaker(min_covalent_ratio=spec.min_covalent_ratio,
                                            require_icsd_oxidation_states=spec.require_icsd_oxidation_states,
                                            store=store),
                   relax=RelaxCandidatesMaker(engine=spec.engine, steps=spec.relax_steps, fmax=spec.relax_fmax,
                                              chunk_size=spec.relax_chunk, store=store),
                   stability=StabilityMaker(reference=spec.reference, engine=spec.engine,
                                            confirm_with=spec.confirm_with, confirm_from=spec.confirm_from,
                                            store=store),
                   store=store)

    def candidates(self):
        from pccd_flows.stores.candidates import CandidateStore

        return CandidateStore(self.store)

    def make(self) -> Flow:
        """The study's remaining work, from what the candidate store holds.

        Returns
        -------
        Flow
            Relaxations (by chunk, with a stability job each) of passed candidates not relaxed with these settings,
            a stability job for relaxed candidates not judged against this reference, and, while fewer than the
            target passed, the screening job of the next batch. Empty when the study is done.
        """
        from pccd_flows.pipeline import chunked, needs_judging, needs_relaxation, relaxation_settings
        from pccd_flows.settings import get_settings

        candidates = self.candidates()
        passed = study_candidates(candidates, self.study)
        jobs = self.relax_and_judge(passed)
        settings = relaxation_settings(self.relax.engine, self.relax.steps, self.relax.fmax)
        reference = self.stability.reference or get_settings().reference
        # also those judged by other force fields than now configured (a study resumed with a confirmation)
        unjudged = [d for d in passed if not needs_relaxation(d, settings) and d.relaxation.energy_per_atom is not None
                    and needs_judging(d, reference, self.stability.confirm_with, self.stability.confirm_below,
                                      confirm_from=self.stability.confirm_from)]
        # in chunks, so that confirming relaxations run on every worker
        for i, chunk in enumerate(chunked(unjudged, self.relax.chunk_size)):
            judge = self.stability.make(chunk)
            judge.name = f"{self.study} stability of relaxed chunk {i} ({len(chunk)})"
            jobs.append(judge)
        if len(passed) < self.target:  # from the batch after the last stored (every batch stores all it made)
            jobs.append(self.screen_job(next_batch(candidates, self.study)))
        return Flow(jobs, name=f"{self.study} study")

    def screen_job(self, batch: int):
        screen = self.screen(batch)
        screen.name = f"{self.study} screen from batch {batch}"
        # not dynamic, and not passed on: jobflow would give the jobs it adds (the relaxations) the GPU category
        screen.update_config({"manager_config": {"_category": GENERATE_CATEGORY}}, dynamic=False)
        screen.config.pass_manager_config = False
        return screen

    def relax_and_judge(self, docs: list[CandidateDoc]) -> list:
        """One relaxation job per chunk of ``docs`` that need relaxing, each followed by a stability job."""
        jobs = []
        for relax in self.relax.chunk_jobs(docs):
            judge = self.stability.make(relax.output)
            judge.name = f"stability {relax.name.removeprefix('relax ').split(':')[0]}"
            jobs += [relax, judge]
        return jobs

    @job
    def screen(self, batch: int) -> Response:
        """Generate and prefilter batches from ``batch`` on until ``relax.chunk_size`` new candidates passed or the
        target is reached; add their relaxations and judgements, and the next screening job."""
        from pccd_flows.pipeline import generate_candidates, load_generator, prefilter_against_store
        from pccd_flows.settings import get_settings

        candidates = self.candidates()
        query = {"study": self.study, "prefilter.passed": True}
        passed, first, new = candidates.count(query), batch, []
        chunk = self.relax.chunk_size or get_settings().relax_chunk_size
        if passed < self.target:
            check_same_checkpoint(self.study, candidates, load_generator(self.generate.checkpoint)[2])
        while passed < self.target and len(new) < chunk:
            if batch >= self.max_batches:
                raise RuntimeError(f"{self.max_batches} batches passed only {passed} of {self.target} candidates")
            system = self.systems[batch % len(self.systems)]
            docs = generate_candidates(system, self.per_batch, self.seed * 1_000_003 + batch,
                                       self.generate.sampler_settings(), self.generate.checkpoint,
                                       tags={"study": self.study, "study_batch": batch})
            judged = prefilter_against_store(docs, candidates, self.prefilter.settings())
            # counted from the store, without this batch: a batch stored by a job that was then interrupted is
            # generated again (the same candidates), and must not count twice
            room = self.target - candidates.count({**query, "study_batch": {"$ne": batch}})
            kept = []
            for doc in judged:  # exactly the target: candidates past it are kept, marked as over the target
                if doc.prefilter.passed and room <= 0:
                    doc = doc.model_copy(update={"prefilter": doc.prefilter.model_copy(
                        update={"passed": False, "reject_reason": "beyond the study's target"})})
                elif doc.prefilter.passed:
                    room -= 1
                kept.append(doc)
            candidates.upsert(kept)
            new += [d for d in kept if d.prefilter.passed]
            passed = candidates.count(query)
            logger.info("batch %d (%s): %d of %d passed; %d/%d screened", batch, system,
                        sum(d.prefilter.passed for d in kept), len(kept), passed, self.target)
            batch += 1
        jobs = self.relax_and_judge(new)
        if passed < self.target:
            jobs.append(self.screen_job(batch))
        output = ScreenedBatches(first_batch=first, next_batch=batch, passed_now=len(new), passed=passed,
                                 target=self.target)
        return Response(output=output, addition=Flow(jobs, name=f"{self.study} batches {first}-{batch - 1}")
                        if jobs else None)


def next_batch(candidates, name: str) -> int:
    """The batch after the last one the store holds for study ``name`` (0 for a new study)."""
    last = list(candidates.find({"study": name, "study_batch": {"$ne": None}}, sort="study_batch"))
    return (max(d.study_batch for d in last) + 1) if last else 0


def study_status(spec: StudySpec, candidates, progress: StudyProgress) -> StudyProgress:
    """``progress`` with its counts read from the candidate store, and why relaxed candidates are unjudged."""
    from pccd_flows.pipeline import needs_relaxation, relaxation_settings, unjudged_reasons

    selected = study_candidates(candidates, spec.name)
    settings = relaxation_settings(spec.engine, spec.relax_steps, spec.relax_fmax)
    relaxed = [d for d in selected if not needs_relaxation(d, settings)]
    judged = [d for d in relaxed if d.stability is not None and d.stability.reference == spec.reference]
    unjudged = unjudged_reasons(relaxed, spec.reference, spec.engine)
    return progress.model_copy(update={
        "batches_done": next_batch(candidates, spec.name), "screened": len(selected),
        "relaxed": sum(d.relaxation.error is None for d in relaxed),
        "relax_failed": sum(d.relaxation.error is not None for d in relaxed), "judged": len(judged),
        "unjudged": unjudged,
        "finished": len(selected) >= spec.target and len(relaxed) == len(selected) and not unjudged})


def start_study(spec: StudySpec, candidates, store_dir: Path, resume: bool) -> StudyProgress:
    """Check that the study may start (or resume) with these settings; its progress record."""
    progress = load_progress(spec, store_dir, resume)
    if not resume and candidates.count({"study": spec.name}):
        raise ValueError(f"the store already holds study {spec.name!r}: add --resume to continue it")
    if candidates.count({"study": spec.name, "prefilter.passed": True}) < spec.target:
        check_same_checkpoint(spec.name, candidates, load_study_model(spec)[2])
    return progress


def run_study(spec: StudySpec, candidates, store_dir: Path, resume: bool = False,
              log: Callable[[str], None] = print, workers: int | None = None) -> StudyProgress:
    """Run the study's flow here until exactly ``spec.target`` passed and all are relaxed and judged.

    Parameters
    ----------
    spec : StudySpec
        The study.
    candidates : CandidateStore
        Its candidate store.
    store_dir : Path
        Where the progress record (and the private LaunchPad of several workers) go.
    resume : bool
        Continue a study the store holds (a new flow of its remaining work: nothing finished is redone).
    log : callable
        Where progress lines go.
    workers : int, optional
        Worker processes (default ``spec.relax_workers``): 1 runs in this process (jobflow's ``run_locally``);
        more run on a private embedded FireWorks LaunchPad, one FireWork per job.

    Returns
    -------
    StudyProgress
        Its counts from the store, the wall time summed over runs, the failed jobs and any unjudged systems.
    """
    from pccd_flows.pipeline.executors import run_flow

    progress = start_study(spec, candidates, store_dir, resume)
    flow = StudyFlowMaker.from_spec(spec, candidates.store).make()
    workers = workers or spec.relax_workers
    log(f"study {spec.name}: {len(flow.jobs)} jobs to start with, {workers} worker(s)")
    forward = _Forward(log)  # the screening jobs' batch lines, when they run in this process
    logger.addHandler(forward)
    logger.setLevel(logging.INFO)
    try:
        run = run_flow(flow, workers, Path(store_dir) / "studies" / f"{spec.name}-fireworks")
    finally:
        logger.removeHandler(forward)
    progress = study_status(spec, candidates, progress).model_copy(update={
        "wall_seconds": progress.wall_seconds + run.seconds, "executor": run.executor,
        "failed_jobs": run.failed})
    save_progress(progress, store_dir)
    if run.interrupted:
        raise KeyboardInterrupt
    return progress


class _Forward(logging.Handler):
    def __init__(self, log: Callable[[str], None]):
        super().__init__()
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        self.log(record.getMessage())


def submit_study(spec: StudySpec, candidates, store_dir: Path, launchpad, resume: bool = False) -> int:
    """Add the study's flow to a FireWorks LaunchPad (``launchpad``: a ``LaunchPad``); returns how many FireWorks.

    Nothing is added while the workflow added before is not finished on that LaunchPad (its FireWorks would do the
    same work twice; ``lpad rerun_fws`` reruns failed ones); after it, a resume adds the study's remaining work.
    """
    from pccd_flows.stores.config import fireworks_workflow

    progress = start_study(spec, candidates, store_dir, resume)
    name = f"{spec.name} study"
    if progress.launchpad_workflow and launchpad.get_wf_ids({"name": progress.launchpad_workflow,
                                                             "state": {"$nin": ["COMPLETED", "ARCHIVED"]}}):
        return 0
    flow = StudyFlowMaker.from_spec(spec, candidates.store).make()
    if not flow.jobs:
        return 0
    workflow = fireworks_workflow(flow)
    workflow.name = name
    launchpad.add_wf(workflow)
    progress = study_status(spec, candidates, progress).model_copy(update={"launchpad_workflow": name,
                                                                           "executor": "LaunchPad"})
    save_progress(progress, store_dir)
    return len(workflow.fws)
