"""Sampling crystals from a trained PCCD model, each with the provenance needed to reproduce it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, Field, field_validator
from pymatgen.core import Structure

from pccd_flows.codec.decode import decode_tensor
from pccd_flows.codec.encode import slot_elements
from pccd_flows.codec.errors import CodecError
from pccd_flows.codec.settings import CodecSettings
from pccd_flows.model.conditions import BandGapClass, MagneticClass, element_tokens
from pccd_flows.model.diffusion import Conditions, GaussianDiffusion, from_features


class SamplerSettings(BaseModel):
    sampler: Literal["ddim", "ddpm"] = "ddim"
    steps: int = Field(50, ge=1, description="Network evaluations of DDIM (DDPM always takes T).")
    guidance: float = Field(1.0, description="Classifier-free guidance scale; 1 = conditional model, no guidance.")
    eta: float = Field(0.0, ge=0, description="DDIM stochasticity (0 = deterministic).")
    batch_size: int = Field(256, ge=1)


class GenerationConditions(BaseModel):
    elements: tuple[str, ...] = Field(description="1 to 3 elements, stored in slot order (slot_elements).")
    band_gap_class: BandGapClass = BandGapClass.unknown
    magnetic_class: MagneticClass = MagneticClass.unknown

    @field_validator("elements")
    @classmethod
    def _slot_order(cls, elements):
        element_tokens(elements)  # refuses unknown elements and more than 3
        return slot_elements(elements)


class Provenance(BaseModel):
    checkpoint_sha256: str
    checkpoint_path: str | None = None
    seed: int
    index: int = Field(description="Position in the seeded run; the initial noise is drawn from (seed, index).")
    conditions: GenerationConditions
    sampler: SamplerSettings


class GeneratedCrystal(BaseModel):
    formula: str | None
    structure: dict | None = Field(None, description="pymatgen Structure.as_dict(), None if decoding failed.")
    error: str | None = None
    provenance: Provenance

    def to_structure(self) -> Structure | None:
        return Structure.from_dict(self.structure) if self.structure is not None else None


def initial_noise(seed: int, index: int, shape: tuple[int, ...]) -> torch.Tensor:
    """x_T of candidate ``index`` of a run: independent of batch size, so any candidate can be regenerated alone."""
    generator = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, index]).generate_state(1)[0]))
    return torch.randn(shape, generator=generator)


def sample_tensors(model, conditions: GenerationConditions, n: int, seed: int, sampler: SamplerSettings,
                   start_index: int = 0, progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Sample ``n`` codec tensors (n, 3, n_points, 3) for one set of conditions."""
    config = model.config
    diffusion = GaussianDiffusion(config.timesteps)
    tokens = torch.from_numpy(element_tokens(conditions.elements))
    batches = []
    for start in range(0, n, sampler.batch_size):
        size = min(sampler.batch_size, n - start)
        x = torch.stack([initial_noise(seed, start_index + start + i, (config.in_features, config.n_points))
                         for i in range(size)])
        batch_conditions = Conditions(
            tokens.expand(size, 3).clone(),
            torch.full((size,), int(conditions.band_gap_class), dtype=torch.long),
            torch.full((size,), int(conditions.magnetic_class), dtype=torch.long),
        )
        generator = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, start_index + start, 7])
                                                      .generate_state(1)[0]))
        tick = (lambda: progress(size)) if progress is not None else None
        if sampler.sampler == "ddpm":
            x = diffusion.ddpm_sample(model, x, batch_conditions, sampler.guidance, generator=generator, progress=tick)
        else:
            x = diffusion.ddim_sample(model, x, batch_conditions, sampler.steps, sampler.guidance, eta=sampler.eta,
                                      generator=generator, progress=tick)
        batches.append(from_features(x).numpy())
    return np.concatenate(batches)


def generate(model, codec: CodecSettings, checkpoint: dict, conditions: GenerationConditions, n: int, seed: int = 0,
             sampler: SamplerSettings | None = None, progress: Callable[[int], None] | None = None,
             ) -> list[GeneratedCrystal]:
    """Generate and decode ``n`` crystals; a sample that cannot be decoded is kept with its error, never dropped."""
    sampler = sampler or SamplerSettings()
    tensors = sample_tensors(model, conditions, n, seed, sampler, progress=progress)
    crystals = []
    for index, tensor in enumerate(tensors):
        provenance = Provenance(checkpoint_sha256=checkpoint["sha256"], checkpoint_path=checkpoint.get("path"),
                                seed=seed, index=index, conditions=conditions, sampler=sampler)
        try:
            structure = decode_tensor(tensor, conditions.elements, codec, source=f"sample {index}")
        except CodecError as exc:
            crystals.append(GeneratedCrystal(formula=None, error=str(exc), provenance=provenance))
            continue
        crystals.append(GeneratedCrystal(formula=structure.composition.reduced_formula,
                                         structure=structure.as_dict(), provenance=provenance))
    return crystals
