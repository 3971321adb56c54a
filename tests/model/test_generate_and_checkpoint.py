from __future__ import annotations

import numpy as np
import pytest
import torch

from pccd_flows.model.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from pccd_flows.model.generate import GenerationConditions, SamplerSettings, generate, sample_tensors

CONDITIONS = GenerationConditions(elements=("O", "Ca", "Sn"))


def test_unet_shapes(tiny_checkpoint):
    model, _, _ = load_model(tiny_checkpoint)
    x = torch.randn(5, 9, 128)
    out = model(x, torch.randint(1, 1001, (5,)), torch.randint(0, 100, (5, 3)), torch.zeros(5, dtype=torch.long),
                torch.zeros(5, dtype=torch.long))
    assert out.shape == x.shape


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_generation_is_deterministic_with_a_seed(tiny_checkpoint, eta):
    """Also with eta = 1, where every step draws fresh noise: it comes from the candidate's own stream."""
    model, _, _ = load_model(tiny_checkpoint)
    sampler = SamplerSettings(steps=5, batch_size=3, eta=eta)
    first = sample_tensors(model, [CONDITIONS] * 4, seed=11, sampler=sampler)
    again = sample_tensors(model, [CONDITIONS] * 4, seed=11, sampler=sampler)
    other = sample_tensors(model, [CONDITIONS] * 4, seed=12, sampler=sampler)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)
    # candidate 2 regenerated on its own, in another batch size, is the same crystal
    alone = sample_tensors(model, [CONDITIONS], seed=11, sampler=SamplerSettings(steps=5, batch_size=1, eta=eta),
                           start_index=2)
    # batches of another size reduce in another order (float32): 1e-4 apart at most, another seed moves it by ~0.1
    np.testing.assert_allclose(alone[0], first[2], atol=1e-4)


def test_guidance_changes_what_is_generated(tiny_checkpoint):
    model, _, _ = load_model(tiny_checkpoint)
    plain = sample_tensors(model, [CONDITIONS] * 3, seed=0, sampler=SamplerSettings(steps=5, guidance=1.0))
    guided = sample_tensors(model, [CONDITIONS] * 3, seed=0, sampler=SamplerSettings(steps=5, guidance=4.0))
    assert np.abs(plain - guided).max() > 1e-4


def test_ddpm_sampler_runs_from_an_intermediate_step(tiny_checkpoint):
    model, _, _ = load_model(tiny_checkpoint)
    from pccd_flows.model.conditions import element_tokens
    from pccd_flows.model.diffusion import Conditions, GaussianDiffusion

    diffusion = GaussianDiffusion(model.config.timesteps)
    ticks = []
    conditions = Conditions(torch.from_numpy(element_tokens(["Mg", "O"]))[None], torch.zeros(1, dtype=torch.long),
                            torch.zeros(1, dtype=torch.long))
    x = diffusion.ddpm_sample(model, torch.randn(1, 9, 128), conditions, start_step=20,
                              progress=lambda: ticks.append(1))
    assert len(ticks) == 20 and torch.isfinite(x).all()


def test_generated_crystals_carry_provenance(tiny_checkpoint):
    model, codec, payload = load_model(tiny_checkpoint)
    crystals = generate(model, codec, payload, CONDITIONS, 3, seed=5, sampler=SamplerSettings(steps=4))
    assert len(crystals) == 3  # failures are kept, with their error
    for index, crystal in enumerate(crystals):
        assert crystal.provenance.checkpoint_sha256 == payload["sha256"]
        assert crystal.provenance.seed == 5 and crystal.provenance.index == index
        assert crystal.provenance.conditions.elements == ("Ca", "Sn", "O")
        assert crystal.provenance.sampler.steps == 4
        assert (crystal.structure is None) == (crystal.error is not None)


