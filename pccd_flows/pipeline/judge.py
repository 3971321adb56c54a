"""Judging relaxed candidates: energy above the hull of the chosen reference phases, and relaxed novelty."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from pydantic import BaseModel, Field

from pccd_flows.schemas.candidate import CandidateDoc


class JudgedCandidates(BaseModel):
    """What a judging step did: the candidates (judged where they could be) and each chemical system without a hull."""

    candidates: list[CandidateDoc] = Field(default_factory=list)
    reference_errors: dict[str, str] = Field(
        default_factory=dict, description="Chemical system -> why it has no hull; its candidates stay unjudged.")


def judge_candidates(candidates: Sequence[CandidateDoc], reference: str | None = None, engine: str = "chgnet",
                     settings=None, relaxed_novelty: bool = True) -> JudgedCandidates:
    """Place every relaxed candidate on the convex hull of its chemical system's reference phases.

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

    Returns
    -------
    JudgedCandidates
        The candidates in order; a chemical system whose references cannot be had (no data, no MP key, no
        network) is recorded in ``reference_errors`` and its candidates stay unjudged, the others are judged.
    """
    from pccd_flows.settings import get_settings
    from pccd_flows.stability.hull import judge

    reference = reference or (settings or get_settings()).reference
    docs = [CandidateDoc.model_validate(c) if isinstance(c, dict) else c for c in candidates]
    relaxed = [d for d in docs if d.relaxation is not None and d.relaxation.energy_per_atom is not None]
    hulls, errors = reference_hulls([d.chemsys for d in relaxed], reference, engine, settings)
    judged: dict[str, CandidateDoc] = {}
    for chemsys, calculator in hulls.items():
        judged.update((d.candidate_id, d) for d in judge([d for d in relaxed if d.chemsys == chemsys], calculator))
    docs = [judged.get(d.candidate_id, d) for d in docs]
    if relaxed_novelty:
        docs = with_relaxed_novelty(docs)
    return JudgedCandidates(candidates=docs, reference_errors=errors)


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
    fields = ("stability", "e_above_hull", "relaxed_novelty", "last_updated")
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
