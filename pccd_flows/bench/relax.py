"""Relaxations per CPU-second of the ways pccd can relax candidates, side by side in one run on the same structures.

(a) ``per-candidate``: one atomate2 ``ForceFieldRelaxMaker`` job per candidate, run through jobflow, each job loading
    the potential (what ``RelaxCandidatesMaker``, and so ``pccd screen``, did before it relaxed in chunks);
(b) ``chunked``: one job per chunk of candidates with the potential loaded once
    (:func:`pccd_flows.stability.engines.run_force_field`, as the 746 study relaxed when this was written);
(c) ``torch-sim``: torch-sim's batched FIRE on SevenNet, one batch per chunk (:mod:`pccd_flows.bench.torchsim`).

CPU time is the process's user + system time and its children's (``resource.getrusage``), so a machine shared with
other work changes it far less than wall time.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Sequence

from pymatgen.core import Structure

from pccd_flows.bench.candidates import BenchCandidate
from pccd_flows.bench.schemas import EnergyAgreement, MethodMeasurement, RelaxBenchReport, RelaxOutcome
from pccd_flows.bench.torchsim import (
    TORCH_SIM_ENGINES,
    compatibility_notes,
    relax_with_torch_sim,
    unavailable_reason,
)
from pccd_flows.stability.engines import (
    FORCE_FIELDS,
    RelaxSettings,
    error_line,
    quiet_scratch,
    run_force_field,
)

METHODS = {
    "per-candidate": ("(a)", ("one atomate2 ForceFieldRelaxMaker job per candidate through jobflow, each loading the "
                              "potential (pccd screen's RelaxCandidatesMaker before it relaxed in chunks)")),
    "chunked": ("(b)", ("one job per chunk: run_force_field on a chunk (one jobflow job, one atomate2 maker), the "
                        "potential loaded once per chunk")),
    "torch-sim": ("(c)", ("torch-sim's batched FIRE (Frechet cell filter) on SevenNet, the model loaded once and "
                          "the chunk relaxed as one batch")),
}
BASELINE = "per-candidate"


def cpu_seconds() -> float:
    """User + system CPU time so far of this process and of its finished children.

    Returns
    -------
    float
        Seconds.
    """
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _outcome_of_task_doc(task_doc) -> RelaxOutcome:
    output = task_doc.output
    return RelaxOutcome(energy_per_atom=float(output.energy) / len(output.structure),
                        converged=bool(task_doc.is_force_converged), steps=getattr(output, "n_steps", None))


def relax_per_candidate(structures: list[Structure], engine: str, steps: int, fmax: float) -> list[RelaxOutcome]:
    """(a) One atomate2 relaxation job per structure, all in one jobflow flow run locally, each job with its own
    maker and so its own potential, as ``RelaxCandidatesMaker`` replaced itself by before it relaxed in chunks.

    Parameters
    ----------
    structures : list of Structure
        The candidates.
    engine : str
        A force field of :data:`pccd_flows.stability.engines.FORCE_FIELDS`.
    steps, fmax : int, float
        Most optimizer steps; force convergence (eV/A).

    Returns
    -------
    list of RelaxOutcome
        In the order of ``structures``; a failed job's candidate carries an error.
    """
    from jobflow import Flow, run_locally

    from pccd_flows.makers.relax import relax_maker

    jobs = [relax_maker(engine, steps, fmax).make(structure) for structure in structures]
    with quiet_scratch(), tempfile.TemporaryDirectory(prefix="pccd-bench-") as scratch:
        responses = run_locally(Flow(jobs), ensure_success=False, log=False, root_dir=scratch, create_folders=True)
    outcomes = []
    for job in jobs:
        response = responses.get(job.uuid, {}).get(1)
        output = getattr(response, "output", None)
        outcomes.append(_outcome_of_task_doc(output) if output is not None else RelaxOutcome(error="job failed"))
    return outcomes


def relax_chunked(structures: list[Structure], engine: str, steps: int, fmax: float, chunk_size: int
                  ) -> list[RelaxOutcome]:
    """(b) One :func:`~pccd_flows.stability.engines.run_force_field` call per chunk: the potential loads once a chunk.

    Parameters
    ----------
    structures : list of Structure
        The candidates.
    engine : str
        A force field of :data:`pccd_flows.stability.engines.FORCE_FIELDS`.
    steps, fmax : int, float
        Most optimizer steps; force convergence (eV/A).
    chunk_size : int
        Structures per call.

    Returns
    -------
    list of RelaxOutcome
        In the order of ``structures``.
    """
    outcomes = []
    for start in range(0, len(structures), chunk_size):
        with quiet_scratch():
            results = run_force_field(structures[start:start + chunk_size], engine,
                                      RelaxSettings(steps=steps, fmax=fmax))
        outcomes += [_outcome_of_task_doc(r.task_doc) if r.ok else RelaxOutcome(error=r.error) for r in results]
    return outcomes


def relax_torch_sim(structures: list[Structure], engine: str, steps: int, fmax: float, chunk_size: int
                    ) -> tuple[list[RelaxOutcome], int]:
    """(c) torch-sim's batched FIRE, one batch (and one model load) per chunk.

    Parameters
    ----------
    structures : list of Structure
        The candidates.
    engine : str
        A SevenNet engine.
    steps, fmax : int, float
        Most optimizer steps; force convergence (eV/A).
    chunk_size : int
        Structures per batch.

    Returns
    -------
    list of RelaxOutcome
        In the order of ``structures``.
    int
        Structure-evaluations of the potential over all batches.
    """
    outcomes, evaluations = [], 0
    for start in range(0, len(structures), chunk_size):
        with quiet_scratch():
            chunk, counted = relax_with_torch_sim(structures[start:start + chunk_size], engine, steps, fmax)
        outcomes += chunk
        evaluations += counted
    return outcomes, evaluations


def energy_agreement(outcomes: Sequence[RelaxOutcome], baseline: Sequence[RelaxOutcome]) -> EnergyAgreement:
    """Final energies per atom of one method against the baseline's, on the structures both relaxed.

    Parameters
    ----------
    outcomes, baseline : sequence of RelaxOutcome
        The same candidates in the same order.

    Returns
    -------
    EnergyAgreement
        Max and mean absolute difference (eV/atom); None where no structure has both.
    """
    differences = [abs(o.energy_per_atom - b.energy_per_atom) for o, b in zip(outcomes, baseline, strict=True)
                   if o.energy_per_atom is not None and b.energy_per_atom is not None]
    if not differences:
        return EnergyAgreement(compared=0)
    return EnergyAgreement(compared=len(differences), max_abs_ev_per_atom=max(differences),
                           mean_abs_ev_per_atom=sum(differences) / len(differences))


def measure(method: str, structures: list[Structure], engine: str, steps: int, fmax: float, chunk_size: int
            ) -> MethodMeasurement:
    """Relax all structures with one method and engine, timing CPU and wall clock around it.

    Parameters
    ----------
    method : str
        A key of :data:`METHODS`.
    structures : list of Structure
        The candidates.
    engine : str
        A force field of :data:`pccd_flows.stability.engines.FORCE_FIELDS`.
    steps, fmax : int, float
        Most optimizer steps; force convergence (eV/A).
    chunk_size : int
        Structures per job of the chunked methods.

    Returns
    -------
    MethodMeasurement
        Without the ratios against (a) (see :func:`compare`); ``unavailable`` says why a method cannot run here.
    """
    label, description = METHODS[method]
    result = MethodMeasurement(method=method, label=label, engine=engine, description=description,
                               n=len(structures))
    if method == "torch-sim" and (reason := unavailable_reason(engine)):
        result.unavailable = reason
        return result
    cpu, wall = cpu_seconds(), time.perf_counter()
    try:
        if method == "per-candidate":
            outcomes = relax_per_candidate(structures, engine, steps, fmax)
        elif method == "chunked":
            outcomes = relax_chunked(structures, engine, steps, fmax, chunk_size)
        else:
            outcomes, evaluations = relax_torch_sim(structures, engine, steps, fmax, chunk_size)
    except Exception as error:  # noqa: BLE001 - a method that cannot run is a result of the benchmark
        result.unavailable = error_line(error)
        return result
    result.cpu_seconds, result.wall_seconds = cpu_seconds() - cpu, time.perf_counter() - wall
    result.outcomes = outcomes
    result.relaxed = sum(o.energy_per_atom is not None for o in outcomes)
    result.converged = sum(bool(o.converged) for o in outcomes)
    result.converged_fraction = result.converged / len(outcomes) if outcomes else None
    if result.cpu_seconds > 0:
        result.relaxations_per_cpu_second = result.relaxed / result.cpu_seconds
    if result.wall_seconds > 0:
        result.relaxations_per_wall_second = result.relaxed / result.wall_seconds
    step_counts = [o.steps for o in outcomes if o.steps is not None]
    if step_counts:
        result.mean_steps = sum(step_counts) / len(step_counts)
    elif method == "torch-sim" and outcomes:
        result.mean_steps = evaluations / len(outcomes)
    return result


def compare(measurements: list[MethodMeasurement]) -> dict[str, str]:
    """Fill in each measurement's ratios and energy agreement against (a) of its engine, and pick per engine the
    fastest method at equal convergence.

    Parameters
    ----------
    measurements : list of MethodMeasurement
        From :func:`measure`; changed in place.

    Returns
    -------
    dict
        Engine -> the method with the most relaxations per CPU-second among those that converged at least as many
        candidates as (a) (engines without a measured (a) are left out).
    """
    fastest = {}
    for engine in dict.fromkeys(m.engine for m in measurements):
        mine = [m for m in measurements if m.engine == engine and m.relaxations_per_cpu_second]
        baseline = next((m for m in mine if m.method == BASELINE), None)
        if baseline is None:
            continue
        for m in mine:
            m.cpu_ratio_vs_per_candidate = m.relaxations_per_cpu_second / baseline.relaxations_per_cpu_second
            if m.relaxations_per_wall_second and baseline.relaxations_per_wall_second:
                m.wall_ratio_vs_per_candidate = m.relaxations_per_wall_second / baseline.relaxations_per_wall_second
            m.energy_agreement = energy_agreement(m.outcomes, baseline.outcomes)
        converging = [m for m in mine if m.converged >= baseline.converged]
        fastest[engine] = max(converging, key=lambda m: m.relaxations_per_cpu_second).method
    return fastest


def study_relax_settings(steps: int | None = None, fmax: float | None = None, chunk_size: int | None = None
                         ) -> tuple[int, float, int]:
    """Steps, fmax and chunk size, the 746 study's where not given (so that the benchmark measures its relaxations).

    Parameters
    ----------
    steps, fmax, chunk_size : int, float, int, optional
        Given values win.

    Returns
    -------
    tuple
        ``(steps, fmax, chunk_size)``.
    """
    from pccd_flows.study.paper746 import StudySpec

    spec = StudySpec()
    return (spec.relax_steps if steps is None else steps, spec.relax_fmax if fmax is None else fmax,
            spec.relax_chunk if chunk_size is None else chunk_size)


def cold_start_cpu_seconds(engine: str) -> float | None:
    """CPU-seconds of a new Python process that imports atomate2's force-field maker and loads ``engine``'s potential.

    Parameters
    ----------
    engine : str
        A force field of :data:`pccd_flows.stability.engines.FORCE_FIELDS`.

    Returns
    -------
    float or None
        The child's user + system time (one torch thread); None if the process failed.
    """
    import subprocess

    code = ("import torch; torch.set_num_threads(1)\n"
            "from pccd_flows.stability.engines import force_field_maker\n"
            f"force_field_maker({engine!r}).calculator\n")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, check=False,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        return None
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _versions() -> dict[str, str | None]:
    import importlib.metadata

    def version(package: str) -> str | None:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {package: version(package) for package in ("torch", "numpy", "atomate2", "jobflow", "chgnet", "sevenn",
                                                      "torch-sim-atomistic", "ase")}


def _measure_all(candidates: Sequence[BenchCandidate], engines: Sequence[str], steps: int, fmax: float,
                 chunk_size: int, methods: Sequence[str], say: Callable[[str], None]) -> list[MethodMeasurement]:
    """Warm every engine and method up on the smallest candidate, then measure each on all candidates."""
    structures = [c.to_structure() for c in candidates]
    plan = [(engine, method) for engine in engines for method in methods
            if method != "torch-sim" or engine in TORCH_SIM_ENGINES]
    smallest = [min(structures, key=len)]
    for engine in engines:
        say(f"warming up {engine}")
        for method in {m for e, m in plan if e == engine}:
            if method != "torch-sim" or unavailable_reason(engine) is None:
                measure(method, smallest, engine, 1, fmax, chunk_size)
    measurements = []
    for engine, method in plan:
        say(f"{METHODS[method][0]} {method} with {engine}: {len(structures)} candidates")
        measurements.append(measure(method, structures, engine, steps, fmax, chunk_size))
    return measurements


def run_relax_bench(candidates: Sequence[BenchCandidate], engines: Sequence[str] = ("chgnet", "sevennet"),
                    steps: int | None = None, fmax: float | None = None, chunk_size: int | None = None,
                    methods: Sequence[str] = tuple(METHODS), source: str = "", torch_threads: int = 1,
                    progress: Callable[[str], None] | None = None) -> RelaxBenchReport:
    """Relax the same candidates with every method and engine, one after the other, and compare them.

    Before the clock starts, each engine relaxes the smallest candidate for one step by every method that will run
    (imports, weights read from disk into the page cache, torch's first-call setup), so that the method measured
    first pays no more than the others.

    Parameters
    ----------
    candidates : sequence of BenchCandidate
        The structures, each relaxed by every method.
    engines : sequence of str
        Force fields (:data:`pccd_flows.stability.engines.FORCE_FIELDS`); torch-sim runs only SevenNet's.
    steps : int, optional
        Most optimizer steps (FIRE); default the 746 study's (:class:`pccd_flows.study.paper746.StudySpec`).
    fmax : float, optional
        Force convergence, eV/A; default the study's.
    chunk_size : int, optional
        Structures per job (per batch) of (b) and (c); default the study's ``relax_chunk``.
    methods : sequence of str
        Keys of :data:`METHODS`; ratios need ``per-candidate``.
    source : str
        Where the candidates came from, for the report.
    torch_threads : int
        torch's intra-op threads for every method (1: comparable on a shared machine, and how the study runs).
    progress : callable, optional
        Called with a line before each measurement.

    Returns
    -------
    RelaxBenchReport
        Every method and engine measured, ratios against (a), the fastest at equal convergence per engine.

    Raises
    ------
    ValueError
        No candidates, an engine that is not a force field, an unknown method, or steps/fmax/chunk_size out of range.
    """
    import torch

    steps, fmax, chunk_size = study_relax_settings(steps, fmax, chunk_size)
    if not candidates:
        raise ValueError("no candidates to relax")
    unknown = [e for e in engines if e not in FORCE_FIELDS]
    if unknown or not engines:
        raise ValueError(f"engine {', '.join(unknown) or '(none)'}: choose force fields of {', '.join(FORCE_FIELDS)}")
    if bad := [m for m in methods if m not in METHODS]:
        raise ValueError(f"method {', '.join(bad)}: choose of {', '.join(METHODS)}")
    if steps < 1 or chunk_size < 1 or not fmax > 0:
        raise ValueError(f"steps ({steps}) and chunk size ({chunk_size}) must be >= 1 and fmax ({fmax}) > 0")
    say = progress or (lambda line: None)
    # read before the measurements: relaxing with torch-sim applies the workaround the notes describe
    notes = compatibility_notes() if "torch-sim" in methods and any(unavailable_reason(e) is None for e in engines) \
        else []
    cold_start = {}
    if BASELINE in methods:
        for engine in engines:
            say(f"cold start of a process loading {engine}")
            cold_start[engine] = cold_start_cpu_seconds(engine)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(torch_threads)
    try:
        measurements = _measure_all(candidates, engines, steps, fmax, chunk_size, methods, say)
    finally:  # the caller's setting back: a benchmark should not change how the rest of the process runs
        torch.set_num_threads(threads_before)
    fastest = compare(measurements)
    return RelaxBenchReport(
        source=source, candidates=list(candidates), engines=list(engines), steps=steps, fmax=fmax,
        chunk_size=chunk_size, optimizer="FIRE", torch_threads=torch_threads, cpu_count=os.cpu_count(),
        machine=f"{platform.platform()}, Python {platform.python_version()}",
        versions=_versions(), notes=notes, cold_start_cpu_seconds=cold_start, measurements=measurements,
        fastest_at_equal_convergence=fastest)
