"""The study as a jobflow Flow, through the real command, on the shipped checkpoint and a handful of Mg-O candidates:
exactly the target screened, relaxed and judged by two worker processes on the private embedded LaunchPad; an
interruption (Ctrl-C) mid-relaxation resumed without redoing or duplicating anything; a resume with other relaxation
settings relaxing again; the report and figures; the study on a user's embedded LaunchPad through `rlaunch`."""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from pccd_flows.cli import app
from pccd_flows.stores.candidates import CandidateStore
from pccd_flows.study.paper746 import (
    StudyProgress,
    StudySpec,
    load_progress,
    progress_path,
    run_study,
    study_candidates,
)

BIN = Path(sys.executable).parent
STUDY = ["study", "paper-746", "--name", "mini", "--target", "3", "--system", "Mg-O", "--per-batch", "4",
         "--steps", "10", "--reference", "mp-structures", "--chunk-size", "1", "--workers", "2"]


def pccd(args: list[str], env: dict, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "pccd"), *args], env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_study_flow_on_two_workers_resumes_after_ctrl_c_and_relaxes_again_with_other_settings(mg_o_environment,
                                                                                               tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    store = CandidateStore()
    # relaxations that cannot converge (fmax 0.001), so that Ctrl-C lands while one runs
    slow = [*STUDY, "--relax-steps", "200", "--relax-fmax", "0.001"]
    study = subprocess.Popen([str(BIN / "pccd"), *slow], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)

    def relaxed() -> list:
        return [d for d in study_candidates(store, "mini") if d.relaxation is not None]

    wait_for(lambda: relaxed() or study.poll() is not None, 600, "a relaxed candidate")
    os.killpg(study.pid, signal.SIGINT)  # as a terminal's Ctrl-C: to the command and its workers
    _, err = study.communicate(timeout=300)
    assert study.returncode == 130, err[-3000:]
    assert "--resume" in err.strip().splitlines()[-1]
    before = {d.candidate_id: d for d in study_candidates(store, "mini")}
    ids_before = {d.candidate_id for d in store.find({"study": "mini"})}
    done_before = {cid: d.relaxation for cid, d in before.items() if d.relaxation is not None}
    assert len(before) <= 3 and 1 <= len(done_before) < 3, err[-3000:]

    fresh = pccd(slow, env)  # a fresh run would mix two studies
    assert fresh.returncode == 2 and "--resume" in fresh.stderr

    resumed = pccd([*slow, "--resume"], env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "embedded LaunchPad, 2 workers" in resumed.stderr
    after = {d.candidate_id: d for d in study_candidates(store, "mini")}
    assert len(after) == 3 and set(before) <= set(after)  # exactly the target passed, none lost or duplicated
    for cid, relaxation in done_before.items():  # finished relaxations were not redone
        assert after[cid].relaxation == relaxation
    assert all(d.relaxation.steps == 200 and d.e_above_hull is not None for d in after.values())
    assert ids_before <= {d.candidate_id for d in store.find({"study": "mini"})}  # nothing generated was lost
    record = progress_path(StudySpec(name="mini"), mg_o_environment.store_dir)
    progress = StudyProgress.model_validate_json(record.read_text())
    assert progress.finished and progress.screened == 3 and progress.judged == 3 and progress.wall_seconds > 0

    # other relaxation settings: every candidate relaxed again with them, and judged on its new structure
    other = pccd([*STUDY, "--relax-steps", "30", "--resume"], env)
    assert other.returncode == 0, other.stderr[-3000:]
    again = {d.candidate_id: d for d in study_candidates(store, "mini")}
    assert set(again) == set(after)  # the screening was done: nothing generated
    for cid, doc in again.items():
        assert doc.relaxation.steps == 30 and doc.relaxation.fmax == 0.1
        assert doc.relaxation.task_uuid != after[cid].relaxation.task_uuid
        assert doc.stability is not None

    runner = CliRunner()
    plots, table = tmp_path / "plots", tmp_path / "stable.csv"
    result = runner.invoke(app, ["report", "study", "--name", "mini", "--json", "--plots", str(plots),
                                 "--csv", str(table)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n_structures"] == 3 and report["n_judged"] == 3
    fractions = [report[k] for k in ("fraction_ehull_below_250meV", "fraction_ehull_below_80meV",
                                     "fraction_ehull_below_0meV")]
    assert fractions == sorted(fractions, reverse=True) and all(0 <= f <= 1 for f in fractions)
    assert {"sun_fraction", "engine", "reference", "wall_seconds"} <= set(report)
    assert 0 <= report["n_relaxations_converged"] <= report["n_judged"]
    assert sum(row["n"] for row in report["by_initial_min_distance"]) == report["n_judged"]
    assert report["engine"] == "chgnet" and report["reference"] == "mp-structures" and report["wall_seconds"] > 0
    assert report["comparison"][1]["below_250meV"] == 0.6268
    assert (plots / "ehull_distribution.png").stat().st_size > 10_000
    rows = table.read_text().splitlines()
    assert rows[0].startswith("candidate_id,formula") and len(rows) - 1 == report["n_ehull_below_80meV"]


def test_study_on_an_embedded_launchpad_through_rlaunch(mg_o_settings, tmp_path):
    """`--launchpad`: the whole flow (screening jobs in category generate, a relaxation per chunk in relax) is added
    once; a resume while it is there adds nothing; a plain `rlaunch rapidfire` runs it to the end."""
    config = tmp_path / "fw"
    subprocess.run([str(BIN / "pccd"), "launchpad", "init", "--embedded", str(config)], check=True,
                   capture_output=True, timeout=300)
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "OMP_NUM_THREADS": "1",
           "PCCD_STORE_FILE": str(config / "stores.yaml"), "JOBFLOW_CONFIG_FILE": str(config / "jobflow.yaml"),
           "FW_CONFIG_FILE": str(config / "FW_config.yaml"), "PCCD_DATA_FILE": str(mg_o_settings.data_file),
           "PCCD_CACHE_DIR": str(mg_o_settings.cache_dir), "PCCD_STORE_DIR": str(tmp_path / "store"),
           "PCCD_REFERENCE_STRUCTURES_FILE": str(mg_o_settings.reference_structures_file)}

    def run(args: list[str]) -> subprocess.CompletedProcess:
        result = subprocess.run(args, cwd=config, env=env, capture_output=True, text=True, timeout=900, check=False)
        assert result.returncode == 0, f"{args[0]}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
        return result

    run(["lpad", "reset", "--password", datetime.date.today().isoformat()])
    study = ["pccd", "study", "paper-746", "--name", "mini", "--target", "2", "--system", "Mg-O", "--per-batch",
             "4", "--steps", "10", "--relax-steps", "5", "--reference", "mp-formation", "--chunk-size", "1",
             "--launchpad", "my_launchpad.yaml"]
    assert "added 1 fireworks" in run(study).stdout  # the first screening job; it adds the rest as it goes
    assert "added 0 fireworks" in run([*study, "--resume"]).stdout  # nothing handed over twice
    run(["rlaunch", "rapidfire"])
    flows = yaml.safe_load(run(["lpad", "get_wflows", "-d", "more"]).stdout)
    assert set(flows["states"].values()) == {"COMPLETED"}, flows["states"]
    names = list(flows["states"])
    assert sum(n.startswith("relax chunk") for n in names) == 2, names  # one FireWork per chunk of 1
    fws = json.loads(run(["lpad", "get_fws", "-d", "all"]).stdout)
    categories = {fw["name"].split(" ")[0] if fw["name"].startswith("relax") else fw["name"]:
                  fw["spec"].get("_category") for fw in fws}
    assert categories["relax"] == "relax" and categories["mini screen from batch 0"] == "generate", categories
    report = json.loads(run(["pccd", "report", "study", "--name", "mini", "--json"]).stdout)
    assert report["n_structures"] == 2 and report["n_judged"] == 2, report


def test_paper_pools_put_the_case_studies_first_and_draw_the_rest_reproducibly():
    systems = StudySpec().chemical_systems()
    assert systems[:3] == ["Ca-O-Sn", "Cd-Mg-O", "Mg-O-Sc"] and len(systems) == 36 == len(set(systems))
    assert all("O" in s.split("-") for s in systems)
    assert systems == StudySpec().chemical_systems() != StudySpec(seed=1).chemical_systems()


def test_a_progress_record_from_before_the_repulsion_resumes_only_without_it(tmp_path):
    """Runs recorded before the sampler's overlap repulsion existed sampled without it: resuming them with the new
    default would mix two samplers in one study."""
    from pccd_flows.study.paper746 import save_progress

    old = StudySpec(name="old", sampler_repulsion=0.0)
    save_progress(StudyProgress(spec=old, batches_done=7), tmp_path)
    path = progress_path(old, tmp_path)
    record = json.loads(path.read_text())
    del record["spec"]["sampler_repulsion"]
    path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match="sampler_repulsion"):
        load_progress(StudySpec(name="old"), tmp_path, resume=True)
    assert load_progress(old, tmp_path, resume=True).batches_done == 7


def test_a_study_resumes_in_process_only_with_the_checkpoint_its_candidates_came_from(mg_o_environment, tmp_path):
    """One worker runs the flow in this process (jobflow's run_locally); a new release of the shipped checkpoint
    must not slip into a study begun with the old one, the same weights at another path may."""
    from pccd_flows.model.checkpoint import load_checkpoint, save_checkpoint
    from pccd_flows.settings import get_settings

    shipped = get_settings().checkpoint
    payload = load_checkpoint(shipped)
    other = tmp_path / "retrained.pt"
    save_checkpoint(other, {**{k: v for k, v in payload.items() if k not in ("sha256", "path")},
                            "history": [*payload["history"], {"step": payload["step"] + 1}]})
    spec = StudySpec(name="mini-ckpt", target=1, systems=["Mg-O"], per_batch=4, relax_steps=5, sampler_steps=10,
                     reference="mp-formation", relax_workers=1)
    progress = run_study(spec, CandidateStore(), mg_o_environment.store_dir, log=lambda _: None)
    assert progress.executor == "run_locally" and progress.finished and progress.judged == 1, progress.model_dump(exclude={"spec"})

    more = spec.model_copy(update={"target": 2, "checkpoint": str(other)})
    with pytest.raises(ValueError, match="generated with checkpoint"):
        run_study(more, CandidateStore(), mg_o_environment.store_dir, resume=True)
    copy = tmp_path / "same-weights-elsewhere.pt"
    copy.write_bytes(shipped.read_bytes())  # the same file at another path resumes
    progress = run_study(more.model_copy(update={"checkpoint": str(copy)}), CandidateStore(),
                         mg_o_environment.store_dir, resume=True, log=lambda _: None)
    assert progress.screened == 2 and progress.finished
