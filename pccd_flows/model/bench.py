"""Throughput of the default preset and sampler against the paper's configuration, side by side in one run."""

from __future__ import annotations

import time

import numpy as np
import torch
from pydantic import BaseModel

from pccd_flows.codec.decode import decode_tensor
from pccd_flows.codec.encode import DEFAULT_CODEC
from pccd_flows.model.checkpoint import build_model
from pccd_flows.model.conditions import element_tokens
from pccd_flows.model.config import get_preset
from pccd_flows.model.diffusion import Conditions, GaussianDiffusion, from_features
from pccd_flows.model.generate import SamplerSettings, repulsion_correction
from pccd_flows.settings import DEFAULT_SAMPLER_ETA, DEFAULT_SAMPLER_STEPS


class Throughput(BaseModel):
    preset: str
    parameters: int
    sampler: str
    sampler_steps: int
    train_samples_per_second: float
    seconds_per_denoising_step: float = 0.0
    decode_seconds_per_structure: float
    structures_per_second: float
    extrapolated_from_steps: int | None = None


class BenchReport(BaseModel):
    default: Throughput
    paper: Throughput
    train_speedup: float
    sampling_speedup: float
    torch_threads: int


def _conditions(batch: int) -> Conditions:
    tokens = torch.from_numpy(element_tokens(["Ca", "Sn", "O"])).expand(batch, 3).clone()
    zeros = torch.zeros(batch, dtype=torch.long)
    return Conditions(tokens, zeros, zeros)


def _train_rate(model, batch: int, steps: int) -> float:
    diffusion = GaussianDiffusion(model.config.timesteps)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x0 = torch.rand(batch, 9, model.config.n_points) * 2 - 1
    conditions = _conditions(batch)
    model.train()
    for step in range(steps + 1):
        if step == 1:  # the first step pays for allocation: not counted
            start = time.perf_counter()
        loss = diffusion.loss(model, x0, conditions)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return batch * steps / (time.perf_counter() - start)


@torch.no_grad()
def _sample_rate(model, batch: int, sampler: str, steps: int, measured_steps: int, repeats: int = 3):
    """Seconds per denoising step for a batch, timed over ``measured_steps`` steps of the real sampler (DDIM with
    the default sampler's noise and overlap repulsion; the paper's DDPM as published).

    The fastest of ``repeats`` timings is kept, as ``timeit`` does: a busy machine only ever adds time, so the minimum
    is the rate the code itself allows."""
    model.eval()
    diffusion = GaussianDiffusion(model.config.timesteps)
    x = torch.randn(batch, 9, model.config.n_points)
    conditions = _conditions(batch)
    repulsion = repulsion_correction(SamplerSettings(), conditions.elements, DEFAULT_CODEC)
    diffusion.ddim_sample(model, x, conditions, steps=2)  # warm-up
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        if sampler == "ddpm":
            out = diffusion.ddpm_sample(model, x, conditions, start_step=measured_steps)
        else:
            out = diffusion.ddim_sample(model, x, conditions, steps=measured_steps, eta=DEFAULT_SAMPLER_ETA,
                                        x0_correction=repulsion)
        timings.append((time.perf_counter() - start) / measured_steps)
    return min(timings), from_features(out).numpy()


def _decode_rate(tensors: np.ndarray, limit: int = 32) -> float:
    start = time.perf_counter()
    for tensor in tensors[:limit]:
        try:
            decode_tensor(tensor, ("Ca", "Sn", "O"))
        except ValueError:
            pass
    return (time.perf_counter() - start) / min(limit, len(tensors))


def measure(preset: str, sampler: str, sampler_steps: int, train_batch: int, train_steps: int, sample_batch: int,
            measured_steps: int | None) -> Throughput:
    torch.manual_seed(0)
    config = get_preset(preset)
    model = build_model(config)
    train_rate = _train_rate(model, train_batch, train_steps)
    measured = min(measured_steps or sampler_steps, sampler_steps)
    per_step, tensors = _sample_rate(model, sample_batch, sampler, sampler_steps, measured)
    decode = _decode_rate(tensors)
    total_steps = sampler_steps if sampler == "ddim" else config.timesteps
    per_structure = per_step * total_steps / sample_batch + decode
    return Throughput(
        preset=preset, parameters=sum(p.numel() for p in model.parameters()), sampler=sampler,
        sampler_steps=total_steps, train_samples_per_second=train_rate, seconds_per_denoising_step=per_step,
        decode_seconds_per_structure=decode, structures_per_second=1.0 / per_structure,
        extrapolated_from_steps=measured if measured < total_steps else None,
    )


def run_bench(train_batch: int = 64, train_steps: int = 5, sample_batch: int = 64,
              ddim_steps: int = DEFAULT_SAMPLER_STEPS,
              paper_measured_steps: int = 20) -> BenchReport:
    """The default preset with DDIM against the paper preset with 1000-step DDPM (timed over some steps)."""
    default = measure("default", "ddim", ddim_steps, train_batch, train_steps, sample_batch, None)
    paper = measure("paper", "ddpm", 1000, train_batch, train_steps, sample_batch, paper_measured_steps)
    return BenchReport(
        default=default, paper=paper,
        train_speedup=default.train_samples_per_second / paper.train_samples_per_second,
        sampling_speedup=default.structures_per_second / paper.structures_per_second,
        torch_threads=torch.get_num_threads(),
    )
