from __future__ import annotations

import itertools
import math

import numpy as np
import torch

from pccd_flows.codec import encode_structure
from pccd_flows.model.checkpoint import load_model
from pccd_flows.model.conditions import NULL_ELEMENT, element_tokens
from pccd_flows.model.diffusion import (
    Conditions,
    GaussianDiffusion,
    cosine_alpha_bar,
    from_features,
    to_features,
)


def test_cosine_schedule_closed_form():
    diffusion = GaussianDiffusion(1000)
    t = np.arange(1, 1001)
    s = 0.008
    f = np.cos((t / 1000 + s) / (1 + s) * math.pi / 2) ** 2 / math.cos(s / (1 + s) * math.pi / 2) ** 2
    # cumprod of (1 - beta_t) equals the closed form wherever beta is not clipped at 0.999 (all but the last steps)
    np.testing.assert_allclose(diffusion.alpha_bar[:990].numpy(), f[:990], rtol=1e-4, atol=1e-7)
    assert (diffusion.betas > 0).all() and (diffusion.betas <= 0.999).all()
    assert torch.all(diffusion.alpha_bar[1:] < diffusion.alpha_bar[:-1])
    assert cosine_alpha_bar(1000)[0] == 1.0


def test_forward_process_marginal_matches_eq_3():
    diffusion = GaussianDiffusion(1000)
    x0 = torch.full((20000, 1, 1), 0.5)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    t = torch.full((20000,), 300)
    xt = diffusion.q_sample(x0, t, noise)
    ab = diffusion.alpha_bar[299].item()
    assert abs(xt.mean().item() - math.sqrt(ab) * 0.5) < 0.02
    assert abs(xt.var().item() - (1 - ab)) < 0.02


def test_features_round_trip(cesium_chloride):
    tensor = torch.from_numpy(encode_structure(cesium_chloride).tensor)[None]
    features = to_features(tensor)
    assert features.shape == (1, 9, 128) and features.min() >= -1 and features.max() <= 1
    torch.testing.assert_close(from_features(features), tensor)


def test_guidance_uses_the_null_condition(tiny_checkpoint):
    """The original code built a null embedding and never used it; here guidance mixes both predictions."""
    model, _, _ = load_model(tiny_checkpoint)
    diffusion = GaussianDiffusion(model.config.timesteps)
    x = torch.randn(4, 9, 128, generator=torch.Generator().manual_seed(0))
    conditions = Conditions(
        torch.from_numpy(np.stack([element_tokens(["Ca", "Sn", "O"])] * 4)),
        torch.tensor([3, 3, 1, 1]),
        torch.tensor([1, 1, 2, 2]),
    )
    with torch.no_grad():
        conditional = diffusion.predict_noise(model, x, 500, conditions, guidance=1.0)
        unconditional = diffusion.predict_noise(model, x, 500, conditions, guidance=0.0)
        guided = diffusion.predict_noise(model, x, 500, conditions, guidance=3.0)
        null = model(x, torch.full((4,), 500), torch.full((4, 3), NULL_ELEMENT), torch.zeros(4, dtype=torch.long),
                     torch.zeros(4, dtype=torch.long))
    torch.testing.assert_close(unconditional, null)
    assert (conditional - unconditional).abs().max() > 1e-5
    torch.testing.assert_close(guided, unconditional + 3.0 * (conditional - unconditional))


def test_condition_dropout_replaces_whole_condition_sets():
    conditions = Conditions(torch.full((1000, 3), 40), torch.full((1000,), 2), torch.full((1000,), 1))
    dropped = conditions.dropped(0.25, torch.Generator().manual_seed(0))
    was_dropped = dropped.band_gap == 0
    assert 0.2 < was_dropped.float().mean() < 0.3
    assert (dropped.elements[was_dropped] == NULL_ELEMENT).all() and (dropped.magnetic[was_dropped] == 0).all()
    assert (dropped.elements[~was_dropped] == 40).all()


def test_ddim_schedule_is_decreasing_and_ends_at_one():
    diffusion = GaussianDiffusion(1000)
    schedule = diffusion.ddim_schedule(50)
    assert len(schedule) == 50 and schedule[0] == 1000 and schedule[-1] == 1
    assert all(a > b for a, b in itertools.pairwise(schedule))
    assert diffusion.ddim_schedule(20, start_step=200)[0] == 200


def test_lattice_loss_weight_weighs_the_lattice_features_by_hand():
    """With a predictor of zero noise the loss is the mean squared noise: weighted by hand, it must agree."""
    from pccd_flows.model.train import TrainingSettings, feature_weights

    diffusion = GaussianDiffusion(1000)
    x0 = torch.zeros(3, 9, 128)
    conditions = Conditions(torch.zeros(3, 3, dtype=torch.long), torch.zeros(3, dtype=torch.long),
                            torch.zeros(3, dtype=torch.long))

    def zero_noise(x, *_):
        return torch.zeros_like(x)

    def loss(weights):
        return diffusion.loss(zero_noise, x0, conditions, torch.Generator().manual_seed(5), weights).item()

    generator = torch.Generator().manual_seed(5)
    torch.randint(1, 1001, (3,), generator=generator)
    squared = torch.randn(x0.shape, generator=generator) ** 2
    assert feature_weights(TrainingSettings()) is None
    assert math.isclose(loss(None), squared.mean().item(), rel_tol=1e-6)
    weights = feature_weights(TrainingSettings(lattice_loss_weight=10.0))
    assert weights.tolist() == [1.0] * 6 + [10.0] * 3
    by_hand = (squared[:, :6].sum() + 10 * squared[:, 6:].sum()) / (6 + 30) / (3 * 128)
    assert math.isclose(loss(weights), by_hand.item(), rel_tol=1e-6)
    # the lattice carries 10/12 of the weight here: the weighted loss follows the lattice's error, not the others'
    assert not math.isclose(loss(weights), loss(None), rel_tol=1e-3)
