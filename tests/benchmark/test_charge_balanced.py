"""`pccd benchmark --charge-balanced` (composition choice by charge balance) end to end in the Mg-O world: real
sampling, relaxation and hull. What PCCD keeps is checked against plain samples of the same noise drawn here."""

from __future__ import annotations

import json

from pymatgen.core import Structure
from typer.testing import CliRunner

from pccd_flows.benchmark.generators import CHARGE_BALANCE_OVERSAMPLE, pccd_candidates
from pccd_flows.benchmark.run import CANDIDATES_FILE, read_rows, systems_title
from pccd_flows.benchmark.schemas import BenchmarkReport
from pccd_flows.cli import app
from pccd_flows.evaluation.metrics import icsd_charge_balanced

runner = CliRunner()


def test_charge_balanced_pccd_keeps_the_first_balanced_samples_and_the_baselines_follow(mg_o_environment, tmp_path):
    n = 2
    out = tmp_path / "run"
    common = ["benchmark", "--chemsys", "Mg-O", "--n", str(n), "--generator", "pccd", "--relax-steps", "10",
              "--reference", "mp-formation", "--confirm-with", "none",
              "--novelty-data", str(mg_o_environment.data_file), "--out", str(out), "--json"]
    result = runner.invoke(app, [*common, "--generator", "random_search", "--charge-balanced"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["settings"]["charge_balanced"] is True
    assert report["generators"]["pccd"]["n"] == n
    assert systems_title(BenchmarkReport.model_validate(report)) == "Mg-O, charge-balanced"

    rows = read_rows(out / CANDIDATES_FILE, report["settings"]["run_key"])
    pccd = sorted((r for r in rows.values() if r.generator == "pccd"), key=lambda r: r.index)
    assert [r.index for r in pccd] == list(range(n))
    kept = [r for r in pccd if r.structure is not None]
    assert kept, [r.generation_error for r in pccd]
    assert all(icsd_charge_balanced(r.formula) for r in kept)
    assert all(r.judged for r in kept)

    # the same noise as plain PCCD's samples: the kept ones are the first charge-balanced of the 4n drawn
    plain = pccd_candidates("Mg-O", CHARGE_BALANCE_OVERSAMPLE * n, seed=0)
    balanced = [r for r in plain if r.structure is not None and icsd_charge_balanced(r.formula)][:n]
    assert [r.origin["index"] for r in kept] == [r.origin["index"] for r in balanced]
    for mine, theirs in zip(kept, balanced, strict=False):
        assert Structure.from_dict(mine.structure) == Structure.from_dict(theirs.structure)

    # the random search takes the compositions PCCD chose, position by position
    for row in kept:
        random_row = rows[f"random_search:Mg-O:{row.index}"]
        assert random_row.cell_composition == row.cell_composition

    # rows of the plain run are stored under another key: neither run reuses the other's crystals
    plain_run = runner.invoke(app, common)
    assert plain_run.exit_code == 0, plain_run.output
    assert json.loads(plain_run.stdout)["settings"]["run_key"] != report["settings"]["run_key"]


def test_charge_balanced_bad_input_is_one_line(mg_o_environment):
    for args, message in (
        (["--held-out", "3", "--charge-balanced"], "per --chemsys system"),
        (["--chemsys", "Mg-O", "--charge-balanced", "--generator", "pccd", "--generator", "pccd_charge_balanced"],
         "leave that one out"),
    ):
        result = runner.invoke(app, ["benchmark", *args])
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
