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


@pytest.mark.parametrize("command", [["bench"], ["bench", "model"]])
def test_pccd_bench_alone_and_bench_model_run_the_model_bench(monkeypatch, command):
    """`pccd bench` is a group now (`bench relax` beside it); alone it still measures the model, as `bench model`."""
    import json

    from typer.testing import CliRunner

    from pccd_flows.cli import app
    from pccd_flows.model import bench
    from pccd_flows.model.bench import BenchReport

    tiny = measure("tiny", "ddim", 2, train_batch=2, train_steps=1, sample_batch=2, measured_steps=None)
    calls = []

    def run_bench(*args):
        calls.append(args)
        return BenchReport(default=tiny, paper=tiny, train_speedup=1.0, sampling_speedup=1.0, torch_threads=1)

    monkeypatch.setattr(bench, "run_bench", run_bench)
    result = CliRunner().invoke(app, [*command, "--train-batch", "3", "--ddim-steps", "7", "--json"])
    assert result.exit_code == 0, result.output
    assert calls == [(3, 5, 64, 7, 20)]
    assert json.loads(result.stdout)["default"]["preset"] == "tiny"
    table = CliRunner().invoke(app, command)
    assert table.exit_code == 0 and "structures/s" in table.stdout
