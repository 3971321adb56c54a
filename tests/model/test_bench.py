from __future__ import annotations

from pccd_flows.model.bench import measure


def test_throughput_is_measured_and_ddpm_extrapolated():
    ddim = measure("tiny", "ddim", 4, train_batch=4, train_steps=1, sample_batch=4, measured_steps=None)
    ddpm = measure("tiny", "ddpm", 1000, train_batch=4, train_steps=1, sample_batch=4, measured_steps=3)
    assert ddim.extrapolated_from_steps is None and ddpm.extrapolated_from_steps == 3
    assert ddim.train_samples_per_second > 0 and ddim.parameters == ddpm.parameters
    # same network: 1000 DDPM steps must be far slower per structure than 4 DDIM steps
    assert ddim.structures_per_second > 20 * ddpm.structures_per_second
