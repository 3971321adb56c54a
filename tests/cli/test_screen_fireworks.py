"""The screening through the real FireWorks command line on an embedded LaunchPad: init, reset, add, rlaunch, query."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

BIN = Path(sys.executable).parent


def run(args: list[str], cwd: Path, env: dict, timeout: int = 900) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"{args[0]} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


def test_screening_through_lpad_and_rlaunch(mg_o_settings, tmp_path):
    config = tmp_path / "fw"
    run([str(BIN / "pccd"), "launchpad", "init", "--embedded", str(config)], tmp_path, os.environ.copy())
    assert {"FW_config.yaml", "my_launchpad.yaml", "my_fworker.yaml", "jobflow.yaml", "stores.yaml",
            "env.sh"} <= {p.name for p in config.iterdir()}
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "OMP_NUM_THREADS": "1",
           "PCCD_STORE_FILE": str(config / "stores.yaml"), "JOBFLOW_CONFIG_FILE": str(config / "jobflow.yaml"),
           "FW_CONFIG_FILE": str(config / "FW_config.yaml"), "PCCD_DATA_FILE": str(mg_o_settings.data_file),
           "PCCD_CACHE_DIR": str(mg_o_settings.cache_dir),
           "PCCD_REFERENCE_STRUCTURES_FILE": str(mg_o_settings.reference_structures_file)}
    run(["lpad", "reset", "--password", datetime.date.today().isoformat()], config, env)
    run(["pccd", "screen", "--chemsys", "Mg-O", "--n", "2", "--steps", "10", "--relax-steps", "5",
         "--reference", "mp-formation", "--launchpad", "my_launchpad.yaml"], config, env)
    flows = yaml.safe_load(run(["lpad", "get_wflows", "-d", "more"], config, env).stdout)
    assert flows["states"] and set(flows["states"].values()) <= {"READY", "WAITING"}
    run(["rlaunch", "rapidfire"], config, env)
    flows = yaml.safe_load(run(["lpad", "get_wflows", "-d", "more"], config, env).stdout)
    assert set(flows["states"].values()) == {"COMPLETED"}, flows["states"]
    report = json.loads(run(["pccd", "query", "--json"], config, env).stdout)
    assert report["n"] == 2
    for candidate in report["candidates"]:
        assert candidate["provenance"]["sampler"]["steps"] == 10
        assert candidate["prefilter"]["passed"] is not None
        if candidate["prefilter"]["passed"] and not candidate["relaxation"]["error"]:
            assert candidate["stability"]["reference"] == "mp-formation"


def test_study_flow_runs_through_rlaunch(mg_o_settings, tmp_path):
    config = tmp_path / "fw"
    run([str(BIN / "pccd"), "launchpad", "init", "--embedded", str(config)], tmp_path, os.environ.copy())
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "OMP_NUM_THREADS": "1",
           "PCCD_STORE_FILE": str(config / "stores.yaml"), "JOBFLOW_CONFIG_FILE": str(config / "jobflow.yaml"),
           "FW_CONFIG_FILE": str(config / "FW_config.yaml"), "PCCD_DATA_FILE": str(mg_o_settings.data_file),
           "PCCD_CACHE_DIR": str(mg_o_settings.cache_dir), "PCCD_STORE_DIR": str(tmp_path / "store"),
           "PCCD_REFERENCE_STRUCTURES_FILE": str(mg_o_settings.reference_structures_file)}
    run(["lpad", "reset", "--password", datetime.date.today().isoformat()], config, env)
    study = ["pccd", "study", "paper-746", "--name", "mini", "--target", "2", "--system", "Mg-O", "--per-batch",
             "4", "--steps", "10", "--relax-steps", "5", "--reference", "mp-formation",
             "--launchpad", "my_launchpad.yaml"]
    added = run(study, config, env).stdout  # the study's flow: its first screening job adds the rest as it goes
    assert "added 1 fireworks" in added, added
    again = run([*study, "--resume"], config, env).stdout  # nothing handed over twice
    assert "added 0 fireworks" in again, again
    run(["rlaunch", "rapidfire"], config, env)
    flows = yaml.safe_load(run(["lpad", "get_wflows", "-d", "more"], config, env).stdout)
    assert set(flows["states"].values()) == {"COMPLETED"}, flows["states"]
    report = json.loads(run(["pccd", "report", "study", "--name", "mini", "--json"], config, env).stdout)
    assert report["n_structures"] == 2 and report["n_judged"] == 2, report


def test_screening_options_travel_with_the_written_workflow(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from pccd_flows.cli import app

    monkeypatch.chdir(tmp_path)
    path = tmp_path / "wf.yaml"
    result = CliRunner().invoke(app, ["screen", "--chemsys", "Mg-O", "--eta", "0", "--min-covalent-ratio", "0.6",
                                      "--icsd-oxidation-states", "--write-workflow", str(path)])
    assert result.exit_code == 0, result.output
    text = path.read_text()
    assert "min_covalent_ratio: 0.6" in text and "require_icsd_oxidation_states: true" in text
    assert "eta: 0.0" in text
