"""Judging relaxed candidates: energy above the hull of the chosen reference phases, and relaxed novelty."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

from pydantic import BaseModel, Field

from pccd_flows.schemas.candidate import CandidateDoc


class JudgedCandidates(BaseModel):
    """What a judging step did: the candidates (judged where they could be) and each chemical system without a hull."""

    candidates: list[CandidateDoc] = Field(default_factory=list)
    reference_errors: dict[str, str] = Field(
        default_factory=dict, description="Chemical system -> why it has no hull; its candidates stay unjudged.")
    confirmation_errors: dict[str, str] = Field(
        default_factory=dict, description="Candidate id -> why a confirming force field has no verdict on it "
                                          "(its relaxation failed): its verdict is the engine's alone.")


def judge_candidates(candidates: Sequence[CandidateDoc], reference: str | None = None, engine: str = "chgnet",
                     settings=None, relaxed_novelty: bool = True, confirm_with: str | list[str] | None = None,
                     confirm_below: float | None = None, confirm_from: str | None = None) -> JudgedCandidates:
    """Place every relaxed candidate on the convex hull of its chemical system's reference phases, confirmed by
    other force fields.

    A candidate's verdict is the highest E_hull of ``engine`` and each force field of ``confirm_with`` (so it is
    stable at a threshold only when all agree), see :func:`confirm_candidates`; each one's own E_hull is kept in
    ``CandidateDoc.judgements`` and the combined one in ``stability`` (its ``engine`` names them, e.g.
    ``chgnet+sevennet``).

    Parameters
    ----------
    candidates : sequence of CandidateDoc
        Any candidates; those without a relaxed energy are returned unchanged.
    reference : str, optional
        ``mp-structures``, ``mp-formation`` or ``mp-api`` (default: the configured one).
    engine : str
        The engine whose energies the reference phases are computed with (the candidates' relaxation engine).
    settings : PccdSettings, optional
        Where reference data and caches are (default: the configured settings).
    relaxed_novelty : bool
        Also judge the relaxed structures' novelty against MP (a new generated crystal can relax onto a known one).
    confirm_with : str or list of str, optional
        Force fields that must agree (``sevennet``; ``none``); default: the configured ``confirm_with``. Ignored
        when ``engine`` is not a force field (VASP is its own check).
    confirm_below : float, optional
        Only candidates ``engine`` puts at most this far above the hull (eV/atom) are confirmed; default: the
        configured ``confirm_below``.
    confirm_from : str, optional
        ``generated`` or ``relaxed``: the structure the confirming force fields relax (default: the configured
        ``confirm_from``).

    Returns
    -------
    JudgedCandidates
        The candidates in order; a chemical system whose references cannot be had (no data, no MP key, no
        network) is recorded in ``reference_errors`` and its candidates stay unjudged, the others are judged.
    """
    from pccd_flows.settings import get_settings
    from pccd_flows.stability.hull import judge

    settings = settings or get_settings()
    reference = reference or settings.reference
    docs = [CandidateDoc.model_validate(c) if isinstance(c, dict) else c for c in candidates]
    relaxed = [d for d in docs if d.relaxation is not None and d.relaxation.energy_per_atom is not None]
    # a relaxation's own verdict against these references stands (a new relaxation drops it, makers/relax.py):
    # judging a store again for a confirmation must not recompute every reference energy of the first engine
    relaxed = [d for d in relaxed if d.own_stability is None or (d.own_stability.reference, d.own_stability.engine)
               != (reference, engine)]
    hulls, errors = reference_hulls([d.chemsys for d in relaxed], reference, engine, settings)
    judged: dict[str, CandidateDoc] = {}
    for chemsys, calculator in hulls.items():
        judged.update((d.candidate_id, d) for d in judge([d for d in relaxed if d.chemsys == chemsys], calculator))
    docs = [judged.get(d.candidate_id, d) for d in docs]
    confirm, below, start = confirmation(engine, confirm_with, confirm_below, confirm_from, settings)
    failed: dict[str, str] = {}
    if confirm:
        docs, confirm_errors, failed = confirm_candidates(docs, confirm, below, reference, settings, start=start)
        errors.update({chemsys: error for chemsys, error in confirm_errors.items() if chemsys not in errors})
    if relaxed_novelty:
        docs = with_relaxed_novelty(docs)
    return JudgedCandidates(candidates=docs, reference_errors=errors, confirmation_errors=failed)


def confirmation(engine: str, confirm_with: str | list[str] | None = None, confirm_below: float | None = None,
                 confirm_from: str | None = None, settings=None) -> tuple[list[str], float, str]:
    """The confirming force fields of ``engine``'s verdicts, their window (eV/atom) and start structure: the given
    values, else the configured ones; none for an engine that is not a force field (VASP is its own check)."""
    from pccd_flows.settings import get_settings, parse_engines
    from pccd_flows.stability.engines import FORCE_FIELDS

    settings = settings or get_settings()
    engines = settings.confirm_engines if confirm_with is None else parse_engines(confirm_with)
    engines = [e for e in engines if e != engine] if engine in FORCE_FIELDS else []
    return (engines, settings.confirm_below if confirm_below is None else confirm_below,
            confirm_from or settings.confirm_from)


def confirm_candidates(candidates: Sequence[CandidateDoc], engines: Sequence[str], below: float = math.inf,
                       reference: str = "mp-structures", settings=None, progress=None, on_result=None,
                       start: str = "generated") -> tuple[list[CandidateDoc], dict[str, str], dict[str, str]]:
    """Second opinions: relax each judged candidate's generated (or relaxed) structure with every force field of
    ``engines`` (the step limit and force criterion of its own relaxation), judge it on that force field's own hull,
    keep the verdict in ``judgements`` and make ``stability`` the highest E_hull of all.

    Measured on the 746 study against GPAW PBE (docs/stability.md): CHGNet's "stable at 0.1 eV/atom" held for
    little more than half of its calls, far more often where SevenNet-0 agreed. A verdict stored already (same
    reference phases) is reused.

    Parameters
    ----------
    candidates : sequence of CandidateDoc
        Candidates; those without a ``stability`` (or with an error) are returned unchanged.
    engines : sequence of str
        Force fields of :data:`~pccd_flows.stability.engines.FORCE_FIELDS`.
    below : float
        Only candidates whose own engine's E_hull is at most this (eV/atom) are confirmed.
    reference : str
        Reference phases (the same as the first verdict's).
    settings : PccdSettings, optional
        Where reference data and caches are.
    progress : callable, optional
        Called with 1 per confirming relaxation done.
    on_result : callable, optional
        Called with each candidate as soon as a force field's verdict is on it (to store it at once).
    start : str
        ``generated``: relax the generated structure, a judge independent of the first (the more precise
        rule against DFT); ``relaxed``: the first engine's relaxed structure, the crystal the DFT check computes.

    Returns
    -------
    tuple
        ``(candidates in order, {chemsys: reference error}, {candidate_id: relaxation error})``.
    """
    from pccd_flows.pipeline.relax import relax_structures
    from pccd_flows.stability.engines import RelaxSettings, check_engine
    from pccd_flows.stability.entries import entry_from_force_field_doc

    docs = list(candidates)
    reference_errors: dict[str, str] = {}
    failed: dict[str, str] = {}
    for engine in engines:
        engine = check_engine(engine)
        wanted = [i for i, d in enumerate(docs) if d.stability is not None and d.structure
                  and d.own_stability.e_above_hull <= below + 1e-9]
        hulls, errors = reference_hulls([docs[i].chemsys for i in wanted], reference, engine, settings)
        reference_errors.update({c: f"no {engine} hull to confirm with: {e}" for c, e in errors.items()})
        todo = [i for i in wanted if docs[i].chemsys in hulls and not _verdict_holds(docs[i], engine, hulls, start)]
        # group by the first relaxation's settings, so both force fields relax alike
        groups: dict[tuple[int, float], list[int]] = {}
        for i in todo:
            relaxation = docs[i].relaxation
            key = (relaxation.steps or RelaxSettings.steps, relaxation.fmax or RelaxSettings.fmax)
            groups.setdefault(key, []).append(i)
        for (steps, fmax), indices in groups.items():
            pending = iter(indices)

            def record(outcome, engine=engine, pending=pending, hulls=hulls) -> None:
                i = next(pending)
                doc = docs[i]
                if outcome.ok:
                    entry = entry_from_force_field_doc(outcome.task_doc, engine, entry_id=doc.candidate_id)
                    verdict = hulls[doc.chemsys].stability(entry)
                    if start == "relaxed":
                        verdict.relaxed_from = start
                    docs[i] = doc.model_copy(update={"judgements": {**doc.judgements, engine: verdict}})
                    if on_result is not None:
                        on_result(docs[i])
                else:
                    failed[doc.candidate_id] = f"{engine}: {outcome.error}"
                if progress is not None:
                    progress(1)

            relax_structures([docs[i].generated_structure() if start == "generated" else docs[i].final_structure()
                              for i in indices], engine,
                             RelaxSettings(steps=steps, fmax=fmax), progress=record)
    return [with_consensus(d, engines) for d in docs], reference_errors, failed


def needs_judging(doc: CandidateDoc, reference: str, confirm_with: str | list[str] | None = None,
                  confirm_below: float | None = None, settings=None, confirm_from: str | None = None) -> bool:
    """Whether a relaxed candidate's verdict is missing, against other reference phases, or not by the judges
    configured now (confirmed where it should be, by those force fields and no others).

    Parameters
    ----------
    doc : CandidateDoc
        A relaxed candidate.
    reference : str
        The reference phases its verdict should be against.
    confirm_with, confirm_below, confirm_from
        As for :func:`judge_candidates` (default: the configured ones).
    settings : PccdSettings, optional
        Where the defaults are read.
    """
    if doc.stability is None or doc.stability.reference != reference:
        return True
    own = doc.own_stability
    confirm, below, start = confirmation(own.engine, confirm_with, confirm_below, confirm_from, settings)
    expected = [own.engine, *(confirm if own.e_above_hull <= below + 1e-9 else [])]
    return doc.stability.engine.split("+") != expected or any(
        doc.judgements[e].start != start for e in expected[1:])


def _verdict_holds(doc: CandidateDoc, engine: str, hulls: dict, start: str) -> bool:
    verdict = doc.judgements.get(engine)
    return (verdict is not None and verdict.reference_fingerprint == hulls[doc.chemsys].references.fingerprint
            and verdict.start == start)


def with_consensus(doc: CandidateDoc, engines: Sequence[str]) -> CandidateDoc:
    """``stability`` as the highest E_hull of the candidate's own engine and those of ``engines`` that judged it
    (stable at a threshold only where all are under it); the own engine's verdict is kept in ``judgements``."""
    from pccd_flows.schemas.candidate import StabilityResult

    own = doc.own_stability
    if own is None:
        return doc
    agreeing = [e for e in engines if e in doc.judgements and e != own.engine]
    if not agreeing:
        return doc.with_stability(own) if own is not doc.stability else doc
    verdicts = [own, *(doc.judgements[e] for e in agreeing)]
    combined = StabilityResult.from_hull(
        max(v.e_above_hull for v in verdicts),
        formation_energy_per_atom=own.formation_energy_per_atom, decomposition=own.decomposition,
        reference=own.reference, reference_fingerprint=own.reference_fingerprint,
        engine="+".join(v.engine for v in verdicts), model="+".join(v.model or v.engine for v in verdicts))
    doc = doc.model_copy(update={"judgements": {**doc.judgements, own.engine: own}})
    return doc.with_stability(combined)


def reference_hulls(chemical_systems: Sequence[str], reference: str, engine: str, settings=None
                    ) -> tuple[dict, dict[str, str]]:
    """The convex hull of each chemical system's reference phases, or why there is none.

    Parameters
    ----------
    chemical_systems : sequence of str
        Systems (elements joined by ``-``, sorted), repeats allowed.
    reference, engine : str
        Reference phases and the engine their energies are computed with (cached in the reference store).
    settings : PccdSettings, optional
        Where reference data and caches are.

    Returns
    -------
    tuple
        ``({chemsys: HullCalculator}, {chemsys: error})``: a reference error is recorded, not raised.
    """
    from pccd_flows.stability.hull import HullCalculator
    from pccd_flows.stability.references import ReferenceError, reference_set

    hulls, errors = {}, {}
    for chemsys in sorted(set(chemical_systems)):
        try:
            with warnings.catch_warnings():  # pymatgen's warnings per reference entry
                warnings.simplefilter("ignore")
                hulls[chemsys] = HullCalculator(reference_set(reference, chemsys.split("-"), engine, settings))
        except ReferenceError as exc:
            errors[chemsys] = str(exc)
    return hulls, errors


def with_relaxed_novelty(docs: list[CandidateDoc]) -> list[CandidateDoc]:
    """Novelty of the relaxed structures against MP; their uniqueness needs the whole run and is judged by
    `pccd report study`."""
    from pccd_flows.evaluation.novelty import known_structure_index, relaxed_novelty

    if not any(d.relaxation is not None and d.relaxation.structure for d in docs):
        return docs
    index = known_structure_index()
    return [doc.model_copy(update={"relaxed_novelty": relaxed_novelty(doc, index)})
            if doc.relaxation is not None and doc.relaxation.structure else doc for doc in docs]


def write_judgements(store, docs: Sequence[CandidateDoc]) -> None:
    """Set the hull placement and relaxed novelty of judged candidates in the store (under one lock, keeping what
    other processes set meanwhile); candidates the store lacks are added whole."""
    from pccd_flows.stores.candidates import CandidateStore

    store = store if isinstance(store, CandidateStore) else CandidateStore(store)
    fields = ("stability", "e_above_hull", "judgements", "relaxed_novelty", "last_updated")
    updates = {d.candidate_id: {name: getattr(d, name) for name in fields} for d in docs}
    patched = store.ids({"candidate_id": {"$in": list(updates)}})
    store.patch({cid: update for cid, update in updates.items() if cid in patched})
    store.upsert([d for d in docs if d.candidate_id not in patched])


def unjudged_reasons(candidates: Sequence[CandidateDoc], reference: str, engine: str, settings=None
                     ) -> dict[str, str]:
    """Why relaxed candidates have no hull placement against ``reference``, per chemical system: the reference
    error met now (references are cached, so this is cheap where they exist), else that they were not judged yet.

    Parameters
    ----------
    candidates : sequence of CandidateDoc
        Candidates of a run.
    reference, engine : str
        The run's reference phases and engine.
    settings : PccdSettings, optional
        See :func:`judge_candidates`.

    Returns
    -------
    dict
        Chemical system -> reason, for each system with a relaxed candidate that has no placement against
        ``reference``; empty when every relaxed candidate is judged.
    """
    from pccd_flows.stability.references import ReferenceError, reference_set

    systems = sorted({d.chemsys for d in candidates if d.relaxation is not None
                      and d.relaxation.energy_per_atom is not None
                      and (d.stability is None or d.stability.reference != reference)})
    reasons = {}
    for chemsys in systems:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                reference_set(reference, chemsys.split("-"), engine, settings)
        except ReferenceError as exc:
            reasons[chemsys] = str(exc)
        else:
            reasons[chemsys] = "relaxed candidates not judged yet (interrupted before their stability job)"
    return reasons
