"""Energy above the convex hull of a reference set, with decomposition and stability flags."""

from __future__ import annotations

from collections.abc import Iterable

from pymatgen.analysis.phase_diagram import PhaseDiagram
from pymatgen.entries.computed_entries import ComputedEntry

from pccd_flows.schemas.candidate import CandidateDoc, StabilityResult
from pccd_flows.stability.engines import FORCE_FIELD_MODELS
from pccd_flows.stability.references import ReferenceError, ReferenceSet


class HullCalculator:
    """One phase diagram per reference set, reused for every candidate of its chemical system."""

    def __init__(self, references: ReferenceSet):
        self.references = references
        try:
            self.diagram = PhaseDiagram(references.entries)
        except ValueError as exc:
            raise ReferenceError(f"reference {references.name} for {references.chemsys}: {exc}") from exc

    def stability(self, entry: ComputedEntry) -> StabilityResult:
        elements = {el.symbol for el in entry.composition.elements}
        missing = elements - set(self.references.chemsys.split("-"))
        if missing:
            raise ReferenceError(f"{entry.composition.reduced_formula} has elements outside "
                                 f"{self.references.chemsys}: {', '.join(sorted(missing))}")
        decomposition, e_above_hull = self.diagram.get_decomp_and_e_above_hull(
            entry, allow_negative=True, check_stable=False)
        return StabilityResult.from_hull(
            float(e_above_hull),
            formation_energy_per_atom=float(self.diagram.get_form_energy_per_atom(entry)),
            decomposition={phase.composition.reduced_formula: round(float(f), 6)
                           for phase, f in decomposition.items()},
            reference=self.references.name,
            reference_fingerprint=self.references.fingerprint,
            engine=self.references.engine,
            model=FORCE_FIELD_MODELS.get(self.references.engine),
        )


def candidate_entry(doc: CandidateDoc) -> ComputedEntry | None:
    """The relaxed candidate as an entry on the MP scale (None if it was not relaxed)."""
    relaxation = doc.relaxation
    if relaxation is None or relaxation.energy_per_atom is None or not relaxation.structure:
        return None
    structure = doc.final_structure()
    return ComputedEntry(structure.composition, relaxation.energy_per_atom * len(structure), entry_id=doc.candidate_id)


def judge(docs: Iterable[CandidateDoc], calculator: HullCalculator) -> list[CandidateDoc]:
    """Attach the energy above hull to every relaxed candidate; others are returned unchanged."""
    judged = []
    for doc in docs:
        entry = candidate_entry(doc)
        judged.append(doc.with_stability(calculator.stability(entry)) if entry is not None else doc)
    return judged
