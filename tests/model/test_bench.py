from __future__ import annotations

import pytest

from pccd_flows.model.bench import measure


def test_throughput_is_measured_and_ddpm_extrapolated():
    ddim = measure("tiny", "ddim", 4, train_batch=4, train_steps=1, sample_batch=4, measured_steps=None)
    ddpm = measure("tiny", "ddpm", 1000, train_batch=4, train_steps=1, sample_batch=4, measured_steps=3)
    assert ddim.extrapolated_from_steps is None and ddpm.extrapolated_from_steps == 3
    assert ddim.sampler_steps == 4 and ddpm.sampler_steps == 1000
    assert ddim.train_samples_per_second > 0 and ddim.parameters == ddpm.parameters
    for throughput in (ddim, ddpm):
        assert throughput.seconds_per_denoising_step > 0 and throughput.decode_seconds_per_structure > 0
        # a structure costs its share of every denoising step of its batch, plus its decoding; the DDPM rate is
        # extrapolated from 3 timed steps to all 1000. Wall-clock ratios between the two are left to the benchmark:
        # on a loaded CI machine a single slow step can flip them.
        per_structure = throughput.seconds_per_denoising_step * throughput.sampler_steps / 4
        per_structure += throughput.decode_seconds_per_structure
        assert throughput.structures_per_second == pytest.approx(1 / per_structure)
