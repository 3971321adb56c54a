"""Candidate documents built from real generated-style structures (bundled MP crystals) with real provenance."""

from __future__ import annotations

import pytest

from pccd_flows.model.generate import GeneratedCrystal, GenerationConditions, Provenance, SamplerSettings
from pccd_flows.schemas.candidate import CandidateDoc, RelaxationResult, StabilityResult


def make_candidate(structure, index: int, seed: int = 0, e_above_hull: float | None = None,
                   novel: bool | None = None) -> CandidateDoc:
    elements = tuple(sorted({el.symbol for el in structure.composition.elements}))
    provenance = Provenance(checkpoint_sha256="0" * 64, seed=seed, index=index,
                            conditions=GenerationConditions(elements=elements), sampler=SamplerSettings())
    crystal = GeneratedCrystal(formula=structure.composition.reduced_formula, structure=structure.as_dict(),
                               provenance=provenance)
    doc = CandidateDoc.from_generated(crystal)
    doc.prefilter.novel = novel
    if e_above_hull is not None:
        doc.relaxation = RelaxationResult(engine="chgnet", structure=structure.as_dict(), energy_per_atom=-5.0)
        doc = doc.with_stability(StabilityResult.from_hull(e_above_hull, reference="mp-formation",
                                                           reference_fingerprint="f" * 16, engine="chgnet"))
    return doc


@pytest.fixture
def candidates(bundled_structures) -> list[CandidateDoc]:
    """Twelve candidates over a few chemical systems with a spread of energies above hull."""
    structures = [s for _, s in bundled_structures if len(s.composition.elements) >= 2][:12]
    return [make_candidate(s, i, e_above_hull=round(0.05 * (i - 2), 3), novel=i % 2 == 0)
            for i, s in enumerate(structures)]
