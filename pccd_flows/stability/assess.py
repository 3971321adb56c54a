"""Relax structures with an engine and judge them against reference phases: the `pccd ehull` pipeline, through the
screening core (:mod:`pccd_flows.pipeline`): the structures relaxed on one loaded potential, the hulls built once per
chemical system."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pydantic import BaseModel, Field
from pymatgen.core import Structure

from pccd_flows.settings import PccdSettings
from pccd_flows.stability.engines import RelaxSettings
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
    reference_errors: dict[str, str] = Field(
        default_factory=dict, description="Chemical system -> why it has no hull (its structures carry the error).")


def hull_calculators(chemical_systems: Sequence[str], reference: str, engine: str,
                     settings: PccdSettings | None = None) -> dict[str, HullCalculator]:
    """One hull per chemical system; a ReferenceError where one cannot be had."""
    return {chemsys: HullCalculator(reference_set(reference, chemsys.split("-"), engine, settings))
            for chemsys in sorted(set(chemical_systems))}


def energy_above_hull(structures: Sequence[tuple[str, Structure]], engine: str = "chgnet",
                      reference: str = "mp-formation", relax: RelaxSettings | None = None,
                      settings: PccdSettings | None = None, progress: Callable[[int], None] | None = None,
                      ) -> HullReport:
    """Energy above hull of each (source, structure).

    Parameters
    ----------
    structures : sequence of (str, Structure)
        Structures with a name for each (a file path...).
    engine : str
        A force field (``chgnet``, ``sevennet``...).
    reference : str
        Reference phases of the hull.
    relax : RelaxSettings, optional
        Relax first (default) or not, step limit, force criterion.
    settings : PccdSettings, optional
        Where reference data and caches are.
    progress : callable, optional
        Called with 1 per structure done.

    Returns
    -------
    HullReport
        One row per structure, in order. A structure that fails keeps its row with the error; a chemical system
        without references is recorded in ``reference_errors`` (its structures are not relaxed and carry the error).
    """
    from pccd_flows.pipeline.judge import reference_hulls
    from pccd_flows.pipeline.relax import relax_structures
    from pccd_flows.stability.entries import EntryError, entry_from_force_field_doc

    relax = relax or RelaxSettings()
    systems = ["-".join(sorted({el.symbol for el in s.composition.elements})) for _, s in structures]
    hulls, errors = reference_hulls(systems, reference, engine, settings)
    rows = [HullResult(source=source, formula=structure.composition.reduced_formula)
            for source, structure in structures]
    for row, chemsys in zip(rows, systems, strict=True):
        if chemsys in errors:
            row.error = errors[chemsys]
            if progress:
                progress(1)
    todo = [i for i, chemsys in enumerate(systems) if chemsys in hulls]
    outcomes = relax_structures([structures[i][1] for i in todo], engine, relax,
                                progress=(lambda _: progress(1)) if progress else None)
    for i, outcome in zip(todo, outcomes, strict=True):
        row = rows[i]
        if not outcome.ok:
            row.error = outcome.error
            continue
        try:
            entry = entry_from_force_field_doc(outcome.task_doc, engine, entry_id=row.source)
            stability = hulls[systems[i]].stability(entry)
        except (EntryError, ReferenceError) as exc:
            row.error = str(exc)
            continue
        rows[i] = row.model_copy(update={
            "energy_per_atom": entry.energy_per_atom, "e_above_hull": stability.e_above_hull,
            "formation_energy_per_atom": stability.formation_energy_per_atom,
            "decomposition": stability.decomposition, "stable_at": stability.stable_at,
            "relaxed_structure": outcome.task_doc.output.structure.as_dict()})
    return HullReport(reference=reference, engine=engine, relaxed=relax.relax,
                      reference_fingerprints={c: calc.references.fingerprint for c, calc in hulls.items()},
                      results=rows, reference_errors=errors)
