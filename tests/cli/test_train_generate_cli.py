from __future__ import annotations

import json

from pymatgen.core import Structure
from typer.testing import CliRunner

from pccd_flows.cli import app

runner = CliRunner()


def test_train_resume_and_generate_end_to_end(tmp_path):
    checkpoint = tmp_path / "tiny.pt"
    common = ["train", "--out", str(checkpoint), "--limit", "64", "--batch-size", "16"]
    result = runner.invoke(app, [*common, "--preset", "tiny", "--max-steps", "3"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, [*common, "--max-steps", "2"])
    assert result.exit_code == 2 and "--resume" in result.output  # never overwrite a checkpoint by accident
    result = runner.invoke(app, [*common, "--max-steps", "2", "--resume", "--lattice-loss-weight", "4"])
    assert result.exit_code == 0, result.output
    assert "step 5" in " ".join(result.stdout.split())  # rich wraps long paths at the terminal width
    from pccd_flows.model.checkpoint import load_checkpoint

    assert load_checkpoint(checkpoint)["training_settings"]["lattice_loss_weight"] == 4.0
    log = [json.loads(line) for line in checkpoint.with_suffix(".log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [3, 5] and all(entry["val_loss"] > 0 for entry in log)

    out = tmp_path / "generated"
    result = runner.invoke(app, ["generate", "--elements", "Ca", "Sn", "O", "--n", "3", "--steps", "4",
                                 "--seed", "1", "--checkpoint", str(checkpoint), "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = json.loads((out / "candidates.json").read_text())
    assert len(rows) == 3
    for row in rows:
        assert row["provenance"]["seed"] == 1 and len(row["provenance"]["checkpoint_sha256"]) == 64
        assert row["provenance"]["conditions"]["elements"] == ["Ca", "Sn", "O"]
        if row["error"] is None:
            assert set(row["valid"]) == {"structural", "compositional", "element_match"}
            assert (out / row["cif"]).exists()
            if row["valid"]["structural"]:  # CIF readers merge overlapping atoms, so only valid ones read back
                structure = Structure.from_file(out / row["cif"])
                assert {str(el) for el in structure.composition.elements} <= {"Ca", "Sn", "O"}

    result = runner.invoke(app, ["generate", "--composition", "SnCa2O4", "--n", "2", "--steps", "4",
                                 "--checkpoint", str(checkpoint), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "of composition Ca2SnO4" in result.output
    conditions = [row["provenance"]["conditions"] for row in json.loads((out / "candidates.json").read_text())]
    assert conditions == [{"elements": ["Ca", "Sn", "O"], "composition": "Ca2SnO4", "band_gap_class": 0,
                           "magnetic_class": 0}] * 2


def test_generate_refuses_bad_requests(tmp_path):
    for elements, message in ((["Ca", "Sn", "O", "Mg"], "1 to 3"), (["Ca", "Qq"], "unknown element")):
        result = runner.invoke(app, ["generate", "--elements", *elements, "--out", str(tmp_path)])
        assert result.exit_code == 2 and message in result.output, result.output
    for request, message in (([], "give --elements"), (["--composition", "Mg0.5O0.5"], "whole atoms"),
                             (["--elements", "Mg", "O", "--composition", "MgCdO2"], "not the requested")):
        result = runner.invoke(app, ["generate", *request, "--out", str(tmp_path)])
        assert result.exit_code == 2 and message in result.output, result.output
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"\x00" * 100)
    result = runner.invoke(app, ["generate", "--elements", "Mg", "O", "--checkpoint", str(broken),
                                 "--out", str(tmp_path)])
    assert result.exit_code == 2 and "corrupt or truncated" in result.output


def test_train_needs_a_budget_and_a_known_preset(tmp_path):
    result = runner.invoke(app, ["train", "--out", str(tmp_path / "x.pt")])
    assert result.exit_code == 2 and "budget" in result.output
    result = runner.invoke(app, ["train", "--out", str(tmp_path / "x.pt"), "--preset", "huge", "--max-steps", "1"])
    assert result.exit_code == 2 and "unknown preset" in result.output
