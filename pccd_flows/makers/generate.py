"""Generation job: sample and decode candidates for one chemical system, with full provenance."""

from __future__ import annotations

from dataclasses import dataclass

from jobflow import Maker, job

from pccd_flows.model.conditions import BandGapClass, MagneticClass
from pccd_flows.model.generate import SamplerSettings
from pccd_flows.settings import DEFAULT_REPULSION_RATIO, DEFAULT_SAMPLER_ETA, DEFAULT_SAMPLER_STEPS


@dataclass
class GenerateCandidatesMaker(Maker):
    """Generate ``n`` crystals of a chemical system with a PCCD checkpoint (default: the shipped one).

    Runs the sampler inside the job, so a FireWorks worker with a GPU (category ``generate``) can take it.
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
    composition: str | None = None  # exact cell composition, e.g. "Mg3CdO4"; its elements must be the chemsys

    @job
    def make(self, chemsys: str):
        from pccd_flows.model.checkpoint import load_model
        from pccd_flows.model.generate import GenerationConditions, generate
        from pccd_flows.schemas.candidate import CandidateDoc
        from pccd_flows.settings import get_settings

        conditions = GenerationConditions(elements=tuple(chemsys.split("-")), composition=self.composition,
                                          band_gap_class=self.band_gap_class, magnetic_class=self.magnetic_class)
        model, codec, payload = load_model(self.checkpoint or get_settings().checkpoint)
        sampler = SamplerSettings(sampler=self.sampler, steps=self.steps, guidance=self.guidance, eta=self.eta,
                                   repulsion_ratio=self.repulsion)
        crystals = generate(model, codec, payload, conditions, self.n, self.seed, sampler)
        return [CandidateDoc.from_generated(crystal) for crystal in crystals]
