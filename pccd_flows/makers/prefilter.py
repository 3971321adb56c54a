"""Prefilter job: validity, de-duplication (batch and store) and novelty, every reject recorded with its reason."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from jobflow import Maker, job
from maggma.core import Store

from pccd_flows.schemas.candidate import CandidateDoc, PrefilterResult


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


@dataclass
class PrefilterMaker(Maker):
    """Validity, uniqueness against the batch and the candidate store, novelty against MP; upserts every candidate.

    ``require_smact`` rejects compositions SMACT cannot charge-balance (right for oxides and other ionic systems;
    switch it off to screen intermetallics, which fail it by design).
    """

    name: str = "prefilter candidates"
    check_novelty: bool = True
    require_novel: bool = False
    require_smact: bool = True
    min_covalent_ratio: float | None = None
    require_icsd_oxidation_states: bool = False
    store: Store | None = None  # resolved when the flow is made (a worker's cwd is its launch directory)

    @job
    def make(self, candidates: list[CandidateDoc]):
        from pccd_flows.evaluation.novelty import known_structure_index
        from pccd_flows.stores.candidates import CandidateStore

        candidates = [CandidateDoc.model_validate(c) if isinstance(c, dict) else c for c in candidates]
        store = CandidateStore(self.store)
        systems = sorted({c.chemsys for c in candidates})
        ids = {c.candidate_id for c in candidates}
        stored = list(store.find({"chemsys": {"$in": systems}}))
        known = [d for d in stored if d.candidate_id not in ids]
        # a re-run regenerates the same candidates: keep what later steps already learnt about them
        later = ("relaxation", "stability", "e_above_hull", "follow_up", "band_gap", "phonon_stable")
        previous = {d.candidate_id: d for d in stored if d.candidate_id in ids}
        candidates = [c.model_copy(update={k: getattr(previous[c.candidate_id], k) for k in later})
                      if c.candidate_id in previous else c for c in candidates]
        with warnings.catch_warnings():  # pymatgen warns for every noble gas it meets in SMACT's tables
            warnings.simplefilter("ignore")
            judged = prefilter(candidates, known, known_structure_index() if self.check_novelty else None,
                               self.require_novel, self.require_smact, self.min_covalent_ratio,
                               self.require_icsd_oxidation_states)
        store.upsert(judged)
        return judged
