"""The whole screening chain as one jobflow Flow."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from jobflow import Flow, Maker
from maggma.core import Store

from pccd_flows.makers.generate import GenerateCandidatesMaker
from pccd_flows.makers.prefilter import PrefilterMaker
from pccd_flows.makers.relax import GENERATE_CATEGORY, RelaxCandidatesMaker
from pccd_flows.makers.stability import StabilityMaker


@dataclass
class ScreeningFlowMaker(Maker):
    """generate -> prefilter -> relax (one job per chunk of candidates) -> E_hull -> store, per chemical system.

    Parameters
    ----------
    name : str
        The flow's name.
    generate, prefilter, relax, stability : Maker
        The steps (:mod:`pccd_flows.makers`), each a thin wrapper of :mod:`pccd_flows.pipeline`.
    follow_up : Maker, optional
        A Maker whose ``make(candidates)`` runs on the judged candidates, e.g.
        :class:`~pccd_flows.makers.followup.FollowUpCandidatesMaker` (band structures and phonons of the ones under
        an E_hull threshold); ``None`` ends the flow at the store.
    """

    name: str = "pccd screening"
    generate: GenerateCandidatesMaker = field(default_factory=GenerateCandidatesMaker)
    prefilter: PrefilterMaker = field(default_factory=PrefilterMaker)
    relax: RelaxCandidatesMaker = field(default_factory=RelaxCandidatesMaker)
    stability: StabilityMaker = field(default_factory=StabilityMaker)
    follow_up: Maker | None = None

    def make(self, chemical_systems: list[str], store: Store | None = None) -> Flow:
        """The screening of ``chemical_systems`` (elements joined by ``-``).

        ``store``: the candidate store the jobs write to (default: the configured one, resolved now, so that
        workers in other directories or on other nodes write to the same place). The flow's output maps each
        system to its stability job's :class:`~pccd_flows.pipeline.JudgedCandidates`.
        """
        from pccd_flows.stores.config import candidate_store

        store = store if store is not None else candidate_store()
        prefilter, relax, stability = (maker if maker.store is not None else replace(maker, store=store)
                                       for maker in (self.prefilter, self.relax, self.stability))
        follow_up = self.follow_up
        inner = getattr(follow_up, "follow_up", None)  # FollowUpCandidatesMaker: its flows write to the same store
        if inner is not None and getattr(inner, "store", False) is None:
            follow_up = replace(follow_up, follow_up=replace(inner, store=store))
        jobs, outputs = [], {}
        for chemsys in chemical_systems:
            chemsys = "-".join(chemsys.replace(",", "-").split("-"))
            generated = self.generate.make(chemsys)
            generated.name = f"generate {chemsys}"
            generated.update_config({"manager_config": {"_category": GENERATE_CATEGORY}})
            filtered = prefilter.make(generated.output)
            filtered.name = f"prefilter {chemsys}"
            relaxed = relax.make(filtered.output)
            relaxed.name = f"relax {chemsys}"
            judged = stability.make(relaxed.output)
            judged.name = f"stability {chemsys}"
            jobs += [generated, filtered, relaxed, judged]
            if follow_up is not None:
                followed = follow_up.make(judged.output.candidates)
                followed.name = f"follow up {chemsys}"
                jobs.append(followed)
            outputs[chemsys] = judged.output
        return Flow(jobs, output=outputs, name=self.name)
