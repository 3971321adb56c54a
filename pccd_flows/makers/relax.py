"""Relaxation: one atomate2 job per candidate (dynamic fan-out), a failure fizzles only its own candidate."""

from __future__ import annotations

import inspect
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


def relax_maker(engine: str, steps: int, fmax: float):
    """The atomate2 maker that relaxes candidates.

    Parameters
    ----------
    engine : str
        A force field of :data:`FORCE_FIELDS` or ``vasp``.
    steps, fmax : int, float
        Step limit and force criterion (eV/A) of a force-field relaxation; VASP runs MP's double relaxation.

    Returns
    -------
    Maker
        ``ForceFieldRelaxMaker`` or atomate2's ``MPGGADoubleRelaxStaticMaker``.
    """
    if check_engine(engine) == "vasp":
        return vasp_relax_maker()
    return force_field_maker(engine, RelaxSettings(steps=steps, fmax=fmax))


def relaxation_settings(engine: str, steps: int, fmax: float) -> dict:
    """What a relaxation with these arguments runs with, read from the maker that runs it.

    Parameters
    ----------
    engine : str
        ``chgnet``, ``sevennet`` (or another force field of :data:`FORCE_FIELDS`) or ``vasp``.
    steps, fmax : int, float
        The force-field relaxation's step limit and force criterion (eV/A); VASP ignores them.

    Returns
    -------
    dict
        ``engine``, ``model``, ``optimizer``, ``steps`` and ``fmax`` (see
        :data:`pccd_flows.schemas.candidate.RELAXATION_SETTINGS`), recorded on each
        :class:`RelaxationResult`: a stored relaxation is reused only when they all agree.
    """
    engine = check_engine(engine)
    maker = relax_maker(engine, steps, fmax)
    if engine == "vasp":  # MP's input sets fix the rest; the maker's name says which ones
        return {"engine": engine, "model": type(maker).__name__, "optimizer": None, "steps": None, "fmax": None}
    return {"engine": engine, "model": _force_field_model(maker),
            "optimizer": str((maker.optimizer_kwargs or {}).get("optimizer", _default_optimizer())),
            "steps": int(maker.steps), "fmax": float((maker.relax_kwargs or {}).get("fmax", fmax))}


def _default_optimizer() -> str:
    from atomate2.ase.utils import AseRelaxer

    return str(inspect.signature(AseRelaxer).parameters["optimizer"].default)


def _force_field_model(maker) -> str:
    """The potential and its model, as the calculator will load it: the model named in the maker's calculator
    arguments, else the calculator's default (CHGNet's ``CHGNet.load`` default, SevenNet's ``model``)."""
    # atomate2 turns the name into its MLFF enum ("MLFF.CHGNet" as a string): its value is the plain name
    mlff = getattr(maker, "mlff", None)
    name = str(getattr(mlff, "value", None) or maker.force_field_name).removeprefix("MLFF.")
    kwargs = maker.calculator_kwargs or {}
    model = kwargs.get("model") or kwargs.get("model_name") or kwargs.get("path")
    if model is None and name == "CHGNet":
        from chgnet.model import CHGNet

        model = inspect.signature(CHGNet.load).parameters["model_name"].default
    elif model is None and name == "SevenNet":
        from sevenn.sevennet_calculator import SevenNetCalculator

        model = inspect.signature(SevenNetCalculator).parameters["model"].default
    return f"{name} {model}" if model is not None else str(name)


def needs_relaxation(doc: CandidateDoc, settings: dict, retry_failed: bool = True) -> bool:
    """Whether a candidate that passed the prefilter must be relaxed (again) to have a relaxation with ``settings``.

    Parameters
    ----------
    doc : CandidateDoc
        The candidate, with the relaxation a previous run may have stored.
    settings : dict
        :func:`relaxation_settings` of this run.
    retry_failed : bool
        Relax again a candidate whose relaxation with these settings failed.

    Returns
    -------
    bool
        True when it has no relaxation, one with other (or unrecorded) settings, or a failed one to retry.
    """
    relaxation = doc.relaxation
    if relaxation is None or not relaxation.ran_with(settings):
        return True
    return retry_failed and relaxation.error is not None


# judged on the relaxed structure: stale once it is relaxed again (only those fields the schema has)
_FROM_THE_RELAXATION = ("stability", "e_above_hull", "judgements", "relaxed_novelty", "dft_check")


def with_relaxation(doc: CandidateDoc, relaxation: RelaxationResult) -> CandidateDoc:
    """The candidate with a new relaxation, and without what was judged on its previous one.

    Parameters
    ----------
    doc : CandidateDoc
        The candidate as stored.
    relaxation : RelaxationResult
        Its new relaxation.

    Returns
    -------
    CandidateDoc
        A copy; where it had a relaxation before, its hull placement, other judges' placements and relaxed novelty
        are cleared, as they describe a structure it no longer has.
    """
    update = {"relaxation": relaxation}
    if doc.relaxation is not None:
        fields = CandidateDoc.model_fields
        update.update({name: fields[name].get_default(call_default_factory=True)
                       for name in _FROM_THE_RELAXATION if name in fields})
    return doc.model_copy(update=update)


@dataclass
class RelaxCandidatesMaker(Maker):
    """Replace itself by one relaxation per candidate that passed the prefilter, plus a job that collects them.

    ``engine``: ``chgnet`` (default) or ``sevennet`` through ``ForceFieldRelaxMaker``, or ``vasp`` through
    atomate2's MP GGA double-relax + static flow. Candidates already relaxed with the same settings (engine, model,
    optimizer, steps, fmax: :func:`relaxation_settings`) are not relaxed again; a relaxation with other settings,
    or a failed one, is redone.
    """

    name: str = "relax candidates"
    engine: str = "chgnet"
    steps: int = 500
    fmax: float = 0.05
    category: str | None = RELAX_CATEGORY
    store: Store | None = None

    def relax_maker(self):
        return relax_maker(self.engine, self.steps, self.fmax)

    @job
    def make(self, candidates: list[CandidateDoc]):
        candidates = [CandidateDoc.model_validate(c) if isinstance(c, dict) else c for c in candidates]
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
            if self.engine in FORCE_FIELDS:
                results[doc.candidate_id] = {"uuid": relax_job.uuid, "energy": relax_job.output.output.energy,
                                             "structure": relax_job.output.structure,
                                             "converged": relax_job.output.is_force_converged}
            else:  # the MP2020 correction needs the whole VASP task document (run type, U values, POTCARs)
                results[doc.candidate_id] = {"uuid": relax_job.uuid, "task_doc": relax_job.output, "converged": True}
        collect = collect_relaxations(candidates, results, self.engine, self.store, settings)
        collect.config.on_missing_references = OnMissing.NONE
        return Response(replace=Flow([*jobs, collect], output=collect.output, name=self.name))


@job
def collect_relaxations(candidates: list[CandidateDoc], results: dict, engine: str, store: Store | None = None,
                        settings: dict | None = None):
    """Attach each relaxation (or why there is none) to its candidate, with the ``settings`` it ran with
    (:func:`relaxation_settings`), and upsert them all."""
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
        relaxation = RelaxationResult(**{**(settings or {}), "engine": engine}, task_uuid=result["uuid"])
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
        collected.append(with_relaxation(doc, relaxation))
    CandidateStore(store).upsert(collected)
    return collected


def _task_doc(output):
    from emmet.core.tasks import TaskDoc

    return output if isinstance(output, TaskDoc) else TaskDoc.model_validate(output)
