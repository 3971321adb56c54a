"""The embedded (mongomock) LaunchPad under several plain processes and interruptions, through the real executables.

No shell function, no wrapper: `rlaunch` and `lpad` are started as a job script or `nohup` would start them. The
cheap workflows are PyTasks (tests/launchpad/tasks.py) that log when they start and finish, so a FireWork run twice
shows up in the log even where the LaunchPad would not show it.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]


def run(args: list, cwd: Path, env: dict, timeout: int = 300, ok: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], check=False, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    if ok:
        assert result.returncode == 0, f"{args} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


def embedded_launchpad(tmp_path: Path) -> tuple[Path, dict]:
    config = tmp_path / "fw"
    run([BIN / "pccd", "launchpad", "init", "--embedded", config], tmp_path, os.environ.copy())
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT),  # the workers import tests.launchpad.tasks
           "PCCD_STORE_FILE": str(config / "stores.yaml"), "JOBFLOW_CONFIG_FILE": str(config / "jobflow.yaml"),
           "FW_CONFIG_FILE": str(config / "FW_config.yaml")}
    run(["lpad", "reset", "--password", datetime.date.today().isoformat()], config, env)
    return config, env


def add_steps(config: Path, env: dict, tag: str, n: int, seconds: float, log: Path) -> None:
    """`lpad add` a workflow of n independent PyTask FireWorks named tag0, tag1, ..."""
    from fireworks import Firework, PyTask, Workflow

    fws = [Firework(PyTask(func="tests.launchpad.tasks.step", args=[str(log), f"{tag}{i}", seconds]),
                    name=f"{tag}{i}") for i in range(n)]
    path = config / f"wf_{tag}.json"
    Workflow(fws, name=tag).to_file(str(path))
    run(["lpad", "add", path], config, env)


def fireworks(config: Path, env: dict) -> dict[str, dict]:
    """Every FireWork as FireWorks' own `lpad get_fws -d all` reports it, by name."""
    out = run(["lpad", "get_fws", "-d", "all"], config, env).stdout
    docs = json.loads(out) if out.strip() else []
    docs = docs if isinstance(docs, list) else [docs]
    return {doc["name"]: doc for doc in docs}


def log_counts(log: Path) -> tuple[Counter, Counter]:
    lines = [line.split() for line in log.read_text().splitlines()] if log.exists() else []
    return (Counter(name for kind, name, _ in lines if kind == "start"),
            Counter(name for kind, name, _ in lines if kind == "done"))


