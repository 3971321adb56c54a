"""Relax structures with an engine and judge them against reference phases: the `pccd ehull` pipeline."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pydantic import BaseModel
from pymatgen.core import Structure

from pccd_flows.settings import PccdSettings
from pccd_flows.stability.engines import RelaxSettings, run_force_field
from pccd_flows.stability.entries import entry_from_force_field_doc
from pccd_flows.stability.hull import HullCalculator
from pccd_flows.stability.references import ReferenceError, reference_set


class HullResult(BaseModel):
    source: str
    formula: str
    energy_per_atom: float | None = None
    e_above_hull: float | None = None
    formation_energy_per_atom: float | None = None
    decomposition: dict[str, float] = {}
    stable_at: dict[str, bool] = {}
    relaxed_structure: dict | None = None
    error: str | None = None


class HullReport(BaseModel):
    reference: str
    engine: str
    relaxed: bool
    reference_fingerprints: dict[str, str]
    results: list[HullResult]


def hull_calculators(chemical_systems: Sequence[str], reference: str, engine: str,
                     settings: PccdSettings | None = None) -> dict[str, HullCalculator]:
    return {chemsys: HullCalculator(reference_set(reference, chemsys.split("-"), engine, settings))
            for chemsys in sorted(set(chemical_systems))}


def energy_above_hull(structures: Sequence[tuple[str, Structure]], engine: str = "chgnet",
                      reference: str = "mp-formation", relax: RelaxSettings | None = None,
                      settings: PccdSettings | None = None, progress: Callable[[int], None] | None = None,
                      ) -> HullReport:
    """Energy above hull of each (source, structure); a structure that fails keeps its row with the error."""
    relax = relax or RelaxSettings()
    chemsys_of = {source: "-".join(sorted({el.symbol for el in s.composition.elements})) for source, s in structures}
    calculators = hull_calculators(chemsys_of.values(), reference, engine, settings)
    results = []
    for source, structure in structures:
        outcome = run_force_field([structure], engine, relax)[0]
        row = HullResult(source=source, formula=structure.composition.reduced_formula)
        if not outcome.ok:
            row.error = outcome.error
        else:
            entry = entry_from_force_field_doc(outcome.task_doc, engine, entry_id=source)
            try:
                stability = calculators[chemsys_of[source]].stability(entry)
            except ReferenceError as exc:
                row.error = str(exc)
            else:
                row = row.model_copy(update={
                    "energy_per_atom": entry.energy_per_atom, "e_above_hull": stability.e_above_hull,
                    "formation_energy_per_atom": stability.formation_energy_per_atom,
                    "decomposition": stability.decomposition, "stable_at": stability.stable_at,
                    "relaxed_structure": outcome.task_doc.output.structure.as_dict()})
        results.append(row)
        if progress:
            progress(1)
    return HullReport(reference=reference, engine=engine, relaxed=relax.relax,
                      reference_fingerprints={c: calc.references.fingerprint for c, calc in calculators.items()},
                      results=results)
