from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymatgen.core import Lattice, Structure

from pccd_flows.codec import CodecSettings, encode_structure, slot_elements
from pccd_flows.codec.encode import balanced_repeats
from pccd_flows.codec.errors import CodecError, UnknownSpeciesError


@given(n_sites=st.integers(1, 16), n_points=st.integers(16, 256))
def test_repeats_are_balanced_and_fill_every_point(n_sites, n_points):
    repeats = balanced_repeats(n_sites, n_points)
    assert repeats.sum() == n_points
    assert repeats.max() - repeats.min() <= 1
    assert len(repeats) == n_sites


def test_tensor_layout_of_cesium_chloride(cesium_chloride):
    encoded = encode_structure(cesium_chloride)
    tensor = encoded.tensor
    assert tensor.shape == (3, 128, 3) and tensor.dtype == np.float32
    assert encoded.elements == ("Cs", "Cl")
    # 64 points per atom, each one-hot in its element's slot, the third slot empty
    assert (tensor[1].sum(axis=1) == 1).all()
    assert tensor[1, :, 0].sum() == 64 and tensor[1, :, 1].sum() == 64 and tensor[1, :, 2].sum() == 0
    assert len(np.unique(tensor[0], axis=0)) == 2
    settings = CodecSettings()
    np.testing.assert_allclose(settings.denormalise_angles(tensor[2, :64]), 90.0, atol=1e-4)
    np.testing.assert_allclose(settings.denormalise_lengths(tensor[2, 64:]), 4.12, rtol=1e-5)


def test_every_value_of_real_crystals_is_in_unit_range(bundled_structures):
    for material_id, structure in bundled_structures:
        tensor = encode_structure(structure, source=material_id).tensor
        assert set(np.unique(tensor[1])) <= {0.0, 1.0}, material_id
        assert (tensor[0] >= 0).all() and (tensor[0] < 1).all(), material_id
        assert ((tensor[2] > 0) & (tensor[2] < 1)).all(), material_id


def test_each_element_gets_its_own_slot(bundled_structures):
    """The original code mapped two elements to one index; here every element has a distinct slot."""
    for material_id, structure in bundled_structures:
        encoded = encode_structure(structure, source=material_id)
        n_elements = len(structure.composition.elements)
        assert len(encoded.elements) == n_elements
        used = np.flatnonzero(encoded.tensor[1].sum(axis=0))
        assert list(used) == list(range(n_elements)), material_id


def test_negative_and_out_of_cell_coordinates_are_wrapped_not_lost(cesium_chloride):
    """The original parser dropped minus signs; a coordinate of -0.25 is the same place as 0.75."""
    shifted = Structure(cesium_chloride.lattice, ["Cs", "Cl"], [[-0.25, -1.0, 2.0], [0.25, 0.5, -0.5]], to_unit_cell=False)
    wrapped = Structure(cesium_chloride.lattice, ["Cs", "Cl"], [[0.75, 0.0, 0.0], [0.25, 0.5, 0.5]])
    np.testing.assert_allclose(encode_structure(shifted).tensor, encode_structure(wrapped).tensor, atol=1e-6)


def test_slot_order_does_not_depend_on_how_elements_are_named():
    assert slot_elements(["O", "Sn", "Ca"]) == slot_elements(["Ca", "Sn", "O"]) == ("Ca", "Sn", "O")
    assert slot_elements(["Xe", "F"]) == ("Xe", "F")
    with pytest.raises(UnknownSpeciesError, match="Qq"):
        slot_elements(["Ca", "Qq"])


def test_oxidation_states_are_ignored(cesium_chloride):
    decorated = cesium_chloride.copy()
    decorated.add_oxidation_state_by_element({"Cs": 1, "Cl": -1})
    assert encode_structure(decorated).elements == ("Cs", "Cl")
    np.testing.assert_array_equal(encode_structure(decorated).tensor, encode_structure(cesium_chloride).tensor)


@pytest.mark.parametrize(
    "reason", ["too many elements", "too many sites", "partial occupancy", "unknown species", "malformed structure"]
)
def test_bad_input_raises_a_clear_error_naming_the_structure(bad_record_set, reason):
    record = bad_record_set[reason]
    with pytest.raises(CodecError) as excinfo:
        encode_structure(record.to_structure(), source=record.material_id)
    assert excinfo.value.reason == reason
    assert record.material_id in str(excinfo.value)


def test_lengths_outside_the_codec_range_are_refused():
    needle = Structure(Lattice.tetragonal(3.0, 200.0), ["C"], [[0, 0, 0]])
    with pytest.raises(CodecError, match="outside the codec range"):
        encode_structure(needle, source="needle")


def test_the_codec_range_covers_every_cell_of_the_bundled_data():
    settings = CodecSettings()
    # Extremes of the bundled data (see the data README): 0.98 A and 104 A.
    assert settings.length_min < 0.98 and settings.length_max > 104.2
    values = settings.normalise_lengths([0.98, 104.2])
    assert (values > 0).all() and (values < 1).all()
    np.testing.assert_allclose(settings.denormalise_lengths(values), [0.98, 104.2])
