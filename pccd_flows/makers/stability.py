"""Stability job: energy above hull of a relaxed batch against the chosen reference phases; upsert every candidate."""

from __future__ import annotations

from dataclasses import dataclass

from jobflow import Maker, job
from maggma.core import Store

from pccd_flows.schemas.candidate import CandidateDoc


@dataclass
class StabilityMaker(Maker):
    name: str = "judge stability"
    reference: str | None = None
    engine: str = "chgnet"
    store: Store | None = None

    @job
    def make(self, candidates: list[CandidateDoc]):
        from pccd_flows.settings import get_settings
        from pccd_flows.stability.hull import HullCalculator, judge
        from pccd_flows.stability.references import reference_set
        from pccd_flows.stores.candidates import CandidateStore

        candidates = [CandidateDoc.model_validate(c) if isinstance(c, dict) else c for c in candidates]
        reference = self.reference or get_settings().reference
        judged = []
        for chemsys in sorted({c.chemsys for c in candidates}):
            batch = [c for c in candidates if c.chemsys == chemsys]
            if not any(c.relaxation and c.relaxation.energy_per_atom is not None for c in batch):
                judged += batch
                continue
            calculator = HullCalculator(reference_set(reference, chemsys.split("-"), self.engine))
            judged += judge(batch, calculator)
        judged = relaxed_novelty_against_mp(judged)
        CandidateStore(self.store).upsert(judged)
        return judged


def relaxed_novelty_against_mp(docs: list[CandidateDoc]) -> list[CandidateDoc]:
    """Novelty of the relaxed structures against MP (a new generated crystal can relax onto a known one); their
    uniqueness needs the whole run and is judged by `pccd report study`."""
    from pccd_flows.evaluation.novelty import known_structure_index, relaxed_novelty

    index = known_structure_index()
    return [doc.model_copy(update={"relaxed_novelty": relaxed_novelty(doc, index)})
            if doc.relaxation is not None and doc.relaxation.structure else doc for doc in docs]
