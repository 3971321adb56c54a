"""Generation of one exact composition (e.g. Mg3CdO4) by fixing the element channel while sampling."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from pccd_flows.codec import encode_structure
from pccd_flows.codec.encode import DEFAULT_CODEC
from pccd_flows.model.checkpoint import load_model
from pccd_flows.model.generate import GenerationConditions, SamplerSettings, generate, sample_tensors
from pccd_flows.settings import get_settings


def _points_per_slot(channel: np.ndarray) -> list[int]:
    return np.bincount(channel.argmax(axis=1), minlength=3).tolist()


@pytest.mark.parametrize(("formula", "slots", "points"), [
    ("Mg3CdO4", ("Mg", "Cd", "O"), [48, 16, 64]),  # 8 atoms: 16 points each
    ("Ca2SnO4", ("Ca", "Sn", "O"), [38, 18, 72]),  # 7 atoms: 128 = 2 x 19 + 5 x 18, the extra points go first
    ("O2Mg2", ("Mg", "O"), [64, 64, 0]),
])
def test_a_composition_sets_the_element_channel_of_its_crystals(formula, slots, points):
    conditions = GenerationConditions(composition=formula)
    assert conditions.elements == slots
    channel = conditions.element_channel(DEFAULT_CODEC)
    assert channel.shape == (128, 3) and set(np.unique(channel)) == {0.0, 1.0} and (channel.sum(axis=1) == 1).all()
    assert _points_per_slot(channel) == points
    assert (np.diff(channel.argmax(axis=1)) >= 0).all()  # grouped by slot, as the codec orders points


def test_the_element_channel_is_that_of_a_real_crystal_of_the_composition(bundled_structures):
    for _, structure in bundled_structures[:40]:
        encoded = encode_structure(structure)
        formula = "".join(f"{el}{int(encoded.structure.composition[el])}" for el in encoded.elements)
        np.testing.assert_array_equal(GenerationConditions(composition=formula).element_channel(DEFAULT_CODEC),
                                      encoded.tensor[1])


@pytest.mark.parametrize(("request_", "message"), [
    ({"composition": "Mg0.75Cd0.25O"}, "whole atoms"),
    ({"composition": "Xx2O"}, "unknown element"),
    ({"composition": "Mg9O9"}, "18 atoms"),
    ({"composition": "LiNaKO"}, "1 to 3"),
    ({"elements": ("Mg", "O"), "composition": "Mg3CdO4"}, "not the requested Mg-O"),
])
def test_impossible_compositions_are_clear_errors(request_, message):
    with pytest.raises(ValidationError, match=message):
        GenerationConditions(**request_)


def test_sampling_keeps_the_composition_and_leaves_other_requests_alone(tiny_checkpoint):
    model, codec, _ = load_model(tiny_checkpoint)
    targeted = GenerationConditions(composition="Ca2SnO4")
    free = GenerationConditions(elements=("Ca", "Sn", "O"))
    sampler = SamplerSettings(steps=5, batch_size=4)
    mixed = sample_tensors(model, [free, targeted, free], seed=3, sampler=sampler, codec=codec)
    np.testing.assert_array_equal(mixed[1, 1], targeted.element_channel(codec))
    assert _points_per_slot(mixed[0, 1]) != [38, 18, 72]  # an untrained model's free channel is anything
    alone = sample_tensors(model, [free], seed=3, sampler=sampler, codec=codec, start_index=2)
    np.testing.assert_allclose(alone[0], mixed[2], atol=1e-5)


def test_the_shipped_model_generates_the_requested_composition():
    """Mg3CdO4 is the paper's case study that PCCD conditioned on elements alone rarely makes."""
    model, codec, payload = load_model(get_settings().checkpoint)
    sampler = SamplerSettings(steps=50)
    free = generate(model, codec, payload, GenerationConditions(elements=("Mg", "Cd", "O")), 16, 0, sampler)
    targeted = generate(model, codec, payload, GenerationConditions(composition="Mg3CdO4"), 16, 0, sampler)
    hits = sum(c.formula == "Mg3CdO4" for c in targeted)
    assert hits >= 8 and hits >= sum(c.formula == "Mg3CdO4" for c in free) + 6, hits
    assert all(c.provenance.conditions.composition == "Mg3CdO4" for c in targeted)

