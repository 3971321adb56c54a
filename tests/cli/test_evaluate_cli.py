from __future__ import annotations

import json

from typer.testing import CliRunner

from pccd_flows.cli import app
from pccd_flows.data.io import write_records

runner = CliRunner()


def test_evaluate_generation_json(tmp_path, tiny_checkpoint, bundled_sample):
    known = tmp_path / "known.jsonl.gz"
    write_records(bundled_sample, known)
    result = runner.invoke(app, ["evaluate", "generation", "--n", "6", "--steps", "3", "--checkpoint",
                                 str(tiny_checkpoint), "--novelty-data", str(known), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    for key in ("structural_validity", "compositional_validity", "element_match_rate", "uniqueness", "novelty",
                "atom_count_wasserstein", "density_wasserstein", "structures_per_second"):
        assert key in report
    assert report["n"] == 6 and 0 <= report["structural_validity"] <= 1
    assert report["checkpoint_sha256"] and report["sampler"]["steps"] == 3
    assert report["target_composition"] is False and 0 <= report["composition_match_rate"] <= 1

    result = runner.invoke(app, ["evaluate", "generation", "--n", "6", "--steps", "3", "--checkpoint",
                                 str(tiny_checkpoint), "--novelty-data", str(known), "--target-composition",
                                 "--json"])
    assert result.exit_code == 0, result.output
    targeted = json.loads(result.stdout)
    assert targeted["target_composition"] is True and 0 <= targeted["composition_match_rate"] <= 1
