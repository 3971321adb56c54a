"""Entries on the Materials Project energy scale, the right way for each engine.

- Force fields (CHGNet, SevenNet) were trained on MP2020-*corrected* energies: their raw output is already on the MP
  scale, and correcting it again double-counts (CHGNet's MgO moves from -3.03 to -3.38 eV/atom).
- Raw VASP GGA/GGA+U energies need ``MaterialsProject2020Compatibility``, which needs the run type, the U values and
  the POTCARs in the entry's parameters; atomate2's ``doc.entry`` carries none of them and the scheme would silently drop
  it, so the entry is built here from the calculation's inputs and an incompatible one is an error, not a skip.
"""

from __future__ import annotations

from pymatgen.core import Structure
from pymatgen.entries.compatibility import CompatibilityError, MaterialsProject2020Compatibility
from pymatgen.entries.computed_entries import ComputedStructureEntry

from pccd_flows.stability.engines import FORCE_FIELDS, check_engine


class EntryError(ValueError):
    """An energy that cannot be put on the MP scale."""


# Force fields trained on MPtrj's *corrected* energies (CHGNet) already speak the MP2020 scale; those trained on the
# raw PBE/PBE+U energies (SevenNet: MgO -5.97 eV/atom, MP's raw -5.96, MP2020 -6.31) need MP2020's corrections, as
# matbench-discovery applies them.
CORRECTED_BY_TRAINING = frozenset({"chgnet"})


def force_field_entry(structure: Structure, energy: float, engine: str, entry_id: str | None = None
                      ) -> ComputedStructureEntry:
    """A force-field total energy (eV per cell) on the MP2020 scale: CHGNet's as it is, SevenNet's with the
    MP2020 corrections of the calculation MP would have run (GGA, or GGA+U with MP's U values)."""
    engine = check_engine(engine)
    if engine not in FORCE_FIELDS:
        raise EntryError(f"{engine} is not a force field")
    # float(): force fields return numpy float32, which documents and MongoDB cannot store
    if engine in CORRECTED_BY_TRAINING:
        return ComputedStructureEntry(structure, float(energy), parameters={"engine": engine, "mp_scale": "native"},
                                      entry_id=entry_id)
    run_type, hubbards, potcars = mp_calculation_of(structure)
    entry = vasp_entry(structure, float(energy), run_type, hubbards, potcars, entry_id)
    entry.parameters.update({"engine": engine, "mp_scale": "MaterialsProject2020Compatibility"})
    return entry


def mp_calculation_of(structure: Structure) -> tuple[str, dict[str, float], list[str]]:
    """The run type, U values and POTCARs of MP's relaxation of this structure (MPRelaxSet's rules: +U on the
    transition metals of oxides and fluorides)."""
    from pymatgen.io.vasp.sets import MPRelaxSet

    config = MPRelaxSet.CONFIG
    symbols = {el.symbol for el in structure.composition.elements}
    # MPRelaxSet: the U table of the most electronegative anion present (O before F)
    anion = next((a for a in ("O", "F") if a in symbols), None)
    table = config["INCAR"]["LDAUU"].get(anion, {}) if anion else {}
    hubbards = {el: table[el] for el in symbols if el in table}
    potcars = [f"PAW_PBE {config['POTCAR'][el]}" for el in sorted(symbols)]
    return ("GGA+U" if hubbards else "GGA"), hubbards, potcars


def entry_from_force_field_doc(task_doc, engine: str, entry_id: str | None = None) -> ComputedStructureEntry:
    """Entry of an atomate2 ``ForceFieldTaskDocument`` (its relaxed structure and energy)."""
    return force_field_entry(task_doc.output.structure, task_doc.output.energy, engine, entry_id)


def vasp_entry(structure: Structure, energy: float, run_type: str, hubbards: dict[str, float] | None,
               potcar_symbols: list[str], entry_id: str | None = None) -> ComputedStructureEntry:
    """A raw VASP energy with MP2020 corrections (anion, GGA/GGA+U mixing) applied.

    ``run_type`` is "GGA" or "GGA+U"; ``potcar_symbols`` like "PAW_PBE Fe_pv 06Sep2000" (the POTCAR TITELs).
    """
    hubbards = {k: v for k, v in (hubbards or {}).items() if v}
    is_hubbard = run_type.upper().endswith("+U")
    if is_hubbard != bool(hubbards):
        raise EntryError(f"run type {run_type} does not agree with U values {hubbards}")
    parameters = {
        "run_type": "GGA+U" if is_hubbard else "GGA",
        "is_hubbard": is_hubbard,
        "hubbards": hubbards,
        "potcar_spec": [{"titel": symbol, "hash": None} for symbol in potcar_symbols],
        "potcar_symbols": list(potcar_symbols),
        "engine": "vasp",
    }
    entry = ComputedStructureEntry(structure, float(energy), parameters=parameters, entry_id=entry_id)
    try:
        corrected = MaterialsProject2020Compatibility(check_potcar=False).process_entry(entry, on_error="raise")
    except CompatibilityError as exc:
        raise EntryError(f"{structure.reduced_formula}: not MP2020-compatible ({str(exc).split(' for {')[0]})") from exc
    if corrected is None:
        raise EntryError(f"{structure.reduced_formula}: not MP2020-compatible (run type {run_type}, U {hubbards})")
    corrected.parameters["mp_scale"] = "MaterialsProject2020Compatibility"
    return corrected


def entry_from_vasp_task_doc(task_doc, entry_id: str | None = None) -> ComputedStructureEntry:
    """Entry of an atomate2/emmet VASP ``TaskDoc``, using its last calculation's run type, U values and POTCARs."""
    calc = task_doc.calcs_reversed[0]
    run_type = getattr(calc.run_type, "value", str(calc.run_type))
    inputs = calc.input
    hubbards = dict(inputs.hubbards or {}) if getattr(inputs, "is_hubbard", False) else {}
    potcars = [spec.titel for spec in (inputs.potcar_spec or [])]
    return vasp_entry(task_doc.output.structure, calc.output.energy, run_type, hubbards, potcars, entry_id)


def entry_from_task_doc(task_doc, engine: str, entry_id: str | None = None) -> ComputedStructureEntry:
    engine = check_engine(engine)
    if engine == "vasp":
        return entry_from_vasp_task_doc(task_doc, entry_id)
    return entry_from_force_field_doc(task_doc, engine, entry_id)
