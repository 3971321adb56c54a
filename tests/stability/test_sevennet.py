"""SevenNet through atomate2's force-field makers: offline weights, the MP scale, a tiny relaxation, the model
recorded."""

from __future__ import annotations

import pytest
from pymatgen.core import Lattice, Structure

from pccd_flows.stability.engines import FORCE_FIELD_MODELS, RelaxSettings, run_force_field
from pccd_flows.stability.entries import entry_from_force_field_doc
from tests.factories import known_phase


def energy_per_atom(result) -> float:
    assert result.ok, result.error
    return result.task_doc.output.energy / len(result.task_doc.output.structure)


@pytest.mark.parametrize("engine", ["sevennet", "sevennet-l3i5"])
def test_sevennet_energies_of_mgo_and_si_are_those_of_mp(engine):
    mgo, si = known_phase("MgO"), known_phase("Si")
    static = run_force_field([mgo, si], engine, RelaxSettings(relax=False))
    # SevenNet learned MP's raw PBE energies (MgO -5.96, Si -5.42 eV/atom at MP's geometry)...
    assert energy_per_atom(static[0]) == pytest.approx(-5.96, abs=0.06)
    assert energy_per_atom(static[1]) == pytest.approx(-5.42, abs=0.06)
    # ...so its entries get MP2020's oxide correction (-0.687 eV per O): MgO -6.30 on the MP2020 scale, as CHGNet's
    mgo_entry = entry_from_force_field_doc(static[0].task_doc, engine)
    assert mgo_entry.energy_per_atom == pytest.approx(-6.30, abs=0.06)
    assert mgo_entry.energy_per_atom - mgo_entry.uncorrected_energy_per_atom == pytest.approx(-0.687 / 2, abs=0.01)
    assert entry_from_force_field_doc(static[1].task_doc, engine).correction == 0


def test_sevennet_relaxes_a_strained_rock_salt_to_mp_lattice():
    strained = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.45), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    strained = strained.get_primitive_structure()
    relaxed = run_force_field([strained], "sevennet", RelaxSettings(steps=200, fmax=0.02))[0]
    assert relaxed.ok, relaxed.error
    a = relaxed.task_doc.output.structure.lattice.a * 2 ** 0.5  # primitive fcc -> conventional
    assert a == pytest.approx(4.25, abs=0.05)  # MP's PBE MgO: 4.26 A
    assert energy_per_atom(relaxed) < energy_per_atom(run_force_field([strained], "sevennet",
                                                                      RelaxSettings(relax=False))[0])
    assert FORCE_FIELD_MODELS["sevennet"] == "7net-0"
