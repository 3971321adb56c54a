"""Prefilter: validity, de-duplication (batch and store) and novelty, every reject recorded with its reason."""

from __future__ import annotations

import warnings

from pydantic import BaseModel, Field

from pccd_flows.schemas.candidate import CandidateDoc, PrefilterResult

# what later steps learnt about a candidate: a re-run regenerates the same candidates (same ids) and must keep it
LATER_FIELDS = ("relaxation", "stability", "e_above_hull", "judgements", "relaxed_novelty", "dft_check", "follow_up",
                "band_gap", "phonon_stable")


class PrefilterSettings(BaseModel):
    """What the prefilter requires of a candidate before it is relaxed."""

    check_novelty: bool = Field(True, description="Judge novelty against MP (StructureMatcher).")
    require_novel: bool = Field(False, description="Reject candidates that match an MP structure.")
    require_smact: bool = Field(True, description="Reject compositions SMACT cannot charge-balance (right for "
                                                  "ionic systems; off for intermetallics).")
    min_covalent_ratio: float | None = Field(None, description="Reject atoms closer than this fraction of the sum of "
                                                               "their covalent radii.")
    require_icsd_oxidation_states: bool = Field(False, description="Reject compositions without a charge balance "
                                                                   "in oxidation states seen in the ICSD.")


def prefilter(candidates: list[CandidateDoc], known: list[CandidateDoc], novelty_index=None,
              require_novel: bool = False, require_smact: bool = True, min_covalent_ratio: float | None = None,
              require_icsd_oxidation_states: bool = False) -> list[CandidateDoc]:
    """Judge each candidate; ``known`` are earlier candidates of the store (same chemical systems).

    ``min_covalent_ratio`` rejects atoms closer than that fraction of the sum of their covalent radii (a physical
    closest approach, stricter than the 0.5 A validity test); ``require_icsd_oxidation_states`` rejects
    compositions that cannot be charge-balanced with oxidation states seen in the ICSD. Uniqueness and novelty
    are judged only for candidates that pass these checks (None otherwise).
    """
    from pccd_flows.evaluation.metrics import (
        closest_covalent_ratio,
        compositional_validity,
        element_match,
        fits,
        icsd_charge_balanced,
        reduced_formula,
        structural_validity,
        structure_matcher,
    )

    matcher = structure_matcher()
    seen: list[tuple[str, object]] = [(doc.candidate_id, doc.generated_structure()) for doc in known
                                      if doc.prefilter.passed]
    judged = []
    for doc in candidates:
        structure = doc.generated_structure()
        result = PrefilterResult()
        if structure is None:
            result.passed, result.reject_reason = False, f"decoding failed: {doc.decode_error}"
            judged.append(doc.model_copy(update={"prefilter": result}))
            continue
        result.structurally_valid = structural_validity(structure)
        result.compositionally_valid = compositional_validity(structure.composition)
        result.closest_covalent_ratio = round(closest_covalent_ratio(structure), 4)
        if require_icsd_oxidation_states:
            result.icsd_charge_balanced = icsd_charge_balanced(structure.composition)
        result.element_match = element_match(structure, doc.provenance.conditions.elements)
        reasons = [reason for failed, reason in [
            (not result.structurally_valid, "atoms closer than 0.5 A or volume < 0.1 A^3"),
            (not result.element_match, "not exactly the requested elements"),
            (require_smact and not result.compositionally_valid, "not charge-balanced (SMACT)"),
            (min_covalent_ratio is not None and result.closest_covalent_ratio < min_covalent_ratio,
             f"atoms closer than {min_covalent_ratio} of their covalent radii"),
            (require_icsd_oxidation_states and not result.icsd_charge_balanced,
             "not charge-balanced with ICSD oxidation states"),
        ] if failed]
        if not reasons:  # StructureMatcher is the costly part: only for candidates still in the running
            formula = reduced_formula(structure)
            duplicate = next((cid for cid, other in seen if cid != doc.candidate_id and other is not None
                              and reduced_formula(other) == formula and fits(matcher, other, structure)), None)
            result.unique, result.duplicate_of = duplicate is None, duplicate
            if novelty_index is not None:
                result.matched_mp_id = novelty_index.find_match(structure)
                result.novel = result.matched_mp_id is None
            reasons = [reason for failed, reason in [
                (not result.unique, f"duplicate of {duplicate}"),
                (require_novel and result.novel is False, f"matches {result.matched_mp_id}"),
            ] if failed]
        result.passed = not reasons
        result.reject_reason = "; ".join(reasons) or None
        if result.passed:
            seen.append((doc.candidate_id, structure))
        judged.append(doc.model_copy(update={"prefilter": result}))
    return judged


def prefilter_against_store(candidates: list[CandidateDoc], store=None, settings: PrefilterSettings | None = None
                            ) -> list[CandidateDoc]:
    """Prefilter a batch against itself and the candidates already stored for its chemical systems.

    Parameters
    ----------
    candidates : list of CandidateDoc
        A generated batch.
    store : CandidateStore, optional
        The candidate store (default: the configured one). Its earlier candidates of the same systems count for
        uniqueness; a candidate it holds already (a re-run regenerates the same ids) keeps what later steps learnt
        about it (:data:`LATER_FIELDS`).
    settings : PrefilterSettings, optional
        The requirements; default: :class:`PrefilterSettings`'s.

    Returns
    -------
    list of CandidateDoc
        The batch with its prefilter verdicts, in order; not stored (the caller decides what to keep).
    """
    from pccd_flows.evaluation.novelty import known_structure_index
    from pccd_flows.stores.candidates import CandidateStore

    settings = settings or PrefilterSettings()
    store = store if isinstance(store, CandidateStore) else CandidateStore(store)
    ids = {c.candidate_id for c in candidates}
    stored = list(store.find({"chemsys": {"$in": sorted({c.chemsys for c in candidates})}}))
    known = [d for d in stored if d.candidate_id not in ids]
    previous = {d.candidate_id: d for d in stored if d.candidate_id in ids}
    candidates = [c.model_copy(update={k: getattr(previous[c.candidate_id], k) for k in LATER_FIELDS})
                  if c.candidate_id in previous else c for c in candidates]
    with warnings.catch_warnings():  # pymatgen warns for every noble gas it meets in SMACT's tables
        warnings.simplefilter("ignore")
        return prefilter(candidates, known, known_structure_index() if settings.check_novelty else None,
                         settings.require_novel, settings.require_smact, settings.min_covalent_ratio,
                         settings.require_icsd_oxidation_states)
