"""Relax structures with an engine and judge them against reference phases: the `pccd ehull` pipeline, through the
screening core (:mod:`pccd_flows.pipeline`): the structures relaxed on one loaded potential, the hulls built once per
chemical system."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pydantic import BaseModel, Field
from pymatgen.core import Structure

from pccd_flows.schemas.candidate import StabilityResult
from pccd_flows.settings import PccdSettings, get_settings
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
    judge: str | None = Field(None, description="The force fields whose E_hull this is (the highest of theirs), "
                                                "e.g. chgnet+sevennet.")
    judgements: dict[str, float] = Field(default_factory=dict, description="Each force field's own E_hull.")
    error: str | None = None


class HullReport(BaseModel):
    reference: str
    engine: str
    confirm_with: list[str] = Field(default_factory=list, description="Force fields that had to agree.")
    confirm_below: float | None = None
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
                      confirm_with: str | list[str] | None = None, confirm_below: float | None = None,
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
    confirm_with : str or list of str, optional
        Force fields that must agree (default: the configured ``confirm_with``; ``none``): each relaxes the
        structures ``engine`` puts within ``confirm_below`` of the hull again, and the higher E_hull is the row's
        (as :func:`pccd_flows.pipeline.judge.confirm_candidates` does for candidates).
    confirm_below : float, optional
        eV/atom (default: the configured ``confirm_below``).

    Returns
    -------
    HullReport
        One row per structure, in order. A structure that fails keeps its row with the error; a chemical system
        without references is recorded in ``reference_errors`` (its structures are not relaxed and carry the error).
    """
    from pccd_flows.pipeline.judge import confirmation, reference_hulls
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
        rows[i].judge, rows[i].judgements = engine, {engine: stability.e_above_hull}
    settings = settings or get_settings()
    confirm, below, start = confirmation(engine, confirm_with, confirm_below, settings=settings)
    for other in confirm:
        window = [i for i, row in enumerate(rows) if row.e_above_hull is not None
                  and row.judgements[engine] <= below + 1e-9]
        # the generated structure (an independent judge) or the engine's relaxed one: settings.confirm_from
        starts = [structures[i] if start == "generated" or not rows[i].relaxed_structure
                  else (structures[i][0], Structure.from_dict(rows[i].relaxed_structure)) for i in window]
        second = energy_above_hull(starts, other, reference, relax, settings, confirm_with="none")
        errors.update({c: f"no {other} hull to confirm with: {e}" for c, e in second.reference_errors.items()
                       if c not in errors})
        for i, result in zip(window, second.results, strict=True):
            if result.e_above_hull is None:
                rows[i].error = f"not confirmed by {other}: {result.error}"
                continue
            judgements = {**rows[i].judgements, other: result.e_above_hull}
            highest = max(judgements.values())
            rows[i] = rows[i].model_copy(update={
                "judge": "+".join(judgements), "judgements": judgements, "e_above_hull": highest,
                "stable_at": StabilityResult.from_hull(highest, reference=reference, reference_fingerprint="",
                                                       engine=engine).stable_at})
    return HullReport(reference=reference, engine=engine, relaxed=relax.relax, confirm_with=confirm,
                      confirm_below=below if confirm else None,
                      reference_fingerprints={c: calc.references.fingerprint for c, calc in hulls.items()},
                      results=rows, reference_errors=errors)
