"""The checkpoint shipped in the repo: what a new user generates with minutes after cloning."""

from __future__ import annotations

from pccd_flows.data.io import file_sha256
from pccd_flows.evaluation.metrics import element_match, structural_validity
from pccd_flows.model.checkpoint import load_model
from pccd_flows.model.generate import GenerationConditions, SamplerSettings, generate
from pccd_flows.settings import get_settings


def test_shipped_checkpoint_is_the_default_preset_trained_on_the_bundled_data():
    settings = get_settings()
    assert settings.checkpoint.stat().st_size < 40e6
    _, _, payload = load_model(settings.checkpoint)
    assert payload["model_config"]["name"] == "default"
    assert payload["data_sha256"] == file_sha256(settings.data_file)
    assert payload["step"] > 1000 and payload["history"][-1]["val_loss"] < 0.1


def test_shipped_checkpoint_generates_valid_crystals_of_the_requested_system():
    model, codec, payload = load_model(get_settings().checkpoint)
    crystals = generate(model, codec, payload, GenerationConditions(elements=("Mg", "O")), n=24, seed=0,
                        sampler=SamplerSettings(steps=25))
    structures = [c.to_structure() for c in crystals]
    valid = sum(s is not None and structural_validity(s) for s in structures)
    matching = sum(s is not None and element_match(s, ("Mg", "O")) for s in structures)
    assert valid >= 18 and matching >= 20, (valid, matching)
