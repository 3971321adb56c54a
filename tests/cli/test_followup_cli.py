"""`pccd followup` end to end: JSON summary and plots, and one-line errors for what cannot run."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from pccd_flows.cli import app
from tests.factories import KNOWN_PHASES

runner = CliRunner()
SILICON = str(next(KNOWN_PHASES.glob("Si_mp-*.cif")))


def test_followup_phonons_of_a_cif_as_json_with_plots(tmp_path):
    result = runner.invoke(app, ["followup", "--cif", SILICON, "--dft", "none", "--phonons", "chgnet", "--json",
                                 "--plots", str(tmp_path / "plots")])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["formula"] == "Si" and summary["has_imaginary_modes"] is False
    assert summary["phonon_engine"] == "chgnet" and summary["band_gap"] is None
    assert {"band_gap", "is_gap_direct", "has_imaginary_modes", "min_frequency_thz", "engine"} <= set(summary)
    plots = {p.name for p in (tmp_path / "plots").iterdir()}
    assert plots == {"Si_phonon_dispersion.png", "Si_phonon_dos.png"}
    assert all((tmp_path / "plots" / name).stat().st_size > 10_000 for name in plots)


def test_followup_errors_are_one_line(tmp_path):
    both = runner.invoke(app, ["followup", "--cif", SILICON, "--candidate-id", "pccd-x"])
    assert both.exit_code == 2 and "exactly one of" in both.stderr
    vasp = runner.invoke(app, ["followup", "--cif", SILICON, "--dft", "vasp"])
    assert vasp.exit_code == 2 and "--write-workflow" in vasp.stderr
    unknown = runner.invoke(app, ["followup", "--cif", SILICON, "--phonons", "mace"])
    assert unknown.exit_code == 2 and "unknown --phonons" in unknown.stderr


def test_vasp_followup_is_written_as_a_fireworks_workflow(tmp_path):
    from fireworks import Workflow

    path = tmp_path / "wf.yaml"
    result = runner.invoke(app, ["followup", "--cif", SILICON, "--dft", "vasp", "--phonons", "vasp",
                                 "--write-workflow", str(path)])
    assert result.exit_code == 0, result.output
    workflow = Workflow.from_file(str(path))
    assert len(workflow.fws) >= 4
