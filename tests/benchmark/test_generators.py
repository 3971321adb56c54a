"""The three generators of `pccd benchmark` on tiny cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Composition, Lattice, Structure

from pccd_flows.benchmark.generators import (
    cell_composition,
    element_mappings,
    pccd_candidates,
    random_search_candidates,
    random_symmetric_crystal,
    rank_substitutions,
    substitution_candidates,
    substitution_structures,
)
from pccd_flows.evaluation.metrics import fits, structural_validity, structure_matcher


def rock_salt(a: float, cation: str, anion: str) -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), [cation, anion], [[0, 0, 0], [0.5, 0.5, 0.5]])


def zinc_blende(a: float, cation: str, anion: str) -> Structure:
    return Structure.from_spacegroup("F-43m", Lattice.cubic(a), [cation, anion], [[0, 0, 0], [0.25, 0.25, 0.25]])


def cesium_chloride_type(a: float, cation: str, anion: str) -> Structure:
    return Structure(Lattice.cubic(a), [cation, anion], [[0, 0, 0], [0.5, 0.5, 0.5]])


# --- random search --------------------------------------------------------------------------------------------


def test_pyxtal_places_the_exact_cell_composition_reproducibly():
    composition = {"Ca": 2, "Sn": 1, "O": 4}
    first, origin, error = random_symmetric_crystal(composition, np.random.default_rng(3))
    assert error is None and first is not None
    assert cell_composition(first) == composition
    assert structural_validity(first)  # PyXtal keeps atoms apart
    assert 1 <= origin["space_group"] <= 230
    again, _, _ = random_symmetric_crystal(composition, np.random.default_rng(3))
    assert np.allclose(first.lattice.matrix, again.lattice.matrix)
    assert np.allclose(first.frac_coords, again.frac_coords)


def test_random_search_records_what_pyxtal_cannot_place():
    rows = random_search_candidates("Ca-O", [(0, {"Ca": 1, "O": 1}), (1, {"Ca": 0, "O": 2})], seed=0)
    assert [r.index for r in rows] == [0, 1]
    placed, empty = rows
    assert placed.structure is not None and placed.generation_error is None
    assert placed.cell_composition == {"Ca": 1, "O": 1} and placed.formula == "CaO"
    assert empty.structure is None and empty.generation_error.startswith("pyxtal:")


# --- substitution ---------------------------------------------------------------------------------------------


def test_rock_salt_prototype_gives_the_substituted_rock_salt():
    prototypes = [("proto-cscl", cesium_chloride_type(4.12, "Cs", "Cl")),
                  ("proto-nacl", rock_salt(5.64, "Na", "Cl")),
                  ("proto-mgo-zb", zinc_blende(4.6, "Mg", "O"))]  # MgO's own system: never a prototype of MgO
    made = substitution_structures("MgO", 1, prototypes)
    (structure, origin), = made
    assert origin["prototype_id"] == "proto-nacl" and origin["mapping"] == {"Na": "Mg", "Cl": "O"}
    assert structure.composition.reduced_formula == "MgO"
    assert fits(structure_matcher(), structure, rock_salt(4.21, "Mg", "O"))
    # the volume is the DLS predictor's for MgO, not NaCl's: within 25% of the real rock salt's 4.21 A
    assert abs(structure.volume / len(structure) - 4.21**3 / 8) / (4.21**3 / 8) < 0.25
    everything = substitution_structures("MgO", 5, prototypes)
    assert [o["prototype_id"] for _, o in everything] == ["proto-nacl", "proto-cscl"]
    assert everything[0][1]["probability"] > everything[1][1]["probability"]


def test_duplicate_prototypes_give_one_crystal():
    prototypes = [("a", rock_salt(5.64, "Na", "Cl")), ("b", rock_salt(6.29, "K", "Cl"))]
    made = substitution_structures("MgO", 2, prototypes)
    assert len(made) == 1  # both are rock salts: the second substituted crystal matches the first


def test_element_mappings_keep_the_stoichiometry():
    assert element_mappings(Composition("SrTiO3"), Composition("CaSnO3")) in (
        [{"Sr": "Ca", "Ti": "Sn", "O": "O"}, {"Sr": "Sn", "Ti": "Ca", "O": "O"}],
        [{"Sr": "Sn", "Ti": "Ca", "O": "O"}, {"Sr": "Ca", "Ti": "Sn", "O": "O"}],
    )
    assert element_mappings(Composition("Al2O3"), Composition("MgO")) == []
    # the probabilities choose between the exchangeable ions: Sr2+ -> Ca2+, Ti4+ -> Sn4+
    (best,) = rank_substitutions("CaSnO3", ["SrTiO3"])
    assert best.mapping == {"Sr": "Ca", "Ti": "Sn", "O": "O"}


def test_substitution_failures_are_recorded():
    with pytest.raises(ValueError, match="no charge-balanced"):
        rank_substitutions("Ca2Sn2O3", ["Sr2Ti2O3"])
    rows = substitution_candidates("Ca-O-Sn", [(0, {"Ca": 2, "Sn": 2, "O": 3}), (1, {"Mg": 1, "O": 1})],
                                   [("proto-nacl", rock_salt(5.64, "Na", "Cl"))])
    bad, good = rows
    assert bad.structure is None and "no charge-balanced" in bad.generation_error
    assert good.structure is not None and good.origin["prototype_id"] == "proto-nacl"


# --- PCCD -----------------------------------------------------------------------------------------------------


def test_pccd_candidates_from_the_shipped_checkpoint():
    rows = pccd_candidates("Mg-O", 2, seed=0)
    assert [r.index for r in rows] == [0, 1]
    for row in rows:
        assert row.generator == "pccd" and row.chemsys == "Mg-O" and row.generation_cpu_seconds > 0
        if row.structure is not None:
            assert set(row.cell_composition) <= {"Mg", "O"}
            assert row.formula == Composition(row.cell_composition).reduced_formula
        else:
            assert row.generation_error


def test_charge_balanced_pccd_keeps_only_charge_balanced_compositions():
    from pccd_flows.evaluation.metrics import icsd_charge_balanced

    rows = pccd_candidates("Ca-Sn-O", 2, seed=0, charge_balanced=True, oversample=4)
    assert [r.index for r in rows] == [0, 1] and {r.generator for r in rows} == {"pccd_charge_balanced"}
    for row in rows:
        if row.structure is not None:
            assert icsd_charge_balanced(row.formula)
            assert row.origin["index"] < 8  # which of the 8 samples it was
        else:
            assert row.generation_error.startswith("charge balance:")
