"""`pccd benchmark` end to end on a tiny run in the Mg-O world (real sampling, relaxation and hull)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from pccd_flows.benchmark.schemas import GENERATORS, GeneratorMetrics
from pccd_flows.cli import app

runner = CliRunner()


def test_benchmark_json_keys_and_resume(mg_o_environment, tmp_path):
    out = tmp_path / "run"
    args = ["benchmark", "--chemsys", "Mg-O", "--n", "1", "--relax-steps", "20", "--reference", "mp-formation",
            "--novelty-data", str(mg_o_environment.data_file), "--out", str(out), "--plot", str(tmp_path / "b.png"),
            "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {"systems", "judge", "generators"} <= set(report)
    assert report["systems"] == ["Mg-O"]
    assert report["judge"]["engine"] == "chgnet" and report["judge"]["reference"] == "mp-formation"
    assert report["judge"]["relaxation"]["steps"] == 20
    assert list(report["generators"]) == list(GENERATORS)
    for name, metrics in report["generators"].items():
        assert set(metrics) == set(GeneratorMetrics.model_fields), name
        assert metrics["n"] == metrics["n_judged"] + metrics["n_failed"]
        assert sum(metrics["failures"].values()) == metrics["n_failed"]
    assert report["generators"]["pccd"]["n"] == 1
    # the baselines take PCCD's compositions: as many as PCCD decoded
    decoded = report["generators"]["pccd"]["n_generated"]
    assert report["generators"]["random_search"]["n"] == decoded
    # the Mg-O world's data file has no prototype outside Mg-O: every substitution is a recorded failure
    assert report["generators"]["substitution"]["n_judged"] == 0
    assert (tmp_path / "b.png").stat().st_size > 0 and (out / "benchmark.json").is_file()

    rows = (out / "candidates.jsonl").read_text().splitlines()
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert (out / "candidates.jsonl").read_text().splitlines() == rows  # resumed: nothing made or judged again
    assert json.loads(again.stdout)["generators"] == report["generators"]


def test_benchmark_table_without_json(mg_o_environment, tmp_path):
    result = runner.invoke(app, ["benchmark", "--chemsys", "Mg-O", "--n", "1", "--relax-steps", "20",
                                 "--reference", "mp-formation", "--generator", "pccd",
                                 "--novelty-data", str(mg_o_environment.data_file)])
    assert result.exit_code == 0, result.output
    assert "pccd" in result.stdout and "S.U.N." in result.stdout


def test_benchmark_bad_input_is_one_line(mg_o_environment):
    for args, message in (
        (["--chemsys", "Mg-Xx"], "unknown element Xx"),
        (["--chemsys", "Li-Na-K-Cl"], "1 to 3 different elements"),
        (["--chemsys", "Mg-O", "--generator", "dream"], "unknown generator"),
        (["--chemsys", "Mg-O", "--generator", "random_search"], "keep the pccd generator"),
        (["--chemsys", "Mg-O", "--engine", "mace"], "unknown engine"),
        (["--chemsys", "Mg-O", "--reference", "icsd"], "unknown --reference"),
    ):
        result = runner.invoke(app, ["benchmark", *args])
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
