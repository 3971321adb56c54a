"""Prefilter job: validity, de-duplication (batch and store) and novelty, every reject recorded with its reason."""

from __future__ import annotations

from dataclasses import dataclass

from jobflow import Maker, job
from maggma.core import Store

from pccd_flows.pipeline.prefilter import PrefilterSettings, prefilter
from pccd_flows.schemas.candidate import CandidateDoc

__all__ = ["PrefilterMaker", "prefilter"]


@dataclass
class PrefilterMaker(Maker):
    """Validity, uniqueness against the batch and the candidate store, novelty against MP; upserts every candidate.

    A thin wrapper of :func:`pccd_flows.pipeline.prefilter_against_store`.

    Parameters
    ----------
    name : str
        The job's name.
    check_novelty, require_novel, require_smact, min_covalent_ratio, require_icsd_oxidation_states
        See :class:`~pccd_flows.pipeline.PrefilterSettings` (``require_smact``: off to screen intermetallics,
        which fail SMACT's charge balance by design).
    store : Store, optional
        The candidate store (resolved when the flow is made: a worker's cwd is its launch directory).
    """

    name: str = "prefilter candidates"
    check_novelty: bool = True
    require_novel: bool = False
    require_smact: bool = True
    min_covalent_ratio: float | None = None
    require_icsd_oxidation_states: bool = False
    store: Store | None = None

    def settings(self) -> PrefilterSettings:
        """The prefilter's requirements."""
        return PrefilterSettings(check_novelty=self.check_novelty, require_novel=self.require_novel,
                                 require_smact=self.require_smact, min_covalent_ratio=self.min_covalent_ratio,
                                 require_icsd_oxidation_states=self.require_icsd_oxidation_states)

    @job
    def make(self, candidates: list[CandidateDoc]) -> list[CandidateDoc]:
        """Judge and store a generated batch; returns it with its verdicts."""
        from pccd_flows.pipeline.prefilter import prefilter_against_store
        from pccd_flows.stores.candidates import CandidateStore

        store = CandidateStore(self.store)
        judged = prefilter_against_store(candidates, store, self.settings())
        store.upsert(judged)
        return judged
