"""Relaxation: one job per chunk of candidates (the potential loaded once per chunk); a failed relaxation costs only
its candidate, recorded on it."""

from __future__ import annotations

from dataclasses import dataclass

from jobflow import Flow, Maker, OnMissing, Response, job
from maggma.core import Store

from pccd_flows.pipeline.relax import (
    chunked,
    needs_relaxation,
    relax_maker,
    relaxation_settings,
    vasp_relax_maker,
    with_relaxation,
)
from pccd_flows.schemas.candidate import CandidateDoc, RelaxationResult
from pccd_flows.stability.engines import FORCE_FIELDS

__all__ = ["GENERATE_CATEGORY", "RELAX_CATEGORY", "RelaxCandidatesMaker", "collect_relaxations", "gather_chunks",
           "needs_relaxation", "relax_chunk", "relax_maker", "relaxation_settings", "vasp_relax_maker",
           "with_relaxation"]

# FireWorks worker categories: GPU nodes generate, CPU nodes relax (see launchpad_config/my_fworker.yaml)
RELAX_CATEGORY = "relax"
GENERATE_CATEGORY = "generate"


@dataclass
class RelaxCandidatesMaker(Maker):
    """Replace itself by one relaxation job per chunk of candidates that passed the prefilter, and a job that
    gathers them.

    A thin wrapper of :func:`pccd_flows.pipeline.relax_candidates`. Candidates already relaxed with the same
    settings (engine, model, optimizer, steps, fmax) are not relaxed again, nor are those whose relaxation with
    these settings failed (:func:`~pccd_flows.pipeline.needs_relaxation`); other settings relax them again.

    Parameters
    ----------
    name : str
        The job's name.
    engine : str
        ``chgnet`` (default) or ``sevennet`` (chunks of ``chunk_size`` through one loaded potential), or ``vasp``
        (atomate2's MP GGA double-relax + static flow per candidate, for HPC, and a job that collects them).
    steps, fmax : int, float
        Force-field step limit and force criterion (eV/A).
    chunk_size : int, optional
        Candidates per relaxation job (one FireWork each on a LaunchPad); default: ``PCCD_RELAX_CHUNK_SIZE``.
    category : str, optional
        FireWorks category of the relaxation jobs.
    store : Store, optional
        The candidate store each relaxation is written to as it finishes.
    """

    name: str = "relax candidates"
    engine: str = "chgnet"
    steps: int = 500
    fmax: float = 0.05
    chunk_size: int | None = None
    category: str | None = RELAX_CATEGORY
    store: Store | None = None

    def relax_maker(self):
        """The atomate2 maker of one relaxation with these settings."""
        return relax_maker(self.engine, self.steps, self.fmax)

    def chunk_jobs(self, candidates: list[CandidateDoc]) -> list:
        """One :func:`relax_chunk` job per chunk of the candidates that need relaxing (none if none does)."""
        from pccd_flows.settings import get_settings

        settings = relaxation_settings(self.engine, self.steps, self.fmax)
        todo = [d for d in candidates if d.prefilter.passed and needs_relaxation(d, settings)]
        chunks = list(chunked(todo, self.chunk_size or get_settings().relax_chunk_size))
        jobs = []
        for i, chunk in enumerate(chunks, 1):
            relax = relax_chunk(chunk, self.engine, self.steps, self.fmax, self.store)
            systems = ",".join(sorted({d.chemsys for d in chunk}))
            # the ids in the name: `lpad get_fws` and the progress lines say which candidates a FireWork relaxes
            relax.name = f"relax chunk {i}/{len(chunks)} {systems}: {' '.join(d.candidate_id for d in chunk)}"
            if self.category:
                relax.update_config({"manager_config": {"_category": self.category}})
            jobs.append(relax)
        return jobs

    @job
    def make(self, candidates: list[CandidateDoc]) -> Response:
        """Replace this job by the relaxations of ``candidates`` and a job whose output is all of them, in order."""
        candidates = [CandidateDoc.model_validate(c) if isinstance(c, dict) else c for c in candidates]
        if self.engine in FORCE_FIELDS:
            jobs = self.chunk_jobs(candidates)
            gather = gather_chunks(candidates, [j.output for j in jobs])
        else:
            jobs, results = self._vasp_jobs(candidates)
            gather = collect_relaxations(candidates, results, self.engine, self.store,
                                         relaxation_settings(self.engine, self.steps, self.fmax))
        gather.config.on_missing_references = OnMissing.NONE  # a chunk that died leaves its candidates unrelaxed
        return Response(replace=Flow([*jobs, gather], output=gather.output, name=self.name))

    def _vasp_jobs(self, candidates: list[CandidateDoc]) -> tuple[list, dict]:
        settings = relaxation_settings(self.engine, self.steps, self.fmax)
        jobs, results = [], {}
        for doc in candidates:
            if not doc.prefilter.passed or not needs_relaxation(doc, settings):
                continue
            relax_job = self.relax_maker().make(doc.generated_structure())
            relax_job.name = f"relax {doc.formula} {doc.candidate_id}"
            if self.category:
                relax_job.update_config({"manager_config": {"_category": self.category}})
            jobs.append(relax_job)
            # the MP2020 correction needs the whole VASP task document (run type, U values, POTCARs)
            results[doc.candidate_id] = {"uuid": relax_job.uuid, "task_doc": relax_job.output, "converged": True}
        return jobs, results


