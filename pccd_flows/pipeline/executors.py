"""Running a jobflow Flow on this machine: in this process (jobflow's ``run_locally``) or over N worker processes
through a private embedded FireWorks LaunchPad (one ``rapidfire`` per worker, made safe for several processes by
:mod:`pccd_flows.launchpad_guard`), the same FireWorks path a cluster takes, one FireWork per chunk."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml
from pydantic import BaseModel, Field

WORKER_MODULE = "pccd_flows.pipeline.worker"
LAUNCHPAD_FILE = "my_launchpad.yaml"
MONGOMOCK_FILE = "fireworks_mongomock.json"


class FlowRun(BaseModel):
    """How a flow ran here."""

    executor: str = Field(description="run_locally, or 'embedded LaunchPad, N workers'.")
    failed: list[str] = Field(default_factory=list, description="Names of the jobs (FireWorks) that failed.")
    unfinished: list[str] = Field(default_factory=list, description="Jobs left waiting (their parents failed).")
    seconds: float = 0.0
    interrupted: bool = False


def run_flow(flow, workers: int = 1, directory: Path | None = None, settings=None) -> FlowRun:
    """Run ``flow`` to its end on this machine.

    Parameters
    ----------
    flow : jobflow.Flow
        A flow whose jobs write to the candidate store (its Makers carry the store).
    workers : int
        1: jobflow's ``run_locally`` in this process; more: that many worker processes (one torch thread each) on a
        private embedded FireWorks LaunchPad in ``directory``.
    directory : Path, optional
        Where the private LaunchPad and the workers' launch folders go (reset at every run; default: a folder
        ``fireworks`` in the store directory).
    settings : PccdSettings, optional
        Where the job store is (default: the configured settings).

    Returns
    -------
    FlowRun
        The executor, the failed jobs, the wall time; an interruption (Ctrl-C) stops the workers and is reported,
        not raised.
    """
    from pccd_flows.settings import get_settings

    settings = settings or get_settings()
    started = time.perf_counter()
    if workers <= 1:
        run = _run_here(flow, settings)
    else:
        directory = Path(directory or settings.store_dir / "fireworks")
        run = _run_on_workers(flow, workers, directory, settings)
    return run.model_copy(update={"seconds": time.perf_counter() - started})


class _FailedJobs(logging.Handler):
    def __init__(self):
        super().__init__()
        self.failed: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if " failed with exception:" in message:
            self.failed.append(message.partition(" failed with exception:")[0])


def _run_here(flow, settings) -> FlowRun:
    import warnings

    from jobflow import run_locally

    from pccd_flows.stores.config import job_store

    logger = logging.getLogger("jobflow")
    handler, level = _FailedJobs(), logger.level
    logger.addHandler(handler)
    logger.setLevel(min(level or logging.INFO, logging.INFO))
    interrupted = False
    try:
        with warnings.catch_warnings():  # jobflow's deprecation warnings, once per job
            warnings.simplefilter("ignore", FutureWarning)
            run_locally(flow, store=job_store(settings), log=False)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return FlowRun(executor="run_locally", failed=handler.failed, interrupted=interrupted)


def embedded_launchpad(directory: Path) -> dict[str, str]:
    """Write a fresh embedded (mongomock) FireWorks configuration into ``directory``; the environment variables
    that point a process at it."""
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "FW_config.yaml": {"MONGOMOCK_SERVERSTORE_FILE": str(directory / MONGOMOCK_FILE),
                           "LAUNCHPAD_LOC": str(directory / LAUNCHPAD_FILE),
                           "FWORKER_LOC": str(directory / "my_fworker.yaml"),
                           # the jobs' own lines ("Starting job - ...") say what runs; FireWorks' would double them
                           "ROCKET_STREAM_LOGLEVEL": "WARNING"},
        LAUNCHPAD_FILE: {"host": "localhost", "port": 27017, "name": "pccd_fireworks", "logdir": None,
                         "strm_lvl": "WARNING"},
        # no category: this machine runs generation and relaxation alike
        "my_fworker.yaml": {"name": "pccd local worker", "category": "", "query": "{}"},
    }
    for name, content in files.items():
        (directory / name).write_text(yaml.safe_dump(content, sort_keys=False))
    (directory / MONGOMOCK_FILE).write_text("{}")  # mongomock-persistence reads it before it ever writes it
    # CHGNet's small graphs run as fast on one thread as on two (measured, docs/study): one process per core
    return {"FW_CONFIG_FILE": str(directory / "FW_config.yaml"), "OMP_NUM_THREADS": os.environ.get(
        "PCCD_WORKER_THREADS", "1")}


def _run_on_workers(flow, workers: int, directory: Path, settings) -> FlowRun:
    from jobflow.managers.fireworks import flow_to_workflow

    from pccd_flows.stores.config import job_store

    # workers run in their own launch directories: a relative path (PCCD_STORE_DIR=runs/x) would point elsewhere
    directory = Path(directory).resolve()
    env = {**os.environ, **embedded_launchpad(directory), "PCCD_STORE_DIR": str(Path(settings.store_dir).resolve())}
    # the job store travels in the workflow (and in every FireWork a job adds), so workers need no jobflow.yaml
    workflow = flow_to_workflow(flow, store=job_store(settings))
    path = Path(directory) / "workflow.json"
    workflow.to_file(str(path))
    python = sys.executable
    added = subprocess.run([python, "-m", WORKER_MODULE, "add", str(path)], cwd=directory, env=env, check=False,
                           stdout=sys.stderr, stderr=subprocess.PIPE, text=True)
    if added.returncode != 0:
        last = added.stderr.strip().splitlines()[-1:] or ["no message"]
        raise RuntimeError(f"cannot start the embedded LaunchPad in {directory}: {last[0][:200]}")
    processes = []
    for i in range(workers):
        launch_dir = Path(directory) / f"worker-{i}"
        launch_dir.mkdir(exist_ok=True)
        processes.append(subprocess.Popen([python, "-m", WORKER_MODULE, "launch", str(i)], cwd=launch_dir, env=env,
                                          stdout=sys.stderr))
    interrupted = False
    try:
        while any(p.poll() is None for p in processes):
            if any(p.returncode not in (0, None) for p in processes):
                # a worker that died leaves its FireWork RUNNING, which the others would wait for forever
                for process in processes:
                    if process.poll() is None:
                        process.terminate()
            time.sleep(0.5)
    except KeyboardInterrupt:  # the workers got the terminal's SIGINT too: each records its FireWork and stops
        interrupted = True
        for process in processes:
            process.wait()
    interrupted = interrupted or any(p.returncode not in (0, None) for p in processes)
    states = firework_states(Path(directory) / MONGOMOCK_FILE)
    failed = sorted(name for name, state in states if state == "FIZZLED")
    unfinished = sorted(name for name, state in states if state not in ("COMPLETED", "FIZZLED"))
    return FlowRun(executor=f"embedded LaunchPad, {workers} workers", failed=failed, unfinished=unfinished,
                   interrupted=interrupted)


def firework_states(path: Path) -> list[tuple[str, str]]:
    """(name, state) of every FireWork of an embedded LaunchPad, read from its file (replaced atomically)."""
    from bson import json_util

    data = json_util.loads(Path(path).read_text() or "{}")
    documents = data.get("pccd_fireworks", {}).get("fireworks", {}).get("documents", [])
    return [(doc["name"], doc["state"]) for _, doc in documents]


def open_launchpad(path: Path):
    """A user's FireWorks LaunchPad from its file; the embedded (mongomock) one guarded for several processes."""
    from pccd_flows.launchpad_guard import register

    register()  # also where this environment has no startup hook yet (no `pccd launchpad init` ran in it)
    from fireworks import LaunchPad

    try:
        return LaunchPad.from_file(str(path))
    except Exception as exc:  # a bad file, an unreachable MongoDB...
        raise RuntimeError(f"cannot open the LaunchPad {path}: {str(exc).splitlines()[0][:200]}") from exc