def wait_for(predicate, timeout: float = 120, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def assert_each_completed_once(config: Path, env: dict, names: list[str], log: Path) -> None:
    fws = fireworks(config, env)
    assert sorted(fws) == sorted(names), sorted(fws)
    assert {name: fw["state"] for name, fw in fws.items()} == dict.fromkeys(names, "COMPLETED")
    assert all(len(fw["launches"]) == 1 for fw in fws.values())
    _, done = log_counts(log)
    assert done == Counter(names), done  # every task finished exactly once


def test_two_plain_rlaunch_processes_run_every_firework_once(tmp_path):
    config, env = embedded_launchpad(tmp_path)
    log = tmp_path / "steps.log"
    names = [f"a{i}" for i in range(16)]
    add_steps(config, env, "a", 16, 0.4, log)
    workers = [subprocess.Popen([BIN / "rlaunch", "rapidfire"], cwd=config, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [worker.communicate(timeout=300)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs
    assert_each_completed_once(config, env, names, log)
    started, _ = log_counts(log)
    assert started == Counter(names)  # nothing started twice either
    pids = {line.split()[2] for line in log.read_text().splitlines()}
    assert len(pids) == 2, "both rlaunch processes should have run FireWorks at the same time"


def test_workflow_added_while_rlaunch_runs_is_not_lost(tmp_path):
    config, env = embedded_launchpad(tmp_path)
    log = tmp_path / "steps.log"
    add_steps(config, env, "a", 3, 1.0, log)
    worker = subprocess.Popen([BIN / "rlaunch", "rapidfire"], cwd=config, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    wait_for(lambda: log_counts(log)[0], what="the first task")
    add_steps(config, env, "b", 2, 0.2, log)  # a plain `lpad add` while rlaunch holds the LaunchPad open
    output = worker.communicate(timeout=300)[0]
    assert worker.returncode == 0, output
    states = {name: fw["state"] for name, fw in fireworks(config, env).items()}
    assert {"b0", "b1"} <= set(states), states  # not overwritten when rlaunch exited
    run(["rlaunch", "rapidfire"], config, env)  # whatever the first one did not pick up
    assert_each_completed_once(config, env, ["a0", "a1", "a2", "b0", "b1"], log)


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGINT])
def test_interrupted_rlaunch_keeps_finished_states_and_recovers_with_lpad(tmp_path, signum):
    config, env = embedded_launchpad(tmp_path)
    log = tmp_path / "steps.log"
    names = [f"a{i}" for i in range(4)]
    add_steps(config, env, "a", 4, 3.0, log)
    worker = subprocess.Popen([BIN / "rlaunch", "rapidfire"], cwd=config, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    wait_for(lambda: sum(log_counts(log)[0].values()) == 2, what="the second task")
    worker.send_signal(signum)
    output = worker.communicate(timeout=120)[0]
    assert worker.returncode in (-signum, 128 + signum), output
    started, done = log_counts(log)
    interrupted = next(name for name in started if name not in done)
    states = {name: fw["state"] for name, fw in fireworks(config, env).items()}
    # the finished FireWork was saved when it finished, not at an exit that never came; rlaunch did not carry on
    assert states == {**dict.fromkeys(names, "READY"), next(iter(done)): "COMPLETED",
                      interrupted: "RUNNING" if signum == signal.SIGKILL else "FIZZLED"}, states
    if signum == signal.SIGINT:
        assert "lpad rerun_fws -s FIZZLED" in output
    time.sleep(1.5)  # older than --time 1
    run(["lpad", "detect_lostruns", "--time", "1", "--fizzle"], config, env)
    assert fireworks(config, env)[interrupted]["state"] == "FIZZLED"
    run(["lpad", "rerun_fws", "-s", "FIZZLED"], config, env)
    run(["rlaunch", "rapidfire"], config, env)
    assert_each_completed_once(config, env, names, log)


def firework_states(config: Path) -> dict[str, str]:
    """Read the LaunchPad's file directly (it is replaced atomically): cheap enough to poll."""
    from bson import json_util

    data = json_util.loads((config / "fireworks_mongomock.json").read_text() or "{}")
    documents = data.get("pccd_fireworks", {}).get("fireworks", {}).get("documents", [])
    return {doc["name"]: doc["state"] for _, doc in documents}


def test_screen_added_while_rlaunch_runs_then_interrupted_mid_relaxation_and_recovered(tmp_path, mg_o_settings):
    config, env = embedded_launchpad(tmp_path)
    env.update({"PCCD_DATA_FILE": str(mg_o_settings.data_file), "PCCD_CACHE_DIR": str(mg_o_settings.cache_dir),
                "PCCD_REFERENCE_STRUCTURES_FILE": str(mg_o_settings.reference_structures_file)})
    from fireworks import Firework, PyTask

    release = tmp_path / "release"
    busy = Firework(PyTask(func="tests.launchpad.tasks.wait_for_file", args=[str(release)]), name="busy")
    busy.to_file(str(config / "busy.json"))
    run(["lpad", "add", config / "busy.json"], config, env)
    worker = subprocess.Popen([BIN / "rlaunch", "rapidfire"], cwd=config, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    wait_for(lambda: firework_states(config).get("busy") == "RUNNING", what="the busy FireWork")
    # a real screening workflow added while that rlaunch runs (`nohup rlaunch rapidfire &` then `pccd screen`)
    # relaxations long enough (up to 600 steps to a force nobody reaches) for the signal to land inside one: with 5
    # steps an idle machine finished the relaxation between the poll and the signal
    run(["pccd", "screen", "--chemsys", "Mg-O", "--n", "2", "--steps", "10", "--relax-steps", "600",
         "--relax-fmax", "0.001", "--reference", "mp-formation", "--launchpad", "my_launchpad.yaml"], config, env)
    release.touch()

    def one_relaxation(name: str) -> bool:
        # "relax <formula> <candidate id>", not "relax Mg-O": that job only replaces itself by the relaxations and
        # takes a moment, so a signal sent while it ran could land as it finished (CI: nothing left to interrupt)
        return name.startswith("relax ") and "pccd-" in name

    def relaxing() -> bool:
        return any(state == "RUNNING" and one_relaxation(name) for name, state in firework_states(config).items())

    wait_for(relaxing, timeout=300, what="a relaxation")
    worker.send_signal(signal.SIGTERM)
    output = worker.communicate(timeout=120)[0]
    assert worker.returncode == 128 + signal.SIGTERM, output
    states = firework_states(config)
    # stopped, not carried on: the relaxation is FIZZLED (interrupted in its task) or RUNNING (between the task and
    # the LaunchPad's bookkeeping), and what had finished stays COMPLETED
    interrupted = [name for name, state in states.items() if state in ("FIZZLED", "RUNNING")]
    assert len(interrupted) == 1 and one_relaxation(interrupted[0]), states
    assert states["busy"] == "COMPLETED" and states["generate Mg-O"] == "COMPLETED", states

    time.sleep(1.5)  # older than --time 1
    run(["lpad", "detect_lostruns", "--time", "1", "--fizzle"], config, env)
    run(["lpad", "rerun_fws", "-s", "FIZZLED"], config, env)
    run(["rlaunch", "rapidfire"], config, env)
    fws = fireworks(config, env)
    assert {fw["state"] for fw in fws.values()} == {"COMPLETED"}, {n: fw["state"] for n, fw in fws.items()}
    assert all(len(fw["launches"]) == 1 for fw in fws.values())  # the interrupted launch is archived
    report = json.loads(run(["pccd", "query", "--json"], config, env).stdout)
    assert report["n"] == 2
    for candidate in report["candidates"]:  # each judged once: upserted by id, relaxed and placed on the hull
        if candidate["prefilter"]["passed"]:
            assert candidate["relaxation"]["energy_per_atom"] is not None
            assert candidate["stability"]["reference"] == "mp-formation"


def test_rlaunch_signalled_between_checkout_and_task_stops_at_once(tmp_path):
    # CI once waited 120 s for an rlaunch that had said "stopped by SIGTERM": the signal had landed after the checkout,
    # outside the task, and FireWorks' ping thread (not a daemon, one ping an hour) kept the process alive
    config, env = embedded_launchpad(tmp_path)
    log = tmp_path / "steps.log"
    add_steps(config, env, "a", 2, 0.1, log)
    code = "import sys; from tests.launchpad.tasks import rlaunch_signalled_after_checkout as r; r(['rapidfire'])"
    started = time.monotonic()
    result = run([sys.executable, "-c", code], config, env, timeout=90, ok=False)
    assert time.monotonic() - started < 60
    assert result.returncode == 128 + signal.SIGTERM, result.stdout + result.stderr
    assert "lpad detect_lostruns" in result.stderr
    assert not log.exists()  # no task started
    states = {name: fw["state"] for name, fw in fireworks(config, env).items()}
    assert sorted(states.values()) == ["READY", "RUNNING"], states  # checked out, then stopped: a lost run
    time.sleep(1.5)
    run(["lpad", "detect_lostruns", "--time", "1", "--fizzle"], config, env)
    run(["lpad", "rerun_fws", "-s", "FIZZLED"], config, env)
    run(["rlaunch", "rapidfire"], config, env)
    assert_each_completed_once(config, env, ["a0", "a1"], log)
