"""Sampling crystals from a trained PCCD model, each with the provenance needed to reproduce it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from pccd_flows.codec.decode import decode_tensor
from pccd_flows.codec.encode import DEFAULT_CODEC
from pccd_flows.codec.errors import CodecError
from pccd_flows.codec.settings import CodecSettings
from pccd_flows.model.conditions import element_tokens
from pccd_flows.model.diffusion import Conditions, GaussianDiffusion, X0Correction, from_features
from pccd_flows.model.repulsion import repel_overlapping_points, slot_radii
from pccd_flows.schemas.provenance import (  # torch-free records, re-exported here where they were first defined
    GeneratedCrystal,
    GenerationConditions,
    Provenance,
    SamplerSettings,
)


def repulsion_correction(sampler: SamplerSettings, slot_tokens: torch.Tensor,
                         codec: CodecSettings) -> X0Correction | None:
    """The sampler's overlap repulsion for a batch of conditions, or None where it is off."""
    if sampler.repulsion_ratio <= 0 or sampler.repulsion_iterations <= 0 or sampler.repulsion_below_step <= 0:
        return None
    radii, holds_element = slot_radii(slot_tokens)

    def correct(x0: torch.Tensor, t: int) -> torch.Tensor:
        if t > sampler.repulsion_below_step:
            return x0
        return repel_overlapping_points(x0, radii, holds_element, codec, sampler.repulsion_ratio,
                                        sampler.repulsion_iterations)

    return correct


def network_evaluations(sampler: SamplerSettings, timesteps: int) -> int:
    """Denoising steps per sample of ``sampler`` (each one or two network calls, with guidance)."""
    if sampler.sampler == "ddpm":
        return timesteps
    return len(GaussianDiffusion(timesteps).ddim_schedule(sampler.steps))


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
        correction = _chain(_composition_correction(batch, codec),
                            repulsion_correction(sampler, batch_conditions.elements, codec))
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
    return generate_each(model, codec, checkpoint, [conditions] * n, seed, sampler, progress)


def generate_each(model, codec: CodecSettings, checkpoint: dict, requests: Sequence[GenerationConditions],
                  seed: int = 0, sampler: SamplerSettings | None = None,
                  progress: Callable[[int], None] | None = None) -> list[GeneratedCrystal]:
    """Generate and decode one crystal per entry of ``requests``, in one batched run.

    Parameters
    ----------
    model, codec, checkpoint
        As :func:`pccd_flows.model.checkpoint.load_model` returns them.
    requests : sequence of GenerationConditions
        What each sample is asked for (sample i uses noise (seed, i), so any one is reproducible alone).
    seed : int
        The run's seed.
    sampler : SamplerSettings, optional
        Default: the project's default sampler.
    progress : callable, optional
        Called with the number of network evaluations done.

    Returns
    -------
    list of GeneratedCrystal
        One per request, in order; a sample that does not decode carries its error.
    """
    sampler = sampler or SamplerSettings()
    requests = list(requests)
    tensors = sample_tensors(model, requests, seed, sampler, progress=progress, codec=codec)

    def provenance(index: int) -> Provenance:
        return Provenance(checkpoint_sha256=checkpoint["sha256"], checkpoint_path=checkpoint.get("path"),
                          seed=seed, index=index, conditions=requests[index], sampler=sampler)

    return decode_samples(tensors, requests, codec, provenance)
