"""Overlap repulsion: the sampler keeps points of different elements apart in its predicted clean sample.

The model sometimes places two atoms of *different* elements on top of each other, each with a full atom's share of
points; no decoder can tell such a pair apart from a real crystal's neighbours, so it comes out as two atoms < 0.5 A
apart (docs/model-card.md). During the last denoising steps the sampler therefore pushes apart, in the predicted x0,
every two points of different element slots that are closer than ``ratio`` times the sum of their elements'
covalent radii (the lattice read from the same x0), and continues denoising from the corrected x0, so the model
rebuilds the rest of the crystal around the separated atoms. Points of one slot are never pushed: the copies of one
atom belong together.
"""

from __future__ import annotations

import math

import torch
from pymatgen.core import Element

from pccd_flows.codec.decode import covalent_radius
from pccd_flows.codec.settings import CodecSettings
from pccd_flows.model.conditions import ELEMENT_OFFSET


def slot_radii(element_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Covalent radius (A) of the element of each slot, and which slots hold an element, from condition tokens."""
    holds_element = element_tokens >= ELEMENT_OFFSET
    radii = torch.zeros(element_tokens.shape, dtype=torch.float32)
    for index in zip(*torch.nonzero(holds_element, as_tuple=True)):
        radii[index] = covalent_radius(Element.from_Z(int(element_tokens[index]) - ELEMENT_OFFSET + 1))
    return radii, holds_element


def lattice_matrices(features: torch.Tensor, codec: CodecSettings) -> torch.Tensor:
    """(B, 3, 3) lattice vectors (rows) read from network features as the decoder reads them (angle rows, length
    rows), in pymatgen's ``Lattice.from_parameters`` convention; means instead of the decoder's medians."""
    half = features.shape[-1] // 2
    values = (features[:, 6:9] + 1.0) / 2.0
    angles = codec.angle_min + values[:, :, :half].mean(-1) * (codec.angle_max - codec.angle_min)
    alpha, beta, gamma = torch.deg2rad(angles.clamp(1.0, 179.0)).unbind(-1)
    low, high = math.log(codec.length_min), math.log(codec.length_max)
    a, b, c = torch.exp(low + values[:, :, half:].mean(-1) * (high - low)).unbind(-1)
    cos_gamma_star = ((torch.cos(alpha) * torch.cos(beta) - torch.cos(gamma))
                      / (torch.sin(alpha) * torch.sin(beta))).clamp(-1.0, 1.0)
    gamma_star = torch.arccos(cos_gamma_star)
    zero = torch.zeros_like(a)
    vector_a = torch.stack([a * torch.sin(beta), zero, a * torch.cos(beta)], -1)
    vector_b = torch.stack([-b * torch.sin(alpha) * torch.cos(gamma_star), b * torch.sin(alpha) * torch.sin(gamma_star),
                            b * torch.cos(alpha)], -1)
    vector_c = torch.stack([zero, zero, c], -1)
    return torch.stack([vector_a, vector_b, vector_c], 1)


def repel_overlapping_points(features: torch.Tensor, radii: torch.Tensor, holds_element: torch.Tensor,
                             codec: CodecSettings, ratio: float, iterations: int) -> torch.Tensor:
    """Move apart points of different slots closer than ``ratio`` x (r_i + r_j); returns corrected features.

    Each iteration moves every point by the mean of half the shortfalls to its too-close neighbours, along the
    minimum-image separation (rounded fractional differences: exact for the reduced cells the codec encodes, an
    approximation for very skewed ones). Positions stay in [0, 1], the network's range.
    """
    if ratio <= 0 or iterations <= 0:
        return features
    positions = ((features[:, 0:3] + 1.0) / 2.0).transpose(1, 2)  # (B, n, 3)
    slot_scores = features[:, 3:6].transpose(1, 2).masked_fill(~holds_element[:, None, :], -math.inf)
    slot = slot_scores.argmax(-1)
    point_radii = radii.gather(1, slot)
    closest_allowed = ratio * (point_radii[:, :, None] + point_radii[:, None, :])
    different = slot[:, :, None] != slot[:, None, :]
    matrix = lattice_matrices(features, codec)
    inverse = torch.linalg.inv(matrix)
    for _ in range(iterations):
        separation = positions[:, :, None, :] - positions[:, None, :, :]
        separation = (separation - torch.round(separation)) @ matrix[:, None]
        distance = separation.norm(dim=-1)
        shortfall = torch.relu(closest_allowed - distance) * different
        too_close = shortfall > 0
        if not too_close.any():
            break
        direction = separation / (distance[..., None] + 1e-6)
        push = (shortfall[..., None] / 2.0 * direction).sum(2) / too_close.sum(-1, keepdim=True).clamp(min=1)
        positions = (positions + push @ inverse).clamp(0.0, 1.0)
    corrected = features.clone()
    corrected[:, 0:3] = (positions * 2.0 - 1.0).transpose(1, 2)
    return corrected
