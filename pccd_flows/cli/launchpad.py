"""``pccd launchpad init --embedded DIR``: a complete FireWorks + jobflow configuration that needs no server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml

from pccd_flows.cli.common import fail, stdout

# `pccd screen --launchpad` serializes its own additions on this file; the LaunchPad itself is guarded inside every
# process that opens it (pccd_flows/launchpad_guard.py), on fireworks_mongomock.json.lock

launchpad_app = typer.Typer(help="FireWorks LaunchPad configurations.", no_args_is_help=True)


def embedded_files(directory: Path) -> dict[str, dict]:
    directory = directory.resolve()
    store_dir = directory / "pccd-store"

    def monty(collection: str, key: str, locked: bool = True) -> dict:
        # pccd's own store class serializes montydb's connection across processes; jobflow.yaml names its store
        # classes by bare name and resolves them before pccd_flows is imported, so it keeps maggma's MontyStore
        cls = ("pccd_flows.stores.config", "LockedMontyStore") if locked else ("maggma.stores", "MontyStore")
        return {"@module": cls[0], "@class": cls[1], "collection_name": collection,
                "database_path": str(store_dir), "database_name": "pccd", "storage": "sqlite", "key": key}

    return {
        # FireWorks reads FW_config.yaml from the working directory: `cd DIR` is all it takes
        "FW_config.yaml": {"MONGOMOCK_SERVERSTORE_FILE": str(directory / "fireworks_mongomock.json"),
                           "LAUNCHPAD_LOC": str(directory / "my_launchpad.yaml"),
                           "FWORKER_LOC": str(directory / "my_fworker.yaml")},
        "my_launchpad.yaml": {"host": "localhost", "port": 27017, "name": "pccd_fireworks", "logdir": None,
                              "strm_lvl": "WARNING"},
        "my_fworker.yaml": {"name": "embedded worker", "category": "", "query": "{}"},
        # jobflow's own spec format: "type" instead of MSON's @module/@class
        "jobflow.yaml": {"JOB_STORE": {"docs_store": jobflow_spec(monty("jobs", "uuid", locked=False)),
                                       "additional_stores": {
                                           "data": jobflow_spec(monty("job_data", "blob_uuid", locked=False))}}},
        "stores.yaml": {"candidates": monty("candidates", "candidate_id"),
                        "jobs": monty("jobs", "uuid"), "job_data": monty("job_data", "blob_uuid")},
    }


def jobflow_spec(mson: dict) -> dict:
    return {"type": mson["@class"], **{k: v for k, v in mson.items() if not k.startswith("@")}}


@launchpad_app.command("init")
def init_command(
    embedded: Annotated[Path, typer.Option("--embedded", help="Directory for the embedded configuration.")],
) -> None:
    """Write FW_config.yaml, my_launchpad.yaml, my_fworker.yaml, jobflow.yaml and stores.yaml into DIR."""
    from pccd_flows.launchpad_guard import install_startup_hook

    if embedded.exists() and not embedded.is_dir():
        fail(f"--embedded {embedded}: not a directory")
    try:
        embedded.mkdir(parents=True, exist_ok=True)
        (embedded / "pccd-store").mkdir(exist_ok=True)
    except OSError as exc:
        fail(f"--embedded {embedded}: cannot create the directory ({exc.strerror})")
    try:
        # The embedded LaunchPad is safe for several processes only with the guard loaded in each of them: a .pth
        # in this environment's site-packages loads it in every Python process, rlaunch and lpad included
        hook = install_startup_hook()
    except OSError as exc:
        fail(f"cannot install the embedded LaunchPad's guard into this environment ({exc}): without it two "
             "processes on one embedded LaunchPad lose work; use a writable virtual environment", code=1)
    for name, content in embedded_files(embedded).items():
        (embedded / name).write_text(yaml.safe_dump(content, sort_keys=False))
    mongomock_file = embedded / "fireworks_mongomock.json"
    if not mongomock_file.exists():  # mongomock-persistence reads it before it ever writes it
        mongomock_file.write_text("{}")
    env = embedded.resolve()
    (embedded / "env.sh").write_text(
        "# source this file: pccd, jobflow and FireWorks then use this embedded configuration from any directory.\n"
        "# Any number of rlaunch, lpad and pccd processes may share the embedded LaunchPad (each takes a file lock\n"
        f"# per operation, see pccd_flows/launchpad_guard.py and {hook}).\n"
        f"export PCCD_STORE_FILE={env / 'stores.yaml'}\nexport JOBFLOW_CONFIG_FILE={env / 'jobflow.yaml'}\n"
        f"export FW_CONFIG_FILE={env / 'FW_config.yaml'}\n")
    stdout.print(f"wrote an embedded FireWorks/jobflow configuration to {embedded}: `cd {embedded} && source env.sh`, "
                 "then `pccd screen --launchpad my_launchpad.yaml ...`, `rlaunch rapidfire`, `pccd query`",
                 soft_wrap=True)
