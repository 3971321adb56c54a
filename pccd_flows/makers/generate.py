"""Generation job: sample and decode candidates for one chemical system, with full provenance."""

from __future__ import annotations

from dataclasses import dataclass

from jobflow import Maker, job

from pccd_flows.schemas.candidate import CandidateDoc
from pccd_flows.schemas.provenance import BandGapClass, MagneticClass, SamplerSettings
from pccd_flows.settings import DEFAULT_REPULSION_RATIO, DEFAULT_SAMPLER_ETA, DEFAULT_SAMPLER_STEPS


@dataclass
class GenerateCandidatesMaker(Maker):
    """Generate ``n`` crystals of a chemical system with a PCCD checkpoint (default: the shipped one).

    A thin wrapper of :func:`pccd_flows.pipeline.generate_candidates`; runs the sampler inside the job, so a
    FireWorks worker with a GPU (category ``generate``) can take it.

    Parameters
    ----------
    name : str
        The job's name.
    checkpoint : str, optional
        Checkpoint path (default: the configured one).
    n, seed : int
        How many crystals, and their seed.
    sampler, steps, guidance, eta, repulsion : str, int, float, float, float
        Sampler settings (see :class:`~pccd_flows.schemas.provenance.SamplerSettings`).
    band_gap_class, magnetic_class : BandGapClass, MagneticClass
        Property conditions.
    composition : str, optional
        An exact cell composition, e.g. ``Mg3CdO4``; its elements must be the chemical system's.
    """

    name: str = "generate candidates"
    checkpoint: str | None = None
    n: int = 16
    seed: int = 0
    # plain fields, not a SamplerSettings: Maker fields must survive MSON serialisation into FireWorks specs
    sampler: str = "ddim"
    steps: int = DEFAULT_SAMPLER_STEPS
    guidance: float = 1.0
    eta: float = DEFAULT_SAMPLER_ETA
    repulsion: float = DEFAULT_REPULSION_RATIO
    band_gap_class: BandGapClass = BandGapClass.unknown
    magnetic_class: MagneticClass = MagneticClass.unknown
    composition: str | None = None

    def sampler_settings(self) -> SamplerSettings:
        """The sampler these fields describe."""
        return SamplerSettings(sampler=self.sampler, steps=self.steps, guidance=self.guidance, eta=self.eta,
                               repulsion_ratio=self.repulsion)

    @job
    def make(self, chemsys: str) -> list[CandidateDoc]:
        """Generate the crystals of ``chemsys`` (elements joined by ``-``); nothing is stored yet."""
        from pccd_flows.pipeline.generate import generate_candidates

        return generate_candidates(chemsys, self.n, self.seed, self.sampler_settings(), self.checkpoint,
                                   self.composition, self.band_gap_class, self.magnetic_class)
