"""DDPM on point clouds (paper eq. 1-6) with a cosine schedule, classifier-free guidance and two samplers.

Tensors enter the network as (B, 9, n_points) in [-1, 1]: the codec's (3, n_points, 3) values in [0, 1] with the
three values of each channel as features. Positions are periodic; the samplers clip the predicted clean sample to
the data range, and the decoder clusters points periodically, so an atom whose copies straddle 0 and 1 is one atom.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from pccd_flows.model.conditions import NULL_ELEMENT, UNKNOWN


def cosine_alpha_bar(timesteps: int, s: float = 0.008) -> torch.Tensor:
    """alpha_bar_t for t = 0..T (Nichol & Dhariwal 2021); alpha_bar_0 = 1."""
    steps = torch.arange(timesteps + 1, dtype=torch.float64)
    f = torch.cos((steps / timesteps + s) / (1 + s) * math.pi / 2) ** 2
    return f / f[0]


@dataclass
class Conditions:
    elements: torch.Tensor  # (B, 3) long
    band_gap: torch.Tensor  # (B,) long
    magnetic: torch.Tensor  # (B,) long

    def null(self) -> Conditions:
        return Conditions(
            torch.full_like(self.elements, NULL_ELEMENT),
            torch.full_like(self.band_gap, UNKNOWN),
            torch.full_like(self.magnetic, UNKNOWN),
        )

    def dropped(self, probability: float, generator: torch.Generator | None = None) -> Conditions:
        """Replace whole condition sets by the null one with the given probability (training for guidance)."""
        drop = torch.rand(self.band_gap.shape[0], generator=generator, device=self.band_gap.device) < probability
        null = self.null()
        return Conditions(
            torch.where(drop[:, None], null.elements, self.elements),
            torch.where(drop, null.band_gap, self.band_gap),
            torch.where(drop, null.magnetic, self.magnetic),
        )

    def cat(self, other: Conditions) -> Conditions:
        return Conditions(
            torch.cat([self.elements, other.elements]),
            torch.cat([self.band_gap, other.band_gap]),
            torch.cat([self.magnetic, other.magnetic]),
        )


def to_features(tensors: torch.Tensor) -> torch.Tensor:
    """(B, 3, n, 3) codec tensors in [0, 1] -> (B, 9, n) network features in [-1, 1]."""
    return (tensors.permute(0, 1, 3, 2).reshape(tensors.shape[0], 9, -1)) * 2.0 - 1.0


def from_features(features: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`to_features`."""
    b, _, n = features.shape
    return ((features + 1.0) / 2.0).reshape(b, 3, 3, n).permute(0, 1, 3, 2)


def standard_normal(shape, generator=None) -> torch.Tensor:
    """Gaussian noise; ``generator`` may be one torch.Generator or one per sample (rows drawn independently), so
    that a sample's noise does not depend on the batch it was drawn in."""
    if isinstance(generator, (list, tuple)):
        return torch.stack([torch.randn(tuple(shape[1:]), generator=g) for g in generator])
    return torch.randn(shape, generator=generator)


# adjusts the predicted clean sample (B, 9, n) at step t; see pccd_flows.model.repulsion
X0Correction = Callable[[torch.Tensor, int], torch.Tensor]


