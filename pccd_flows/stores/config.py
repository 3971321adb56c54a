"""Store configuration in one place.

Production: a JSON/YAML file (``PCCD_STORE_FILE``) of maggma store specs, e.g.
``{"candidates": {"@module": "maggma.stores", "@class": "MongoStore", "database": "pccd", ...}}``.
Embedded default (no server): MontyDB with the sqlite backend under ``PCCD_STORE_DIR`` (default ``./pccd-store``).
MontyDB has no real indexes and its sqlite file takes one writer at a time, so every embedded write runs under a file
lock (:func:`open_store`): two processes writing at once wait for each other instead of failing or losing records.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from filelock import FileLock
from maggma.core import Store
from maggma.stores import MemoryStore, MontyStore
from monty.serialization import loadfn

from pccd_flows.settings import PccdSettings, get_settings

DATABASE_NAME = "pccd"


class StoreError(RuntimeError):
    """A store that cannot be configured or reached."""


def embedded_store(collection: str, directory: str | Path, key: str) -> MontyStore:
    directory = Path(directory).expanduser()
    directory.mkdir(parents=True, exist_ok=True)
    return MontyStore(collection, database_path=str(directory.resolve()), database_name=DATABASE_NAME,
                      storage="sqlite", key=key)


def _configured_store(name: str, settings: PccdSettings, required: bool = True) -> Store | None:
    if settings.store_file is None:
        return None
    try:
        specs = loadfn(settings.store_file)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        raise StoreError(f"cannot read store file {settings.store_file}: {exc}") from exc
    if name not in specs:
        if not required:
            return None
        raise StoreError(f"store file {settings.store_file} has no {name!r} store")
    store = specs[name]
    if not isinstance(store, Store):
        raise StoreError(f"{settings.store_file}: {name!r} is not a maggma store spec (@module/@class)")
    return store


def candidate_store(settings: PccdSettings | None = None) -> Store:
    settings = settings or get_settings()
    return _configured_store("candidates", settings) or embedded_store(
        "candidates", settings.store_dir, key="candidate_id")


def reference_energy_store(settings: PccdSettings | None = None) -> Store:
    """Cache of engine energies of reference structures: computed once per machine, shared by all projects."""
    settings = settings or get_settings()
    return _configured_store("reference_energies", settings, required=False) or embedded_store(
        "reference_energies", settings.cache_dir / "reference-energies", key="key")


def job_store(settings: PccdSettings | None = None):
    """The jobflow JobStore: from the store file (``jobs`` and ``job_data``) or embedded MontyDB beside candidates.

    atomate2's force-field jobs write trajectories to an additional store named ``data``: a JobStore without one
    fails every relaxation.
    """
    from jobflow import JobStore

    settings = settings or get_settings()
    docs = _configured_store("jobs", settings) if settings.store_file else None
    if docs is not None:
        data = _configured_store("job_data", settings)
    else:
        docs = embedded_store("jobs", settings.store_dir, key="uuid")
        data = embedded_store("job_data", settings.store_dir, key="blob_uuid")
    return JobStore(docs, additional_stores={"data": data})


def fireworks_workflow(flow, settings: PccdSettings | None = None):
    """A jobflow Flow as a FireWorks Workflow. Embedded job stores travel inside the workflow (workers on this
    machine reach the same files); with a store file, production workers use their own jobflow.yaml JOB_STORE."""
    from jobflow.managers.fireworks import flow_to_workflow

    settings = settings or get_settings()
    return flow_to_workflow(flow, store=None if settings.store_file else job_store(settings))


def _lock_for(store: Store):
    if isinstance(store, MontyStore) and store.database_path != ":memory:":
        return FileLock(str(Path(store.database_path) / f".{store.collection_name}.lock"))
    return nullcontext()


@contextmanager
def open_store(store: Store, timeout_s: float = 10.0) -> Iterator[Store]:
    """Connect (and hold the embedded store's lock while open); an unreachable database is a one-line error."""
    if hasattr(store, "mongoclient_kwargs"):  # MongoStore: fail in seconds, not pymongo's default 30
        store.mongoclient_kwargs = {"serverSelectionTimeoutMS": int(timeout_s * 1000),
                                    **(store.mongoclient_kwargs or {})}
    with _lock_for(store):
        try:
            store.connect()
            store.count({"_pccd_reachability_probe": True})
        except Exception as exc:  # noqa: BLE001 - pymongo/monty raise many types for "cannot reach"
            raise StoreError(f"cannot reach store {store.name}: {str(exc).splitlines()[0][:200]}") from exc
        try:
            yield store
        finally:
            if not isinstance(store, MemoryStore):
                store.close()
