"""Relaxation: one atomate2 job per candidate (dynamic fan-out), a failure fizzles only its own candidate."""

from __future__ import annotations

from dataclasses import dataclass

from jobflow import Flow, Maker, OnMissing, Response, job
from maggma.core import Store

from pccd_flows.schemas.candidate import CandidateDoc, RelaxationResult
from pccd_flows.stability.engines import FORCE_FIELDS, RelaxSettings, check_engine, force_field_maker

# FireWorks worker categories: GPU nodes generate, CPU nodes relax (see launchpad_config/my_fworker.yaml)
RELAX_CATEGORY = "relax"
GENERATE_CATEGORY = "generate"


def vasp_relax_maker():
    """atomate2's MP-compatible GGA(+U) double relaxation + static (MPRelaxSet inputs), for HPC users with VASP."""
    from atomate2.vasp.flows.mp import MPGGADoubleRelaxStaticMaker

    return MPGGADoubleRelaxStaticMaker()


@dataclass
class RelaxCandidatesMaker(Maker):
    """Replace itself by one relaxation per candidate that passed the prefilter, plus a job that collects them.

    ``engine``: ``chgnet`` (default) or ``sevennet`` through ``ForceFieldRelaxMaker``, or ``vasp`` through
    atomate2's MP GGA double-relax + static flow. Candidates already relaxed with the engine are not relaxed again.
    """

    name: str = "relax candidates"
    engine: str = "chgnet"
    steps: int = 500
    fmax: float = 0.05
    category: str | None = RELAX_CATEGORY
    store: Store | None = None

    def relax_maker(self):
        if check_engine(self.engine) == "vasp":
            return vasp_relax_maker()
        return force_field_maker(self.engine, RelaxSettings(steps=self.steps, fmax=self.fmax))

    @job
    def make(self, candidates: list[CandidateDoc]):
        candidates = [CandidateDoc.model_validate(c) if isinstance(c, dict) else c for c in candidates]
        jobs, results = [], {}
        for doc in candidates:
            done = doc.relaxation is not None and doc.relaxation.engine == self.engine and doc.relaxation.error is None
            if not doc.prefilter.passed or done:
                continue
            relax_job = self.relax_maker().make(doc.generated_structure())
            relax_job.name = f"relax {doc.formula} {doc.candidate_id}"
            if self.category:
                relax_job.update_config({"manager_config": {"_category": self.category}})
            jobs.append(relax_job)
            if self.engine in FORCE_FIELDS:
                results[doc.candidate_id] = {"uuid": relax_job.uuid, "energy": relax_job.output.output.energy,
                                             "structure": relax_job.output.structure,
                                             "converged": relax_job.output.is_force_converged}
            else:  # the MP2020 correction needs the whole VASP task document (run type, U values, POTCARs)
                results[doc.candidate_id] = {"uuid": relax_job.uuid, "task_doc": relax_job.output, "converged": True}
        collect = collect_relaxations(candidates, results, self.engine, self.store)
        collect.config.on_missing_references = OnMissing.NONE
        return Response(replace=Flow([*jobs, collect], output=collect.output, name=self.name))


@job
def collect_relaxations(candidates: list[CandidateDoc], results: dict, engine: str, store: Store | None = None):
    """Attach each relaxation (or why there is none) to its candidate and upsert them all."""
    from pymatgen.core import Structure

    from pccd_flows.stability.entries import EntryError, entry_from_vasp_task_doc, force_field_entry
    from pccd_flows.stores.candidates import CandidateStore

    collected = []
    for doc in candidates:
        doc = CandidateDoc.model_validate(doc) if isinstance(doc, dict) else doc
        result = results.get(doc.candidate_id)
        if result is None:
            collected.append(doc)
            continue
        relaxation = RelaxationResult(engine=engine, task_uuid=result["uuid"])
        failed = result.get("task_doc") is None if engine == "vasp" else result.get("energy") is None
        if failed:
            relaxation.error = "relaxation failed (see its job in the job store / FireWorks)"
        else:
            try:
                if engine == "vasp":
                    entry = entry_from_vasp_task_doc(_task_doc(result["task_doc"]))
                    structure = entry.structure
                else:
                    structure = result["structure"]
                    structure = structure if isinstance(structure, Structure) else Structure.from_dict(structure)
                    entry = force_field_entry(structure, result["energy"], engine)
            except EntryError as exc:
                relaxation.error = str(exc)
            else:
                relaxation.structure = structure.as_dict()
                relaxation.energy_per_atom = entry.energy_per_atom
                relaxation.uncorrected_energy_per_atom = entry.uncorrected_energy_per_atom
                relaxation.converged = bool(result["converged"])
        collected.append(doc.model_copy(update={"relaxation": relaxation}))
    CandidateStore(store).upsert(collected)
    return collected


def _task_doc(output):
    from emmet.core.tasks import TaskDoc

    return output if isinstance(output, TaskDoc) else TaskDoc.model_validate(output)
