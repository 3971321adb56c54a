"""Store configuration in one place.

Production: a JSON/YAML file (``PCCD_STORE_FILE``) of maggma store specs, e.g.
``{"candidates": {"@module": "maggma.stores", "@class": "MongoStore", "database": "pccd", ...}}``.
Embedded default (no server): MontyDB with the sqlite backend under ``PCCD_STORE_DIR`` (default ``./pccd-store``).
MontyDB has no real indexes and its sqlite file takes one writer at a time, so every embedded write runs under a file
lock (:func:`open_store`): two processes writing at once wait for each other instead of failing or losing records.

A store from the store file is serialized (into workflows, job documents, FW.json) as a reference to its entry
(:class:`StoreReference`), never as its spec: specs hold passwords, and a worker resolves the entry from its own
``PCCD_STORE_FILE`` when it runs the job. Messages name stores through :mod:`pccd_flows.stores.redact`.
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
from pccd_flows.stores.redact import describe_store, redact, remember_secrets

DATABASE_NAME = "pccd"


class StoreError(RuntimeError):
    """A store that cannot be configured or reached."""


class LockedMontyStore(MontyStore):
    """A MontyStore whose connection is safe while other processes connect to the same directory.

    maggma's ``MontyStore.connect`` rewrites montydb's storage files of the whole directory (``set_storage``:
    truncate, then write) on every connection, and montydb reads them back on the next. A worker that reads
    between the two sees an empty engine name and fails ("Empty module name"): a study on 2 workers lost a job
    that way. One lock per directory, held only while connecting, serializes the rewrite and its reading.
    """

    def connect(self, force_reset: bool = False):
        if self._coll is not None and not force_reset:
            return
        if self.database_path == ":memory:":
            super().connect(force_reset=force_reset)
            return
        with FileLock(str(Path(self.database_path) / ".montydb-config.lock")):
            super().connect(force_reset=force_reset)


def embedded_store(collection: str, directory: str | Path, key: str) -> LockedMontyStore:
    directory = Path(directory).expanduser()
    directory.mkdir(parents=True, exist_ok=True)
    return LockedMontyStore(collection, database_path=str(directory.resolve()), database_name=DATABASE_NAME,
                            storage="sqlite", key=key)


def _configured_store(name: str, settings: PccdSettings, required: bool = True) -> Store | None:
    if settings.store_file is None:
        return None
    try:
        specs = loadfn(settings.store_file)
    except Exception as exc:  # any unreadable file is the same user error
        reason = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)  # parsers quote lines
        raise StoreError(f"cannot read store file {settings.store_file}: {reason}") from exc
    if not isinstance(specs, dict):
        raise StoreError(f"store file {settings.store_file} is not a mapping of store names to maggma store specs")
    if name not in specs:
        if not required:
            return None
        raise StoreError(f"store file {settings.store_file} has no {name!r} store")
    store = specs[name]
    if not isinstance(store, Store):
        raise StoreError(f"{settings.store_file}: {name!r} is not a maggma store spec (@module/@class)")
    remember_secrets(store.as_dict())
    return _by_reference(store, name, str(Path(settings.store_file).expanduser().resolve()))


class _ByReference:
    """Mixed into every store read from the store file: it serializes (workflows, job documents, FW.json, pickles
    for worker pools) as a :class:`StoreReference` to its entry, and is otherwise the store itself (isinstance,
    attributes, methods)."""

    _pccd_entry: str
    _pccd_store_file: str

    def as_dict(self) -> dict:
        return StoreReference.reference(self._pccd_entry, self._pccd_store_file)

    def __reduce__(self):
        # maggma pickles and copies stores through as_dict: a pickle is rebuilt from the file it names instead
        return _rebuild_configured_store, (self._pccd_entry, self._pccd_store_file)

    def __deepcopy__(self, memo):
        # jobflow deep-copies every maker it turns into a job: copy the store with maggma's own recipe (a fresh,
        # unconnected store from its spec, kept in memory only) and keep it serializing as the reference
        base = type(self).__bases__[1]
        copied = base.__new__(base)
        copied.__setstate__(base.as_dict(self))
        return _by_reference(copied, self._pccd_entry, self._pccd_store_file)


_reference_classes: dict[type, type] = {}


def _by_reference(store: Store, entry: str, store_file: str) -> Store:
    cls = type(store)
    if cls not in _reference_classes:
        _reference_classes[cls] = type(cls.__name__, (_ByReference, cls), {"__doc__": cls.__doc__,
                                                                      "__module__": cls.__module__})
    store.__class__ = _reference_classes[cls]
    store._pccd_entry, store._pccd_store_file = entry, store_file
    return store


def _rebuild_configured_store(entry: str, store_file: str) -> Store:
    return StoreReference.from_dict({"entry": entry, "store_file": store_file}, prefer_recorded=True)


class StoreReference:
    """How a store from ``PCCD_STORE_FILE`` travels: ``{"entry": "candidates", "store_file": PATH}``, never its spec.

    Decoding (``MontyDecoder``, as jobflow and FireWorks do on a worker) returns the real store: the entry of the
    worker's own ``PCCD_STORE_FILE`` (as jobflow takes the JobStore from the worker's JOBFLOW_CONFIG_FILE; HPC nodes
    may mount the configuration elsewhere), else of the file the workflow was made with. With neither, decoding
    fails: a job must not write its results to some default store instead.
    """

    @staticmethod
    def reference(entry: str, store_file: str) -> dict:
        return {"@module": __name__, "@class": "StoreReference", "entry": entry, "store_file": store_file}

    @classmethod
    def from_dict(cls, d: dict, prefer_recorded: bool = False) -> Store:
        settings = get_settings()
        recorded = Path(d["store_file"])
        if settings.store_file is None or (prefer_recorded and recorded.is_file()):
            if not recorded.is_file():
                raise StoreError(f"this job uses the {d['entry']!r} store of a PCCD_STORE_FILE, and none is set here "
                                 f"({recorded} does not exist on this machine): set PCCD_STORE_FILE on this worker")
            settings = settings.model_copy(update={"store_file": recorded})
        store = _configured_store(d["entry"], settings)
        if store is None:
            raise StoreError(f"PCCD_STORE_FILE={settings.store_file} has no {d['entry']!r} store")
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


def dft_reference_store(settings: PccdSettings | None = None) -> Store:
    """DFT energies of the reference phases of a DFT validation: kept beside the candidates they were computed for
    (the study's store carries its whole validation), keyed by protocol fingerprint, force field and MP id."""
    settings = settings or get_settings()
    return _configured_store("dft_references", settings, required=False) or embedded_store(
        "dft_references", settings.store_dir, key="key")


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
    machine reach the same files); with a store file, workers use their own jobflow.yaml JOB_STORE and the flow's
    stores travel as references (:class:`StoreReference`), so no credential is ever written into a workflow."""
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
        except Exception as exc:  # pymongo/monty raise many types for "cannot reach"
            reason = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)[:200]
            raise StoreError(f"cannot reach store {describe_store(store)}: {reason}") from exc
        try:
            yield store
        finally:
            if not isinstance(store, MemoryStore):
                store.close()
