"""Sampling crystals from a trained PCCD model, each with the provenance needed to reproduce it."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, Field, field_validator, model_validator
from pymatgen.core import Composition, Element, Structure

from pccd_flows.codec.decode import decode_tensor
from pccd_flows.codec.encode import DEFAULT_CODEC, element_channel, slot_elements
from pccd_flows.codec.errors import CodecError
from pccd_flows.codec.settings import CodecSettings
from pccd_flows.model.conditions import BandGapClass, MagneticClass, element_tokens
from pccd_flows.model.diffusion import Conditions, GaussianDiffusion, X0Correction, from_features
from pccd_flows.model.repulsion import repel_overlapping_points, slot_radii
from pccd_flows.settings import (
    DEFAULT_REPULSION_BELOW_STEP,
    DEFAULT_REPULSION_RATIO,
    DEFAULT_SAMPLER_ETA,
    DEFAULT_SAMPLER_STEPS,
)


class SamplerSettings(BaseModel):
    sampler: Literal["ddim", "ddpm"] = "ddim"
    steps: int = Field(DEFAULT_SAMPLER_STEPS, ge=1, description="Network evaluations of DDIM (DDPM always takes T).")
    guidance: float = Field(1.0, description="Classifier-free guidance scale; 1 = conditional model, no guidance.")
    eta: float = Field(
        DEFAULT_SAMPLER_ETA, ge=0, description="DDIM stochasticity: 0 is deterministic DDIM; 1 (default) adds the ancestral "
        "sampler's noise at every step, which gave fewer overlapping atoms (docs/model-card.md).")
    repulsion_ratio: float = Field(
        DEFAULT_REPULSION_RATIO, ge=0, description="Overlap repulsion: during the last steps, points of different "
        "elements closer than this fraction of the sum of their covalent radii are pushed apart (0 = off; "
        "pccd_flows.model.repulsion).")
    repulsion_below_step: int = Field(
        DEFAULT_REPULSION_BELOW_STEP, ge=0, description="Overlap repulsion acts at diffusion steps t <= this (of T).")
    repulsion_iterations: int = Field(5, ge=0, description="Push iterations per denoising step.")
    batch_size: int = Field(256, ge=1)

    def x0_correction(self, element_tokens: torch.Tensor, codec: CodecSettings) -> X0Correction | None:
        """The overlap repulsion for a batch of conditions, or None where it is off."""
        if self.repulsion_ratio <= 0 or self.repulsion_iterations <= 0 or self.repulsion_below_step <= 0:
            return None
        radii, holds_element = slot_radii(element_tokens)

        def correct(x0: torch.Tensor, t: int) -> torch.Tensor:
            if t > self.repulsion_below_step:
                return x0
            return repel_overlapping_points(x0, radii, holds_element, codec, self.repulsion_ratio,
                                            self.repulsion_iterations)

        return correct

    def network_evaluations(self, timesteps: int) -> int:
        """Denoising steps per sample (each one or two network calls, with guidance)."""
        if self.sampler == "ddpm":
            return timesteps
        return len(GaussianDiffusion(timesteps).ddim_schedule(self.steps))


class GenerationConditions(BaseModel):
    elements: tuple[str, ...] = Field(description="1 to 3 elements, stored in slot order (slot_elements).")
    composition: str | None = Field(
        None, description="Exact cell composition to generate, e.g. Mg3CdO4 (at most the codec's 16 sites): the "
        "sampler fixes the element channel to this composition's and lets the model fill in positions and lattice "
        "(inpainting). None: any composition of the elements.")
    band_gap_class: BandGapClass = BandGapClass.unknown
    magnetic_class: MagneticClass = MagneticClass.unknown

    @model_validator(mode="before")
    @classmethod
    def _elements_of_the_composition(cls, values):
        if isinstance(values, dict) and values.get("composition") and not values.get("elements"):
            values = {**values, "elements": tuple(str(el) for el in _parse_composition(values["composition"]))}
        return values

    @field_validator("elements")
    @classmethod
    def _slot_order(cls, elements):
        element_tokens(elements)  # refuses unknown elements and more than 3
        return slot_elements(elements)

    @model_validator(mode="after")
    def _composition_of_the_elements(self):
        if self.composition is None:
            return self
        composition = _parse_composition(self.composition)
        if {str(el) for el in composition} != set(self.elements):
            raise ValueError(f"composition {self.composition} has elements "
                             f"{'-'.join(sorted(str(el) for el in composition))}, not the requested "
                             f"{'-'.join(sorted(self.elements))}")
        counts = {el: int(composition[el]) for el in self.elements}
        self.composition = "".join(f"{el}{count if count > 1 else ''}" for el, count in counts.items())
        return self

    def element_channel(self, codec: CodecSettings) -> np.ndarray | None:
        """The codec's element channel (n_points, 3) of this composition, or None where it is free."""
        if self.composition is None:
            return None
        composition = _parse_composition(self.composition)
        if composition.num_atoms > codec.max_sites:
            raise ValueError(f"composition {self.composition} has {int(composition.num_atoms)} atoms; the codec "
                             f"encodes at most {codec.max_sites}")
        return element_channel([composition[el] for el in self.elements], codec.n_points)


