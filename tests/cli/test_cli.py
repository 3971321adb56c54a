from __future__ import annotations

import json

from typer.testing import CliRunner

from pccd_flows.cli import app
from pccd_flows.data.io import write_records

runner = CliRunner()


def test_data_stats_json(tmp_path, bundled_sample):
    path = tmp_path / "sample.jsonl.gz"
    write_records(bundled_sample[:25], path)
    result = runner.invoke(app, ["data", "stats", "--data", str(path), "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert stats["n_records"] == 25
    assert sum(stats["by_nelements"].values()) == 25
    assert set(stats["property_coverage"]) >= {"band_gap", "formation_energy_per_atom", "total_magnetization"}


def test_data_stats_table_on_bundled_data():
    result = runner.invoke(app, ["data", "stats", "--limit", "100"])
    assert result.exit_code == 0, result.output
    assert "100 crystals" in result.stdout and "Property coverage" in result.stdout


def test_codec_check_json_with_bad_records(tmp_path, bundled_sample, bad_record_set):
    path = tmp_path / "mixed.jsonl.gz"
    write_records([*bundled_sample[:20], *bad_record_set.values()], path)
    report_path = tmp_path / "not-yet" / "report.json"  # like `make demo`: the folder is made
    result = runner.invoke(
        app, ["codec", "check", "--data", str(path), "--json", "--workers", "1", "--out", str(report_path)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    for key in ("n", "atom_count_exact_rate", "composition_exact_rate", "structure_match_rate",
                "max_lattice_length_rel_error", "seconds"):
        assert key in report
    assert report["n"] == 20 and report["n_skipped"] == len(bad_record_set)
    assert report["structure_match_rate"] == 1.0
    assert report["max_lattice_length_rel_error"] < 1e-4
    assert json.loads(report_path.read_text())["n"] == 20


def test_codec_check_limit_on_bundled_data():
    result = runner.invoke(app, ["codec", "check", "--limit", "30", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n"] == 30


def test_missing_and_wrong_data_files_are_one_line_errors(tmp_path):
    result = runner.invoke(app, ["codec", "check", "--data", str(tmp_path / "nope.jsonl.gz")])
    assert result.exit_code == 2
    assert "no such data file" in result.output and "Traceback" not in result.output
    wrong = tmp_path / "notes.txt"
    wrong.write_text("hello")
    result = runner.invoke(app, ["data", "stats", "--data", str(wrong)])
    assert result.exit_code == 2
    assert "unknown data format" in result.output and len(result.output.strip().splitlines()) == 1
