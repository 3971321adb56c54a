"""Relaxation of candidates in chunks, with the potential loaded once per chunk, each outcome recorded on its
candidate with the settings it ran with."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Iterator, Sequence

from pccd_flows.schemas.candidate import CandidateDoc, RelaxationResult
from pccd_flows.stability.engines import (
    EngineResult,
    RelaxSettings,
    check_engine,
    force_field_maker,
)
from pccd_flows.stability.engines import (
    run_force_field as relax_structures,  # the one relaxation of the project
)


def vasp_relax_maker():
    """atomate2's MP-compatible GGA(+U) double relaxation + static (MPRelaxSet inputs), for HPC users with VASP."""
    from atomate2.vasp.flows.mp import MPGGADoubleRelaxStaticMaker

    return MPGGADoubleRelaxStaticMaker()


def relax_maker(engine: str, steps: int, fmax: float):
    """The atomate2 maker that relaxes candidates.

    Parameters
    ----------
    engine : str
        A force field of :data:`~pccd_flows.stability.engines.FORCE_FIELDS` or ``vasp``.
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
        ``chgnet``, ``sevennet`` (or another force field of ``FORCE_FIELDS``) or ``vasp``.
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
    return {"engine": engine, "model": force_field_model(maker),
            "optimizer": str((maker.optimizer_kwargs or {}).get("optimizer", default_optimizer())),
            "steps": int(maker.steps), "fmax": float((maker.relax_kwargs or {}).get("fmax", fmax))}


def default_optimizer() -> str:
    """The ASE optimizer atomate2's relaxer uses when none is given."""
    from atomate2.ase.utils import AseRelaxer

    return str(inspect.signature(AseRelaxer).parameters["optimizer"].default)


def force_field_model(maker) -> str:
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


def needs_relaxation(doc: CandidateDoc, settings: dict) -> bool:
    """Whether a candidate that passed the prefilter must be relaxed to have a relaxation with ``settings``.

    Parameters
    ----------
    doc : CandidateDoc
        The candidate, with the relaxation a previous run may have stored.
    settings : dict
        :func:`relaxation_settings` of this run.

    Returns
    -------
    bool
        True when it has no relaxation or one with other (or unrecorded) settings. A relaxation with these
        settings that failed is final (False): the same engine on the same structure fails the same way, and a
        resume must not pay for it again; a run with other settings relaxes it again.
    """
    relaxation = doc.relaxation
    return relaxation is None or not relaxation.ran_with(settings)


# judged on the relaxed structure: stale once it is relaxed again (only those fields the schema has)
FROM_THE_RELAXATION = ("stability", "e_above_hull", "judgements", "relaxed_novelty", "dft_check")


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
    return doc.model_copy(update=relaxation_update(doc, relaxation))


def relaxation_update(doc: CandidateDoc, relaxation: RelaxationResult) -> dict:
    """The fields :func:`with_relaxation` sets (for a patch of the stored document)."""
    update = {"relaxation": relaxation}
    if doc.relaxation is not None:
        fields = CandidateDoc.model_fields
        update.update({name: fields[name].get_default(call_default_factory=True)
                       for name in FROM_THE_RELAXATION if name in fields})
    return update


def chunked(items: Sequence, size: int) -> Iterator[list]:
    """Consecutive chunks of at most ``size`` items."""
    if size < 1:
        raise ValueError(f"chunk size {size}: must be at least 1")
    for start in range(0, len(items), size):
        yield list(items[start:start + size])


def relaxation_of(outcome: EngineResult, settings: dict, engine: str, entry_id: str | None = None,
                  task_uuid: str | None = None) -> RelaxationResult:
    """A force field's outcome as the candidate's :class:`RelaxationResult` (energy on the MP scale, or why not)."""
    from pccd_flows.stability.entries import EntryError, entry_from_force_field_doc

    fields = {**settings, "engine": engine, "task_uuid": task_uuid}
    if not outcome.ok:
        return RelaxationResult(**fields, error=outcome.error)
    try:
        entry = entry_from_force_field_doc(outcome.task_doc, engine, entry_id=entry_id)
    except EntryError as exc:
        return RelaxationResult(**fields, error=str(exc))
    # validated at construction: the structure becomes a plain dict (no numpy scalars)
    return RelaxationResult(**fields, structure=outcome.task_doc.output.structure,
                            energy_per_atom=entry.energy_per_atom,
                            uncorrected_energy_per_atom=entry.uncorrected_energy_per_atom,
                            converged=bool(getattr(outcome.task_doc, "is_force_converged", True)))


def relax_candidates(candidates: Sequence[CandidateDoc], engine: str = "chgnet", steps: int = 500,
                     fmax: float = 0.05, store=None, task_uuid: str | None = None) -> list[CandidateDoc]:
    """Relax a chunk of candidates on one loaded force field; each result is stored as soon as it is done.

    Parameters
    ----------
    candidates : sequence of CandidateDoc
        The chunk. Candidates that need no relaxation with these settings (:func:`needs_relaxation`, judged on
        the stored document where the store holds one: a chunk run again after an interruption) are returned as
        stored, not relaxed again.
    engine : str
        A force field (``chgnet``, ``sevennet``...).
    steps, fmax : int, float
        Step limit and force criterion (eV/A).
    store : CandidateStore or maggma Store, optional
        Where each relaxed candidate is written as it finishes (an interruption loses at most the one under way);
        ``None``: nothing is stored.
    task_uuid : str, optional
        Recorded on each relaxation: the uuid of the job that ran the chunk (default: a new uuid per call).

    Returns
    -------
    list of CandidateDoc
        The chunk in order, each with its relaxation (or its error) and without what was judged on an earlier
        relaxation.
    """
    from pccd_flows.stores.candidates import CandidateStore

    settings = relaxation_settings(engine, steps, fmax)
    candidates = [CandidateDoc.model_validate(c) if isinstance(c, dict) else c for c in candidates]
    store = None if store is None else store if isinstance(store, CandidateStore) else CandidateStore(store)
    if store is not None:  # the store knows best what is done
        stored = {d.candidate_id: d for d in store.find({"candidate_id": {"$in": [c.candidate_id for c in candidates]}})}
        candidates = [stored.get(c.candidate_id, c) for c in candidates]
    todo = [c for c in candidates if c.structure and needs_relaxation(c, settings)]
    task_uuid = task_uuid or str(uuid.uuid4())
    relaxed: dict[str, CandidateDoc] = {}
    docs = iter(todo)

    def record(outcome: EngineResult) -> None:
        doc = next(docs)
        relaxation = relaxation_of(outcome, settings, engine, doc.candidate_id, task_uuid)
        relaxed[doc.candidate_id] = with_relaxation(doc, relaxation)
        if store is not None:
            write_relaxation(store, doc, relaxation)

    relax_structures([c.generated_structure() for c in todo], engine, RelaxSettings(steps=steps, fmax=fmax),
                     progress=record)
    return [relaxed.get(c.candidate_id, c) for c in candidates]


def write_relaxation(store, doc: CandidateDoc, relaxation: RelaxationResult) -> None:
    """Set a candidate's relaxation in the store (read and written under one lock, so that fields other processes
    set meanwhile are kept); a candidate the store lacks is added whole."""
    if not store.patch({doc.candidate_id: relaxation_update(doc, relaxation)}):
        store.upsert([with_relaxation(doc, relaxation)])