def _parse_composition(formula: str) -> Composition:
    """A cell's exact composition: known elements, whole atoms, within the default codec's site limit."""
    try:
        composition = Composition(formula)
    except (ValueError, KeyError) as exc:
        raise ValueError(f"cannot read composition {formula!r}: {exc}") from exc
    # pymatgen drops elements counted 0 ("Mg0O" reads as O): a requested element must not vanish silently
    vanished = sorted(set(re.findall(r"[A-Z][a-z]*", formula)) - {str(el) for el in composition})
    if vanished:
        raise ValueError(f"composition {formula!r} counts no {', '.join(vanished)} atoms: every element needs >= 1")
    unknown = [getattr(species, "symbol", str(species)) for species in composition
               if not isinstance(species, Element)]
    if unknown:
        raise ValueError(f"unknown element in composition {formula!r}: {', '.join(unknown)}")
    if any(not float(amount).is_integer() or amount < 1 for amount in composition.values()):
        raise ValueError(f"composition {formula!r} must count whole atoms (e.g. Mg3CdO4, not Mg0.75Cd0.25O)")
    if composition.num_atoms > DEFAULT_CODEC.max_sites:
        raise ValueError(f"composition {formula!r} has {int(composition.num_atoms)} atoms; at most "
                         f"{DEFAULT_CODEC.max_sites} sites are generated")
    return composition


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


def _condition_tensors(conditions: Sequence[GenerationConditions]) -> Conditions:
    return Conditions(
        torch.from_numpy(np.stack([element_tokens(c.elements) for c in conditions])),
        torch.tensor([int(c.band_gap_class) for c in conditions], dtype=torch.long),
        torch.tensor([int(c.magnetic_class) for c in conditions], dtype=torch.long),
    )


def _composition_correction(conditions: Sequence[GenerationConditions], codec: CodecSettings) -> X0Correction | None:
    """Inpainting of the element channel: every step's predicted clean sample gets the requested composition's
    channel, so the noisy sample carries it ever more clearly and the model places the atoms to match."""
    channels = [condition.element_channel(codec) for condition in conditions]
    fixed = torch.tensor([channel is not None for channel in channels])
    if not fixed.any():
        return None
    # network features of channel 1 (pccd_flows.model.diffusion.to_features): rows 3..5, in [-1, 1]
    known = torch.stack([torch.from_numpy(channel.T * 2.0 - 1.0) if channel is not None
                         else torch.zeros(3, codec.n_points) for channel in channels])

    def correct(x0: torch.Tensor, t: int) -> torch.Tensor:
        x0 = x0.clone()
        x0[fixed, 3:6] = known[fixed]
        return x0

    return correct


def _chain(*corrections: X0Correction | None) -> X0Correction | None:
    active = [c for c in corrections if c is not None]
    if not active:
        return None

    def correct(x0: torch.Tensor, t: int) -> torch.Tensor:
        for correction in active:
            x0 = correction(x0, t)
        return x0

    return correct


def sample_tensors(model, conditions: Sequence[GenerationConditions], seed: int, sampler: SamplerSettings,
                   start_index: int = 0, progress: Callable[[int], None] | None = None,
                   codec: CodecSettings = DEFAULT_CODEC) -> np.ndarray:
    """Sample one codec tensor (3, n_points, 3) per entry of ``conditions``; sample i uses noise (seed, index i).

    ``codec`` says how the lattice is read from a sample, for the overlap repulsion.
    """
    config = model.config
    diffusion = GaussianDiffusion(config.timesteps)
    batches = []
    for start in range(0, len(conditions), sampler.batch_size):
        batch = conditions[start : start + sampler.batch_size]
        size = len(batch)
        first = start_index + start
        x = torch.stack([initial_noise(seed, first + i, (config.in_features, config.n_points)) for i in range(size)])
        # the noise of every later step comes from the sample's own (seed, index) stream as well
        generator = [torch.Generator().manual_seed(int(np.random.SeedSequence([seed, first + i, 7]).generate_state(1)[0]))
                     for i in range(size)]
        tick = (lambda size=size: progress(size)) if progress is not None else None
        batch_conditions = _condition_tensors(batch)
        correction = _chain(_composition_correction(batch, codec), sampler.x0_correction(batch_conditions.elements,
                                                                                          codec))
        if sampler.sampler == "ddpm":
            x = diffusion.ddpm_sample(model, x, batch_conditions, sampler.guidance, generator=generator,
                                      progress=tick, x0_correction=correction)
        else:
            x = diffusion.ddim_sample(model, x, batch_conditions, sampler.steps, sampler.guidance,
                                      eta=sampler.eta, generator=generator, progress=tick, x0_correction=correction)
        batches.append(from_features(x).numpy())
    return np.concatenate(batches)


def decode_samples(tensors: np.ndarray, conditions: Sequence[GenerationConditions], codec: CodecSettings,
                   provenance: Callable[[int], Provenance]) -> list[GeneratedCrystal]:
    """Decode sampled tensors; a sample that cannot be decoded is kept with its error, never dropped."""
    crystals = []
    for index, (tensor, condition) in enumerate(zip(tensors, conditions)):
        try:
            structure = decode_tensor(tensor, condition.elements, codec, source=f"sample {index}")
        except CodecError as exc:
            crystals.append(GeneratedCrystal(formula=None, error=str(exc), provenance=provenance(index)))
            continue
        crystals.append(GeneratedCrystal(formula=structure.composition.reduced_formula,
                                         structure=structure.as_dict(), provenance=provenance(index)))
    return crystals


def generate(model, codec: CodecSettings, checkpoint: dict, conditions: GenerationConditions, n: int, seed: int = 0,
             sampler: SamplerSettings | None = None, progress: Callable[[int], None] | None = None,
             ) -> list[GeneratedCrystal]:
    """Generate and decode ``n`` crystals for one set of conditions."""
    sampler = sampler or SamplerSettings()
    requests = [conditions] * n
    tensors = sample_tensors(model, requests, seed, sampler, progress=progress, codec=codec)

    def provenance(index: int) -> Provenance:
        return Provenance(checkpoint_sha256=checkpoint["sha256"], checkpoint_path=checkpoint.get("path"),
                          seed=seed, index=index, conditions=conditions, sampler=sampler)

    return decode_samples(tensors, requests, codec, provenance)
