"""maggma builder that keeps every candidate's energy above hull in step with its reference phases."""

from __future__ import annotations

from collections.abc import Iterator

from maggma.core import Builder, Store

from pccd_flows.schemas.candidate import CandidateDoc
from pccd_flows.settings import PccdSettings
from pccd_flows.stability.hull import HullCalculator, judge
from pccd_flows.stability.references import ReferenceError, reference_set
from pccd_flows.stores.candidates import KEY, _strip, candidate_row


class HullBuilder(Builder):
    """Recompute E_hull for each chemical system whose candidates were judged against other reference phases.

    Incremental: a candidate is processed only when its ``stability.reference_fingerprint`` differs from the current
    reference set's (new candidates, a new reference source or engine, or changed reference energies).
    """

    def __init__(self, candidates: Store, reference: str = "mp-formation", engine: str = "chgnet",
                 settings: PccdSettings | None = None, **kwargs):
        self.candidates = candidates
        self.reference = reference
        self.engine = engine
        self.settings = settings
        super().__init__(sources=[candidates], targets=[candidates], **kwargs)

    def get_items(self) -> Iterator[dict]:
        relaxed = {"relaxation.energy_per_atom": {"$ne": None}, "relaxation.engine": self.engine}
        for chemsys in sorted(self.candidates.distinct("chemsys", relaxed)):
            try:
                references = reference_set(self.reference, chemsys.split("-"), self.engine, self.settings)
            except ReferenceError as exc:
                self.logger.error("skipping %s: %s", chemsys, exc)
                continue
            stale = list(self.candidates.query(
                {**relaxed, "chemsys": chemsys, "stability.reference_fingerprint": {"$ne": references.fingerprint}}))
            if stale:
                yield {"references": references, "docs": [CandidateDoc.model_validate(_strip(r)) for r in stale]}

    def process_item(self, item: dict) -> list[dict]:
        calculator = HullCalculator(item["references"])
        return [candidate_row(doc) for doc in judge(item["docs"], calculator)]

    def update_targets(self, items: list[list[dict]]) -> None:
        rows = [row for batch in items for row in batch]
        if rows:
            self.candidates.update(rows, key=KEY)