def test_checkpoint_round_trip(tiny_checkpoint, tmp_path):
    model, _, payload = load_model(tiny_checkpoint)
    copy = tmp_path / "copy.pt"
    save_checkpoint(copy, {k: v for k, v in payload.items() if k not in {"sha256", "path"}})
    again, _, payload_again = load_model(copy)
    x = torch.randn(2, 9, 128)
    args = (torch.tensor([5, 900]), torch.randint(0, 100, (2, 3)), torch.zeros(2, dtype=torch.long),
            torch.zeros(2, dtype=torch.long))
    torch.testing.assert_close(model(x, *args), again(x, *args))
    assert payload_again["data_sha256"] == payload["data_sha256"] and payload_again["history"] == payload["history"]
    assert payload["history"][-1]["val_loss"] > 0


def test_corrupt_and_foreign_files_are_clear_errors(tiny_checkpoint, tmp_path):
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(tiny_checkpoint.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not a pccd-flows checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    lfs = tmp_path / "lfs.pt"
    lfs.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\n")
    with pytest.raises(CheckpointError, match="LFS"):
        load_checkpoint(lfs)


def test_exported_checkpoint_generates_the_same_and_resumes(tiny_checkpoint, tmp_path, small_dataset):
    from pccd_flows.model.checkpoint import export_for_inference
    from pccd_flows.model.train import train

    exported = tmp_path / "shipped.pt"
    payload = export_for_inference(tiny_checkpoint, exported)
    assert "optimizer_state" not in payload and "model_state" not in payload
    assert exported.stat().st_size < tiny_checkpoint.stat().st_size / 2
    sampler = SamplerSettings(steps=3)
    original, _, _ = load_model(tiny_checkpoint)
    shipped, _, _ = load_model(exported)
    np.testing.assert_array_equal(sample_tensors(original, [CONDITIONS], 0, sampler),
                                  sample_tensors(shipped, [CONDITIONS], 0, sampler))
    resumed = train(small_dataset, exported, resume=True, max_steps=2)
    assert resumed["step"] == payload["step"] + 2


def test_annealed_run_decays_the_learning_rate_and_stays_loadable(tiny_checkpoint, tmp_path, small_dataset):
    import shutil

    from pccd_flows.model.train import TrainingSettings, learning_rate_factor, train

    settings = TrainingSettings(warmup_steps=1, final_lr_fraction=0.05)
    assert learning_rate_factor(10, 0.0, settings, anneal=True) == pytest.approx(1.0)
    assert learning_rate_factor(10, 0.5, settings, anneal=True) == pytest.approx(0.525)
    assert learning_rate_factor(10, 1.0, settings, anneal=True) == pytest.approx(0.05)
    assert learning_rate_factor(10, 1.0, settings, anneal=False) == 1.0
    path = tmp_path / "annealed.pt"
    shutil.copy(tiny_checkpoint, path)
    result = train(small_dataset, path, resume=True, max_steps=4, anneal_lr=True)
    assert result["history"][-1]["lr"] < 0.5 * result["training_settings"]["learning_rate"]
    load_checkpoint(path)  # safe (weights-only) loading: no numpy scalars in the history or optimiser state


def test_a_resumed_run_takes_this_runs_batch_size_and_a_missing_gpu_is_a_clear_error(tiny_checkpoint, tmp_path,
                                                                                      small_dataset):
    import shutil

    from pccd_flows.model.train import TrainingSettings, resolve_device, train

    path = tmp_path / "resumed.pt"
    shutil.copy(tiny_checkpoint, path)
    stored = load_checkpoint(path)["training_settings"]["batch_size"]
    result = train(small_dataset, path, settings=TrainingSettings(batch_size=stored + 3), resume=True, max_steps=1,
                   device="auto")
    assert result["training_settings"]["batch_size"] == stored + 3
    assert result["history"][-1]["device"] == resolve_device("auto").type
    assert all(v.device.type == "cpu" for v in result["ema_state"].values())  # loadable anywhere
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            train(small_dataset, path, resume=True, max_steps=1, device="cuda")