@job
def relax_chunk(candidates: list[CandidateDoc], engine: str, steps: int, fmax: float,
                store: Store | None = None) -> list[CandidateDoc]:
    """Relax a chunk on one loaded force field (:func:`pccd_flows.pipeline.relax_candidates`), each candidate
    stored as it finishes; candidates the store shows done with these settings (a chunk run again after an
    interruption) are not relaxed again. The relaxations record this job's uuid."""
    from jobflow import CURRENT_JOB

    from pccd_flows.pipeline.relax import relax_candidates
    from pccd_flows.stores.candidates import CandidateStore

    current = CURRENT_JOB.job
    return relax_candidates(candidates, engine, steps, fmax, CandidateStore(store),
                            task_uuid=current.uuid if current is not None else None)


@job
def gather_chunks(candidates: list[CandidateDoc], chunks: list[list[CandidateDoc] | None]) -> list[CandidateDoc]:
    """``candidates`` in order, each replaced by its relaxed version where a chunk relaxed it (a chunk that died
    is None: its candidates come back unrelaxed)."""
    relaxed = {}
    for chunk in chunks:
        for doc in chunk or []:
            doc = CandidateDoc.model_validate(doc) if isinstance(doc, dict) else doc
            relaxed[doc.candidate_id] = doc
    docs = [CandidateDoc.model_validate(c) if isinstance(c, dict) else c for c in candidates]
    return [relaxed.get(d.candidate_id, d) for d in docs]


@job
def collect_relaxations(candidates: list[CandidateDoc], results: dict, engine: str, store: Store | None = None,
                        settings: dict | None = None) -> list[CandidateDoc]:
    """Attach each VASP relaxation (or why there is none) to its candidate, with the ``settings`` it ran with
    (:func:`relaxation_settings`), and upsert them all."""
    from pccd_flows.stability.entries import EntryError, entry_from_vasp_task_doc
    from pccd_flows.stores.candidates import CandidateStore

    collected = []
    for doc in candidates:
        doc = CandidateDoc.model_validate(doc) if isinstance(doc, dict) else doc
        result = results.get(doc.candidate_id)
        if result is None:
            collected.append(doc)
            continue
        relaxation = RelaxationResult(**{**(settings or {}), "engine": engine}, task_uuid=result["uuid"])
        if result.get("task_doc") is None:
            relaxation.error = "relaxation failed (see its job in the job store / FireWorks)"
        else:
            try:
                entry = entry_from_vasp_task_doc(_task_doc(result["task_doc"]))
            except EntryError as exc:
                relaxation.error = str(exc)
            else:
                relaxation.structure = entry.structure.as_dict()
                relaxation.energy_per_atom = entry.energy_per_atom
                relaxation.uncorrected_energy_per_atom = entry.uncorrected_energy_per_atom
                relaxation.converged = bool(result["converged"])
        collected.append(with_relaxation(doc, relaxation))
    CandidateStore(store).upsert(collected)
    return collected


def _task_doc(output):
    from emmet.core.tasks import TaskDoc

    return output if isinstance(output, TaskDoc) else TaskDoc.model_validate(output)
