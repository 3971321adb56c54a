"""Convex hulls of real systems: MP formation energies (Li-Co-O, Ca-Sn-O) and CHGNet energies (Mg-O)."""

from __future__ import annotations

import gzip
import json

import pytest
from pymatgen.analysis.phase_diagram import PDEntry
from pymatgen.core import Composition
from pymatgen.entries.computed_entries import ComputedEntry

from pccd_flows.settings import get_settings
from pccd_flows.stability.assess import energy_above_hull
from pccd_flows.stability.engines import RelaxSettings
from pccd_flows.stability.hull import HullCalculator
from pccd_flows.stability.references import (
    ReferenceError,
    ReferenceSet,
    formation_energy_entries,
    formation_energy_table,
    reference_set,
)
from tests.factories import known_phase


def mp2020_elemental_energies() -> dict[str, float]:
    with gzip.open(get_settings().elemental_references_file, "rt") as handle:
        entries = {symbol: ComputedEntry.from_dict(d) for symbol, d in json.load(handle).items()}
    return {symbol: entry.energy_per_atom for symbol, entry in entries.items()}


def formation_hull(elements: list[str]) -> HullCalculator:
    table = formation_energy_table(get_settings().formation_energy_file)
    entries = formation_energy_entries(elements, mp2020_elemental_energies(), table)
    return HullCalculator(ReferenceSet("test", "mp", "-".join(elements), entries))


def at_formation_energy(formula: str, e_form: float, elemental: dict[str, float]) -> PDEntry:
    composition = Composition(formula)
    energy = composition.num_atoms * e_form + sum(n * elemental[el.symbol] for el, n in composition.items())
    return PDEntry(composition, energy)


@pytest.mark.parametrize(("elements", "stable", "unstable"), [
    (["Li", "Co", "O"], "LiCoO2", "Li2CoO3"),
    (["Ca", "Sn", "O"], "CaSnO3", "Ca3SnO5"),
])
def test_known_phases_lie_on_the_hull_and_others_decompose(elements, stable, unstable):
    calculator = formation_hull(elements)
    elemental = mp2020_elemental_energies()
    table = formation_energy_table(get_settings().formation_energy_file)
    on_hull = calculator.stability(at_formation_energy(stable, table[stable], elemental))
    assert on_hull.e_above_hull == pytest.approx(0.0, abs=1e-6)
    assert on_hull.stable_at == {"0.25": True, "0.08": True, "0": True}
    # an invented phase at a formation energy 0.1 eV/atom above the hull at its composition
    hull_energy = calculator.diagram.get_hull_energy_per_atom(Composition(unstable))
    shifted = PDEntry(Composition(unstable), (hull_energy + 0.1) * Composition(unstable).num_atoms)
    above = calculator.stability(shifted)
    assert above.e_above_hull == pytest.approx(0.1, abs=1e-6)
    assert above.stable_at == {"0.25": True, "0.08": False, "0": False}
    stable_phases = {e.composition.reduced_formula for e in calculator.diagram.stable_entries}
    assert len(above.decomposition) >= 2 and set(above.decomposition) <= stable_phases
    assert sum(above.decomposition.values()) == pytest.approx(1.0)


def test_elements_outside_the_reference_are_refused():
    calculator = formation_hull(["Mg", "O"])
    with pytest.raises(ReferenceError, match="outside Mg-O"):
        calculator.stability(PDEntry(Composition("MgAl2O4"), -50.0))


@pytest.mark.parametrize("reference", ["mp-formation", "mp-structures"])
def test_chgnet_relaxed_mgo_is_on_the_offline_hull(mg_o_settings, reference):
    report = energy_above_hull([("MgO", known_phase("MgO"))], engine="chgnet", reference=reference,
                               relax=RelaxSettings(steps=100), settings=mg_o_settings)
    (row,) = report.results
    assert row.error is None
    assert abs(row.e_above_hull) < 0.05
    assert row.formation_energy_per_atom == pytest.approx(-3.07, abs=0.1)  # MP: -3.07 eV/atom
    assert report.reference_fingerprints["Mg-O"]


def test_a_strained_crystal_sits_above_the_hull_without_relaxation(mg_o_settings):
    strained = known_phase("MgO")
    strained.scale_lattice(strained.volume * 1.3)
    report = energy_above_hull([("strained", strained)], engine="chgnet", reference="mp-formation",
                               relax=RelaxSettings(relax=False), settings=mg_o_settings)
    (row,) = report.results
    assert row.e_above_hull > 0.1
    assert set(row.decomposition) == {"MgO"}
    assert row.stable_at["0"] is False


def test_mp_api_without_a_key_is_a_clear_error(mg_o_settings, monkeypatch):
    settings = mg_o_settings.model_copy(update={"mp_api_key": None})
    with pytest.raises(ReferenceError, match="needs a Materials Project API key"):
        reference_set("mp-api", ["Mg", "O"], "chgnet", settings)
    with pytest.raises(ReferenceError, match="unknown reference"):
        reference_set("oqmd", ["Mg", "O"], "chgnet", settings)
    with pytest.raises(ReferenceError, match="unknown element"):
        reference_set("mp-formation", ["Mg", "Xx"], "chgnet", settings)
