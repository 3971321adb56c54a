"""Builders of real test objects: known MP phases and candidate documents with real provenance."""

from __future__ import annotations

from pathlib import Path

from pymatgen.core import Structure

from pccd_flows.model.generate import GeneratedCrystal, GenerationConditions, Provenance, SamplerSettings
from pccd_flows.schemas.candidate import CandidateDoc, RelaxationResult, StabilityResult

KNOWN_PHASES = Path(__file__).parent / "fixtures" / "known_phases"


def known_phase(formula: str) -> Structure:
    """An MP ground state from tests/fixtures/known_phases (MgO, CaO, SnO2, ZnO, MgAl2O4, LiCoO2...)."""
    (path,) = KNOWN_PHASES.glob(f"{formula}_mp-*.cif")
    return Structure.from_file(path)


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
