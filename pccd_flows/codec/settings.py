"""Codec settings: independent of any checkpoint, so tensors from any model decode the same way."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class CodecSettings(BaseModel):
    """How a crystal maps onto the 3 x n_points x 3 point cloud and back.

    Lattice lengths are normalised on a log scale between ``length_min`` and ``length_max``: the paper's division
    by 15 A cannot represent longer axes, and a log scale gives every cell the same *relative* resolution
    (a 0.01 error in the tensor is a 5.7% error on any length), which is what matters for a crystal.
    The bounds cover every cell of the bundled MP data (0.98 A to 104 A before Niggli reduction).
    """

    model_config = ConfigDict(frozen=True)

    n_points: int = Field(128, ge=16, description="Points per channel (the paper's 128).")
    max_sites: int = Field(16, ge=1)
    max_elements: int = Field(3, ge=1, le=3)
    length_min: float = Field(0.5, gt=0, description="Shortest lattice length that can be represented (A).")
    length_max: float = Field(150.0, gt=0, description="Longest lattice length that can be represented (A).")
    angle_min: float = Field(0.0, description="Lattice angle mapped to 0 (degrees).")
    angle_max: float = Field(180.0, description="Lattice angle mapped to 1 (degrees).")
    cell_reduction: Literal["niggli", "none"] = Field(
        "niggli", description="Reduce each cell before encoding, so that equivalent crystals share one tensor."
    )
    cluster_eps: float = Field(
        0.5, gt=0, description="DBSCAN neighbourhood radius (A, periodic Cartesian distance) when decoding."
    )
    cluster_min_samples: int = Field(3, ge=1, description="DBSCAN core-point size when decoding.")
    # 0.5, not 0.6: real crystals come within 0.593 of it (Ta12S2, mp-1425201, decoded as Ta9S2 at 0.6) and a rule
    # for crystals nobody has seen needs a margin; the model's overlapping atoms spread evenly from 0 to 0.9 of it,
    # so no cut separates them from real pairs, and the prefilter's covalent ratio judges the ones left.
    merge_same_element_below: float = Field(
        0.5, ge=0, le=0.6,
        description="Decoded atoms of one element closer than this fraction of the sum of their covalent radii are "
        "one atom the model put twice (0 keeps them apart). The closest pair of one element in the <= 16-site MP "
        "crystals is at 0.593 of it (Ta-Ta in Ta12S2); 0.6 is allowed for checkpoints that recorded it.",
    )

    @property
    def lattice_rows(self) -> int:
        """Rows of channel 2 holding the angles; the remaining rows hold the lengths."""
        return self.n_points // 2

    def normalise_lengths(self, lengths):
        lo, hi = math.log(self.length_min), math.log(self.length_max)
        return (np.log(np.asarray(lengths, dtype=float)) - lo) / (hi - lo)

    def denormalise_lengths(self, values):
        lo, hi = math.log(self.length_min), math.log(self.length_max)
        return np.exp(lo + np.asarray(values, dtype=float) * (hi - lo))

    def normalise_angles(self, angles):
        return (np.asarray(angles, dtype=float) - self.angle_min) / (self.angle_max - self.angle_min)

    def denormalise_angles(self, values):
        return self.angle_min + np.asarray(values, dtype=float) * (self.angle_max - self.angle_min)