class GaussianDiffusion:
    def __init__(self, timesteps: int = 1000):
        self.timesteps = timesteps
        alpha_bar = cosine_alpha_bar(timesteps)
        betas = (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=0.999)
        alphas = 1 - betas
        self.betas = betas.float()
        self.alphas = alphas.float()
        self.alpha_bar = torch.cumprod(alphas, 0).float()  # index t-1 for step t = 1..T

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps (eq. 3); t in 1..T."""
        ab = self.alpha_bar.to(x0.device)[t - 1].view(-1, 1, 1)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def loss(self, model, x0: torch.Tensor, conditions: Conditions, generator: torch.Generator | None = None,
             feature_weights: torch.Tensor | None = None):
        """Noise-prediction MSE; ``feature_weights`` (9,) weighs the network's features (see :func:`to_features`),
        normalised so that the loss keeps its scale."""
        t = torch.randint(1, self.timesteps + 1, (x0.shape[0],), generator=generator, device=x0.device)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device)
        prediction = model(self.q_sample(x0, t, noise), t, conditions.elements, conditions.band_gap,
                           conditions.magnetic)
        squared = (prediction - noise) ** 2
        if feature_weights is None:
            return torch.mean(squared)
        weights = feature_weights.to(squared)[None, :, None]
        return torch.mean(squared * weights) / weights.mean()

    def predict_noise(self, model, x, t: int, conditions: Conditions, guidance: float) -> torch.Tensor:
        steps = torch.full((x.shape[0],), t, dtype=torch.long)
        if guidance == 1.0:
            return model(x, steps, conditions.elements, conditions.band_gap, conditions.magnetic)
        both = conditions.cat(conditions.null())
        eps = model(torch.cat([x, x]), torch.cat([steps, steps]), both.elements, both.band_gap, both.magnetic)
        conditional, unconditional = eps.chunk(2)
        return unconditional + guidance * (conditional - unconditional)

    def _x0(self, x, eps, t: int, correction: X0Correction | None = None) -> torch.Tensor:
        ab = self.alpha_bar[t - 1]
        x0 = ((x - (1 - ab).sqrt() * eps) / ab.sqrt()).clamp(-1.0, 1.0)
        return correction(x0, t) if correction is not None else x0

    @torch.no_grad()
    def ddpm_sample(self, model, x: torch.Tensor, conditions: Conditions, guidance: float = 1.0,
                    start_step: int | None = None, generator: torch.Generator | None = None,
                    progress=None, x0_correction: X0Correction | None = None) -> torch.Tensor:
        """The paper's ancestral sampler (eq. 6) from ``start_step`` (default T) down to 1.

        ``x0_correction(x0, t)`` may adjust each step's predicted clean sample (overlap repulsion).
        """
        for t in range(start_step or self.timesteps, 0, -1):
            eps = self.predict_noise(model, x, t, conditions, guidance)
            beta, alpha, ab = self.betas[t - 1], self.alphas[t - 1], self.alpha_bar[t - 1]
            ab_prev = self.alpha_bar[t - 2] if t > 1 else torch.tensor(1.0)
            x0 = self._x0(x, eps, t, x0_correction)
            # posterior mean written with the clipped x0 (equivalent to eq. 5 without clipping)
            mean = (ab_prev.sqrt() * beta / (1 - ab)) * x0 + (alpha.sqrt() * (1 - ab_prev) / (1 - ab)) * x
            if t > 1:
                variance = beta * (1 - ab_prev) / (1 - ab)
                x = mean + variance.sqrt() * standard_normal(x.shape, generator)
            else:
                x = mean
            if progress is not None:
                progress()
        return x

    def ddim_schedule(self, steps: int, start_step: int | None = None) -> list[int]:
        start = start_step or self.timesteps
        steps = max(1, min(steps, start))
        return sorted({round(v) for v in torch.linspace(start, 1, steps).tolist()}, reverse=True)

    @torch.no_grad()
    def ddim_sample(self, model, x: torch.Tensor, conditions: Conditions, steps: int = 50, guidance: float = 1.0,
                    start_step: int | None = None, eta: float = 0.0, generator: torch.Generator | None = None,
                    progress=None, x0_correction: X0Correction | None = None) -> torch.Tensor:
        """DDIM (Song et al. 2021): deterministic for eta = 0, in ``steps`` network evaluations.

        ``x0_correction(x0, t)`` may adjust each step's predicted clean sample (overlap repulsion).
        """
        schedule = self.ddim_schedule(steps, start_step)
        for index, t in enumerate(schedule):
            eps = self.predict_noise(model, x, t, conditions, guidance)
            x0 = self._x0(x, eps, t, x0_correction)
            ab = self.alpha_bar[t - 1]
            eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()  # consistent with the clipped x0
            if progress is not None:
                progress()
            if index == len(schedule) - 1:
                x = x0
                break
            ab_prev = self.alpha_bar[schedule[index + 1] - 1]
            sigma = eta * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)).sqrt()
            x = ab_prev.sqrt() * x0 + (1 - ab_prev - sigma**2).sqrt() * eps
            if eta > 0:
                x = x + sigma * standard_normal(x.shape, generator)
        return x
