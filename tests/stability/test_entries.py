"""Energies on the MP scale: VASP gets MP2020 corrections from its inputs, force fields get none."""

from __future__ import annotations

import pytest
from pymatgen.core import Lattice, Structure

from pccd_flows.stability.engines import EngineError, check_engine, force_field_maker
from pccd_flows.stability.entries import EntryError, force_field_entry, vasp_entry

MGO = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.25), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
LICOO2 = Structure.from_spacegroup("R-3m", Lattice.hexagonal(2.82, 14.05), ["Li", "Co", "O"],
                                   [[0, 0, 0], [0, 0, 0.5], [0, 0, 0.26]])
POTCARS = {"Mg": "PAW_PBE Mg_pv 06Sep2000", "O": "PAW_PBE O 08Apr2002", "Li": "PAW_PBE Li_sv 10Sep2004",
           "Co": "PAW_PBE Co 06Sep2000"}


def potcars(structure):
    return [POTCARS[el.symbol] for el in structure.composition.elements]


def test_vasp_gga_oxide_gets_the_mp2020_oxide_correction():
    entry = vasp_entry(MGO, -47.0, "GGA", {}, potcars(MGO))
    n_oxygen = MGO.composition["O"]
    assert entry.uncorrected_energy == pytest.approx(-47.0)
    assert entry.correction == pytest.approx(-0.687 * n_oxygen, abs=0.01)
    assert entry.parameters["mp_scale"] == "MaterialsProject2020Compatibility"


def test_vasp_gga_plus_u_gets_the_u_correction_and_plain_gga_is_refused():
    entry = vasp_entry(LICOO2, -80.0, "GGA+U", {"Co": 3.32}, potcars(LICOO2))
    n_co, n_o = LICOO2.composition["Co"], LICOO2.composition["O"]
    assert entry.correction == pytest.approx(-0.687 * n_o - 1.638 * n_co, abs=0.05)
    with pytest.raises(EntryError, match="not MP2020-compatible"):
        vasp_entry(LICOO2, -80.0, "GGA", {}, potcars(LICOO2))
    with pytest.raises(EntryError, match="does not agree"):
        vasp_entry(LICOO2, -80.0, "GGA+U", {}, potcars(LICOO2))


def test_force_field_energies_are_not_corrected_twice():
    entry = force_field_entry(MGO, -50.5, "chgnet")
    assert entry.energy == pytest.approx(-50.5)
    assert entry.correction == 0


def test_engines_are_checked():
    assert check_engine("CHGNet") == "chgnet"
    with pytest.raises(EngineError, match="unknown engine"):
        check_engine("mace")
    with pytest.raises(EngineError, match="HPC"):
        force_field_maker("vasp")
    assert force_field_maker("chgnet").force_field_name.endswith("CHGNet")


def vasp_task_doc(structure, energy, run_type, hubbards, potcar_titles):
    """An emmet TaskDoc as atomate2's VASP makers produce it, reduced to what the MP scale needs."""
    from emmet.core.tasks import OutputDoc, TaskDoc
    from emmet.core.vasp.calc_types import RunType
    from emmet.core.vasp.calculation import Calculation, CalculationInput, CalculationOutput, PotcarSpec

    calc = Calculation.model_construct(
        run_type=RunType(run_type),
        input=CalculationInput.model_construct(hubbards=hubbards, is_hubbard=bool(hubbards),
                                               potcar_spec=[PotcarSpec(titel=t) for t in potcar_titles]),
        output=CalculationOutput.model_construct(energy=energy, structure=structure))
    return TaskDoc.model_construct(calcs_reversed=[calc],
                                   output=OutputDoc.model_construct(structure=structure, energy=energy))


def test_vasp_task_documents_are_corrected_from_their_own_inputs():
    from pccd_flows.stability.entries import entry_from_task_doc

    mgo = entry_from_task_doc(vasp_task_doc(MGO, -47.0, "GGA", {}, potcars(MGO)), "vasp")
    assert mgo.correction == pytest.approx(-0.687 * MGO.composition["O"], abs=0.01)
    licoo2 = entry_from_task_doc(vasp_task_doc(LICOO2, -80.0, "GGA+U", {"Co": 3.32, "Li": 0.0, "O": 0.0},
                                               potcars(LICOO2)), "vasp")
    assert licoo2.correction < mgo.correction  # oxide + Co U correction
