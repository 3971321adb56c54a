"""No credential of the store configuration in any file the commands write or in anything they print.

The stores point at 127.0.0.1 on a port nothing listens on: every connection fails, which is what a worker of a
workflow written on another machine sees, and what puts a store's name into error messages.
"""

from __future__ import annotations

import datetime
import os
import socket
import subprocess
import sys
from pathlib import Path

from pccd_flows.stores.redact import redact, remember_secrets

BIN = Path(sys.executable).parent
PASSWORD = "Pw-9f3c2e7a-secret"  # the test's own fake credential, to be found nowhere


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # free once closed: nothing listens there


def run(args: list, cwd: Path, env: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], check=False, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_redact_masks_uris_key_values_and_remembered_secrets():
    remember_secrets({"candidates": {"password": "hunter2-x"}})
    text = redact("mongodb+srv://pccd:p%40ss@db.example.org/pccd; password: 'abc', at hunter2-x")
    assert text == "mongodb+srv://pccd:***@db.example.org/pccd; password: '***', at ***"


def test_no_password_in_workflows_stores_logs_or_output(tmp_path, mg_o_settings):
    port = closed_port()
    stores = tmp_path / "stores.yaml"
    stores.write_text(
        "candidates:\n  '@module': maggma.stores\n  '@class': MongoStore\n  database: pccd\n"
        f"  collection_name: candidates\n  host: 127.0.0.1\n  port: {port}\n  username: pccd\n"
        f"  password: {PASSWORD}\n")
    uri_stores = tmp_path / "uri_stores.yaml"
    uri_stores.write_text(
        "candidates:\n  '@module': maggma.stores\n  '@class': MongoURIStore\n"
        f"  uri: mongodb://pccd:{PASSWORD}@127.0.0.1:{port}/pccd\n  database: pccd\n  collection_name: candidates\n")
    work = tmp_path / "work"
    work.mkdir()
    config = tmp_path / "fw"
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "OMP_NUM_THREADS": "1",
           "PCCD_STORE_FILE": str(stores), "PCCD_CACHE_DIR": str(tmp_path / "cache"),
           "PCCD_STORE_DIR": str(tmp_path / "store"), "PCCD_DATA_FILE": str(mg_o_settings.data_file),
           "PCCD_REFERENCE_STRUCTURES_FILE": str(mg_o_settings.reference_structures_file),
           "JOBFLOW_CONFIG_FILE": str(config / "jobflow.yaml"), "FW_CONFIG_FILE": str(config / "FW_config.yaml")}
    results = [run(["pccd", "launchpad", "init", "--embedded", config], work, env)]
    results.append(run(["pccd", "screen", "--chemsys", "Mg-O", "--n", "1", "--steps", "5", "--relax-steps", "5",
                        "--write-workflow", work / "wf.yaml"], work, env))
    assert results[-1].returncode == 0, results[-1].stderr
    assert "StoreReference" in (work / "wf.yaml").read_text()  # the stores are named, not spelled out
    results.append(run(["lpad", "reset", "--password", datetime.date.today().isoformat()], config, env))
    results.append(run(["lpad", "add", work / "wf.yaml"], config, env))
    # generate runs, then prefilter fails to reach the candidate store: its traceback lands in the LaunchPad
    results.append(run(["rlaunch", "rapidfire", "--nlaunches", "2"], config, env))
    results.append(run(["lpad", "get_fws", "-d", "all"], config, env))
    assert "FIZZLED" in results[-1].stdout and "cannot reach store" in results[-1].stdout, results[-1].stdout[-3000:]
    for spec in (stores, uri_stores):
        unreachable = run(["pccd", "query"], work, {**env, "PCCD_STORE_FILE": str(spec)})
        assert unreachable.returncode != 0 and "cannot reach store" in unreachable.stderr, unreachable.stderr
        results.append(unreachable)
    printed = "".join(result.stdout + result.stderr for result in results)
    assert PASSWORD not in printed
    spec_files = {stores, uri_stores}
    written = [path for path in tmp_path.rglob("*") if path.is_file() and path not in spec_files]
    assert len(written) > 10  # workflow, LaunchPad, launcher directories, job and candidate stores, caches
    leaks = [path for path in written if PASSWORD.encode() in path.read_bytes()]
    assert not leaks, leaks
