"""Generation-quality metrics on real MP crystals: validity, SMACT, element match, uniqueness, novelty."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Composition, Lattice, Structure

from pccd_flows.evaluation import (
    GenerationMetrics,
    NoveltyIndex,
    compositional_validity,
    default_novelty_source,
    element_match,
    evaluate_generation,
    structural_validity,
    uniqueness,
    wasserstein,
)
from pccd_flows.evaluation import novelty as novelty_module
from pccd_flows.evaluation.metrics import (
    closest_covalent_ratio,
    density_wasserstein,
    icsd_charge_balanced,
    match_groups,
)
from pccd_flows.settings import get_settings


def rocksalt(a: float = 5.64) -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


@pytest.fixture(scope="module")
def bundled_index() -> NoveltyIndex:
    return NoveltyIndex(get_settings().data_file)


@pytest.fixture(scope="module")
def distinct_crystals(bundled_structures) -> list[Structure]:
    """Three real crystals of pairwise different reduced formulas, one of them with several sites."""
    chosen, formulas = [], set()
    for _, structure in bundled_structures:
        formula = structure.composition.reduced_formula
        if formula not in formulas and len(structure) >= 3:
            chosen.append(structure)
            formulas.add(formula)
        if len(chosen) == 3:
            return chosen
    raise AssertionError("bundled sample has fewer than 3 distinct formulas")


# --- structural validity ------------------------------------------------------------------------------------


def test_bundled_crystals_are_structurally_valid(bundled_structures):
    invalid = [material_id for material_id, s in bundled_structures if not structural_validity(s)]
    assert len(bundled_structures) > 250
    assert invalid == []


def test_atoms_closer_than_half_an_angstrom_are_invalid():
    close = Structure(Lattice.cubic(5.0), ["Na", "Cl"], [[0, 0, 0], [0.06, 0, 0]])  # 0.3 A apart
    assert close.distance_matrix[0, 1] == pytest.approx(0.3)
    assert not structural_validity(close)
    # the same pair across the cell boundary is just as close (periodic distances)
    across = Structure(Lattice.cubic(5.0), ["Na", "Cl"], [[0.01, 0, 0], [0.95, 0, 0]])
    assert not structural_validity(across)
    apart = Structure(Lattice.cubic(5.0), ["Na", "Cl"], [[0, 0, 0], [0.12, 0, 0]])  # 0.6 A apart
    assert structural_validity(apart)


def test_tiny_volume_cell_is_invalid():
    flat = Structure(Lattice.orthorhombic(5.0, 5.0, 0.003), ["Na"], [[0, 0, 0]])  # 0.075 A^3
    assert flat.volume < 0.1
    assert not structural_validity(flat)
    assert not structural_validity(Structure(Lattice(np.diag([4.0, 4.0, 0.0])), ["Na"], [[0, 0, 0]]))


def test_single_atom_cell_checks_the_distance_to_its_own_image():
    assert structural_validity(Structure(Lattice.cubic(2.5), ["Fe"], [[0, 0, 0]]))
    # a long, thin cell: 0.4 A to the next image along a, although the volume is fine
    needle = Structure(Lattice.orthorhombic(0.4, 6.0, 6.0), ["Fe"], [[0, 0, 0]])
    assert needle.volume > 10
    assert not structural_validity(needle)
    # a short lattice vector hidden in an oblique basis: b - a has length 0.28 A
    oblique = Structure(Lattice([[5.0, 0, 0], [5.2, 0.2, 0], [0, 0, 5.0]]), ["Fe"], [[0, 0, 0]])
    assert min(oblique.lattice.abc) > 4.5 and oblique.volume > 1
    assert not structural_validity(oblique)


def test_closest_covalent_ratio_of_real_and_overlapping_crystals(bundled_structures):
    ratios = [closest_covalent_ratio(s) for _, s in bundled_structures]
    assert min(ratios) >= 0.49  # MP's closest pair in the whole bundled set is 0.496
    assert np.median(ratios) > 0.8
    # Mg on O at 1.0 A: 1.0 / (1.41 + 0.66)
    close = Structure(Lattice.cubic(5.0), ["Mg", "O"], [[0, 0, 0], [0.2, 0, 0]])
    assert closest_covalent_ratio(close) == pytest.approx(1.0 / 2.07, rel=1e-3)
    # a one-atom Fe cell with a 2.0 A lattice vector: its own image at 2.0 / (2 * 1.42)
    needle = Structure(Lattice.orthorhombic(2.0, 6.0, 6.0), ["Fe"], [[0, 0, 0]])
    assert closest_covalent_ratio(needle) == pytest.approx(2.0 / 2.84, rel=1e-3)


@pytest.mark.parametrize("formula, balanced", [("Ca2SnO4", True), ("MgSc2O4", True), ("CaO", True),
                                                ("CaSnO5", False), ("MgO2", False), ("Fe3O4", True), ("Mg", True)])
def test_icsd_charge_balance(formula, balanced):
    # CaSnO5 passes SMACT's 2014 table (with O-1), not the ICSD's states, which also exclude peroxides
    assert icsd_charge_balanced(Composition(formula)) is balanced


# --- compositional validity (SMACT) -------------------------------------------------------------------------


@pytest.mark.parametrize("formula", ["NaCl", "MgO", "CaSnO3", "Fe2O3", "LiFePO4", "GaAs"])
def test_charge_balanced_compounds_are_valid(formula):
    assert compositional_validity(Composition(formula))


@pytest.mark.parametrize("formula", ["NaCl2", "NaO3", "LiF2", "Na2Cl2O", "Fe3O4"])
def test_unbalanced_compounds_are_invalid(formula):
    # Fe3O4 needs two Fe valences at once, which CDVAE's rule (one state per element) does not allow
    assert not compositional_validity(Composition(formula))


def test_unaries_and_all_metal_alloys_are_valid():
    assert compositional_validity("Si")
    assert compositional_validity(Composition("O2"))
    assert compositional_validity("Fe3Al")  # metals only: an alloy, valid as in CDVAE (include_alloys)
    assert compositional_validity("Na2Cl2")  # counts are reduced by their gcd first
    assert compositional_validity(rocksalt())  # a structure is accepted for its composition


def test_bundled_crystals_are_mostly_smact_valid(bundled_structures):
    valid = sum(compositional_validity(s.composition) for _, s in bundled_structures)
    # CDVAE reports ~89% for MP-20; real MP crystals include suboxides, mixed valence, odd intermetallics
    assert 0.8 < valid / len(bundled_structures) < 0.97  # 0.896 on this sample


# --- element match ------------------------------------------------------------------------------------------


def test_element_match():
    nacl = rocksalt()
    assert element_match(nacl, ("Na", "Cl"))
    assert element_match(nacl, ["Cl", "Na"])
    assert not element_match(nacl, ("Na",))  # extra element
    assert not element_match(nacl, ("Na", "Cl", "O"))  # missing element
    assert not element_match(nacl, ("K", "Cl"))
    assert not element_match(None, ("Na", "Cl"))


# --- uniqueness ---------------------------------------------------------------------------------------------


def test_uniqueness_counts_each_group_of_matches_once(distinct_crystals):
    first, second, third = distinct_crystals
    translated_supercell = first.copy()
    translated_supercell.make_supercell([2, 1, 1])
    translated_supercell.translate_sites(range(len(translated_supercell)), [0.13, 0.27, 0.41])
    structures = [first, first.copy(), translated_supercell, second, third]
    assert uniqueness(structures) == pytest.approx(3 / 5)
    assert match_groups(structures) == [[0, 1, 2], [3], [4]]
    assert uniqueness([first, second, third]) == 1.0
    assert uniqueness([]) == 0.0


def test_same_formula_different_structure_is_unique():
    cesium_chloride_type = Structure(Lattice.cubic(3.3), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert uniqueness([rocksalt(), rocksalt(5.70), cesium_chloride_type]) == pytest.approx(2 / 3)


# --- novelty ------------------------------------------------------------------------------------------------


def test_known_crystals_are_not_novel(bundled_index, bundled_structures):
    assert bundled_index.n_records == 50_788
    for material_id, structure in bundled_structures[::40]:
        assert bundled_index.find_match(structure) is not None, material_id
        assert not bundled_index.is_novel(structure)
    # a slightly rattled supercell of a known crystal is still that crystal
    _, known = bundled_structures[7]
    rattled = known.copy()
    rattled.make_supercell([1, 1, 2])
    rattled.perturb(0.02, min_distance=0.01)
    assert not bundled_index.is_novel(rattled)


def test_made_up_and_distorted_crystals_are_novel(bundled_index, bundled_structures):
    made_up = Structure(Lattice.cubic(4.2), ["Cs", "Au", "F"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0, 0]])
    assert "CsAuF" not in bundled_index
    assert bundled_index.is_novel(made_up)
    # a known formula in a structure unlike any of its MP crystals
    _, known = next((mid, s) for mid, s in bundled_structures if len(s) >= 4)
    squashed = Structure(
        Lattice.orthorhombic(3.0, 3.0, 3.0 * len(known)),
        known.species,
        [[0, 0, i / len(known)] for i in range(len(known))],
    )
    assert known.composition.reduced_formula in bundled_index
    assert bundled_index.is_novel(squashed)


def test_default_source_is_all_of_mp_when_present(monkeypatch, tmp_path):
    shared = novelty_module.SHARED_MP_FILE
    assert shared.parts[-3:] == ("shared", "data", "mp_all_structures.jsonl.gz")
    if shared.is_file():
        assert default_novelty_source() == shared
        index = NoveltyIndex(limit=200)
        assert index.source == shared
        assert index.n_records == 200
        assert "Cs" in index  # mp-1 opens the file
    monkeypatch.setattr(novelty_module, "SHARED_MP_FILE", tmp_path / "absent.jsonl.gz")
    assert default_novelty_source() == get_settings().data_file


# --- evaluate_generation ------------------------------------------------------------------------------------


def test_evaluate_generation_rates_are_over_n(bundled_structures, bundled_index, distinct_crystals):
    first, second, _ = distinct_crystals
    elements_of = [tuple(el.symbol for el in s.composition.elements) for s in (first, second)]
    broken = Structure(Lattice.cubic(5.0), ["Na", "Cl"], [[0, 0, 0], [0.02, 0, 0]])  # 0.1 A apart
    novel = Structure(Lattice.cubic(4.2), ["Cs", "Au", "F"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0, 0]])
    structures = [first, first.copy(), second, broken, novel, None]
    requested = [elements_of[0], elements_of[0], ("Xe",), ("Na", "Cl"), ("Cs", "Au", "F"), ("Na", "Cl")]
    reference = [s for _, s in bundled_structures]

    metrics = evaluate_generation(structures, requested, reference, novelty_index=bundled_index, seconds=2.0)

    assert isinstance(metrics, GenerationMetrics)
    assert metrics.n == 6
    assert metrics.n_decoded == 5
    assert metrics.structural_validity == pytest.approx(4 / 6)  # broken and None fail
    assert metrics.element_match_rate == pytest.approx(4 / 6)  # second asked for Xe; None fails
    assert metrics.uniqueness == pytest.approx(4 / 6)  # first twice; None fails
    assert metrics.novelty == pytest.approx(2 / 6)  # broken and made-up; known ones and None are not novel
    expected_smact = sum(compositional_validity(s.composition) for s in structures if s is not None)
    assert metrics.compositional_validity == pytest.approx(expected_smact / 6)
    assert metrics.compositional_validity < 5 / 6
    assert metrics.validity <= min(metrics.structural_validity, metrics.compositional_validity)
    assert metrics.structures_per_second == pytest.approx(3.0)
    assert metrics.novelty_source == get_settings().data_file.name
    decoded = [s for s in structures if s is not None]
    assert metrics.atom_count_wasserstein == pytest.approx(
        wasserstein([len(s) for s in decoded], [len(s) for s in reference])
    )
    assert metrics.atom_count_wasserstein > 0
    assert metrics.density_wasserstein == pytest.approx(density_wasserstein(decoded, reference))
    assert GenerationMetrics.model_validate_json(metrics.model_dump_json()) == metrics


def test_evaluate_generation_without_index_or_structures():
    metrics = evaluate_generation([None, None], [("Na",), ("Cl",)], [rocksalt()])
    assert metrics.n_decoded == 0
    assert metrics.structural_validity == metrics.uniqueness == metrics.element_match_rate == 0.0
    assert metrics.novelty is None and metrics.structures_per_second is None
    assert metrics.atom_count_wasserstein is None
    with pytest.raises(ValueError):
        evaluate_generation([rocksalt()], [], [rocksalt()])


def test_wasserstein_of_identical_samples_is_zero():
    assert wasserstein([1, 2, 3], [3, 2, 1]) == 0.0
    assert wasserstein([1, 1], [3, 3]) == pytest.approx(2.0)
