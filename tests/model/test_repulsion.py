from __future__ import annotations

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice

from pccd_flows.codec.decode import covalent_radius, decode_tensor
from pccd_flows.codec.encode import DEFAULT_CODEC, encode_structure
from pccd_flows.model.checkpoint import load_model
from pccd_flows.model.conditions import element_tokens
from pccd_flows.model.diffusion import to_features
from pccd_flows.model.generate import GenerationConditions, SamplerSettings, sample_tensors
from pccd_flows.model.repulsion import lattice_matrices, repel_overlapping_points, slot_radii


def _features_of(structure) -> torch.Tensor:
    return to_features(torch.from_numpy(encode_structure(structure).tensor[None]).float())


@pytest.mark.parametrize("parameters", [(3.0, 4.0, 5.0, 80.0, 95.0, 110.0), (5.4, 5.4, 5.4, 90.0, 90.0, 90.0),
                                        (3.2, 3.2, 5.1, 90.0, 90.0, 120.0), (7.9, 6.1, 12.3, 63.0, 71.0, 77.0)])
def test_lattice_read_from_features_is_the_decoders(parameters, cesium_chloride):
    structure = cesium_chloride.copy()
    structure.lattice = Lattice.from_parameters(*parameters)
    encoded = encode_structure(structure)
    matrix = lattice_matrices(_features_of(structure), DEFAULT_CODEC)[0].double().numpy()
    # the codec may Niggli-reduce, so compare with the cell it encodes, in pymatgen's orientation
    expected = Lattice.from_parameters(*encoded.structure.lattice.parameters).matrix
    np.testing.assert_allclose(matrix, expected, atol=2e-3)


def _min_distance_between_slots(features, elements, codec=DEFAULT_CODEC):
    tensor = ((features[0] + 1) / 2).reshape(3, 3, -1).permute(0, 2, 1).numpy()
    lattice = decode_tensor(tensor, elements, codec).lattice
    slot = tensor[1, :, : len(elements)].argmax(1)
    first, second = tensor[0][slot == 0], tensor[0][slot == 1]
    return lattice.get_all_distances(first, second).min()


def test_two_atoms_on_top_of_each_other_are_pushed_apart(cesium_chloride):
    """Cs at the origin and Cl moved onto it: afterwards they are at least ~the asked fraction of their radii apart,
    while the points of one atom stay together."""
    structure = cesium_chloride.copy()
    structure.translate_sites([1], [-0.48, -0.48, -0.48])  # Cl 0.14 A from Cs
    features = _features_of(structure)
    elements = encode_structure(structure).elements
    radii, holds = slot_radii(torch.from_numpy(element_tokens(elements))[None])
    assert _min_distance_between_slots(features, elements) < 0.2
    repelled = repel_overlapping_points(features, radii, holds, DEFAULT_CODEC, ratio=0.7, iterations=30)
    wanted = 0.7 * (covalent_radius("Cs") + covalent_radius("Cl"))
    assert _min_distance_between_slots(repelled, elements) > 0.9 * wanted
    decoded = decode_tensor(((repelled[0] + 1) / 2).reshape(3, 3, -1).permute(0, 2, 1).numpy(), elements)
    assert decoded.composition.reduced_formula == "CsCl" and len(decoded) == 2
    # only positions move
    torch.testing.assert_close(repelled[:, 3:], features[:, 3:])


def test_a_sound_crystal_is_left_alone(cesium_chloride):
    features = _features_of(cesium_chloride)
    radii, holds = slot_radii(torch.from_numpy(element_tokens(("Cs", "Cl")))[None])
    repelled = repel_overlapping_points(features, radii, holds, DEFAULT_CODEC, ratio=0.7, iterations=5)
    torch.testing.assert_close(repelled, features)


def test_sampler_with_repulsion_keeps_elements_apart(tiny_checkpoint):
    """An untrained tiny model scatters points everywhere: with repulsion no two points of different elements stay
    on top of each other."""
    model, codec, _ = load_model(tiny_checkpoint)
    conditions = [GenerationConditions(elements=("Mg", "O"))] * 3
    off = SamplerSettings(steps=5, repulsion_ratio=0.0)
    on = SamplerSettings(steps=5, repulsion_ratio=0.7, repulsion_below_step=1000, repulsion_iterations=20)
    plain = sample_tensors(model, conditions, seed=3, sampler=off, codec=codec)
    repelled = sample_tensors(model, conditions, seed=3, sampler=on, codec=codec)
    wanted = 0.7 * (covalent_radius("Mg") + covalent_radius("O"))
    closest = [_min_distance_between_slots(to_features(torch.from_numpy(t[None]).float()), ("Mg", "O"), codec)
               for t in (*plain, *repelled)]
    assert min(closest[:3]) < 0.05 * wanted  # the untrained model puts points of Mg and O on top of each other
    # its dense random clouds cannot all be pushed apart in 20 iterations; the trained model's two atoms can
    assert min(closest[3:]) > 0.3 * wanted
