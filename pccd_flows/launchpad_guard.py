"""Make FireWorks' embedded (mongomock) LaunchPad safe for several processes and for interruptions.

FireWorks' mongomock mode (``MONGOMOCK_SERVERSTORE_FILE``, via ``mongomock_persistence``) loads the whole LaunchPad
from a JSON file when a client is created and writes it back when the process exits. Two processes therefore work on
private copies (two ``rlaunch rapidfire`` ran every FireWork twice; a workflow added while an ``rlaunch`` ran was
overwritten at its exit), and a process killed by SIGTERM writes nothing (its states roll back). A lock in shell
functions cannot help: ``nohup``, ``bash -c``, job scripts and ``xargs`` run the plain executables.

So the guard lives inside every Python process that uses such a LaunchPad:

- **Transactions on the file**: every mongomock operation on the LaunchPad's client, and every public ``LaunchPad``
  method as a whole, runs under an exclusive ``flock`` on ``<file>.lock``; it first reloads the file if another
  process changed it and, if it wrote anything, saves it before unlocking (a temporary file and ``os.replace``, so
  a kill at any moment leaves the old or the new state, never half of one). This is what MongoDB gives FireWorks
  (atomic single operations) and more (a whole ``checkout_fw``/``complete_launch`` is atomic), so FireWorks' own
  reservation logic keeps two ``rlaunch`` processes from running a FireWork twice, and states persist as rockets
  finish, not at exit. An operation interrupted (KeyboardInterrupt, SystemExit) is not saved.
- **Interrupted rockets**: while a rocket runs, the first SIGINT or SIGTERM raises :class:`RocketInterrupted` in the
  task (deferred to the end of a LaunchPad transaction if one is under way), FireWorks records the FireWork as
  FIZZLED with that reason, and ``rlaunch`` stops (exit 128 + signal) instead of going on with the next FireWork;
  ``lpad rerun_fws -s FIZZLED`` runs it again. The threads FireWorks starts for a launch (pings, background tasks)
  are daemons, so wherever the interrupt lands the stopped ``rlaunch`` exits at once. A second signal, or SIGKILL, stops at once: the FireWork stays
  RUNNING, and ``lpad detect_lostruns --time SECONDS --fizzle`` finds it.

How it gets there: ``pccd launchpad init --embedded`` writes ``pccd_flows_launchpad_guard.pth`` into this
environment's site-packages (:func:`install_startup_hook`); Python runs it at every start, and it only registers an
import hook (:func:`register`). The patches are applied when, and only when, ``mongomock_persistence`` is imported,
i.e. when FireWorks runs in its mongomock mode; a LaunchPad on MongoDB is untouched. Other mongomock clients in such
a process (maggma's MemoryStore) go back to plain memory: mongomock_persistence gave every one of them the
LaunchPad's file, to load and to overwrite at exit.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.util
import os
import signal
import sys
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager, nullcontext, suppress
from typing import ClassVar

PTH_NAME = "pccd_flows_launchpad_guard.pth"
# One line, run by site.py at start-up: must stay cheap and never break an interpreter if pccd_flows is gone.
PTH_LINE = ("import sys; exec('try:\\n from pccd_flows.launchpad_guard import register\\nexcept ImportError:\\n"
            " pass\\nelse:\\n register()')\n")

# Collection/Database/client methods that never change data; every other public one is treated as a write.
READ_ONLY = {
    "find", "find_one", "count_documents", "estimated_document_count", "list_indexes", "index_information",
    "distinct", "aggregate", "find_raw_batches", "aggregate_raw_batches", "with_options",
    "initialize_unordered_bulk_op", "initialize_ordered_bulk_op", "list_collections", "list_collection_names",
    "get_collection", "dereference", "server_info", "list_database_names", "get_database", "get_default_database",
    "alive", "start_session", "close",
}
# LaunchPad methods not run as one transaction: `maintain --infinite` sleeps between rounds (each round's calls are
# transactions of their own); the others neither touch the database nor need to.
NOT_TRANSACTIONS = {"maintain", "to_dict", "to_db_dict", "as_dict", "get_logdir", "to_format", "to_file"}

_registered = False
_patched = False


class RocketInterrupted(BaseException):
    """SIGINT/SIGTERM while a rocket runs. A BaseException, as KeyboardInterrupt: task code that catches Exception
    must not swallow it; FireWorks' Rocket catches it around the task and records the FireWork as FIZZLED."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"rlaunch received {signal.Signals(signum).name}")


# ---------------------------------------------------------------------------------------------------- the file


class FileServerStore:
    """A mongomock ServerStore kept in step with its JSON file by transactions (see the module docstring).

    One per file and process, shared by every client, so that the LaunchPad's collections are one set of objects.
    """

    _instances: ClassVar[dict[str, FileServerStore]] = {}
    _instances_lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def for_file(cls, path: str) -> FileServerStore:
        path = os.path.abspath(path)
        with cls._instances_lock:
            if path not in cls._instances:
                cls._instances[path] = cls(path)
            return cls._instances[path]

    def __init__(self, path: str):
        from mongomock.store import ServerStore

        self._server = ServerStore.__new__(ServerStore)
        self._server._databases = {}
        self.path = path
        self.lock_path = f"{path}.lock"
        self._rlock = threading.RLock()
        self._depth = 0
        self._owner: int | None = None
        self._fd: int | None = None
        self._stamp: tuple | None = None
        self._version = b""
        self._saves = 0
        self._dirty = False

    # mongomock's MongoClient only calls these two on its store
    def __getitem__(self, db_name):
        return self._server[db_name]

    def __contains__(self, db_name):
        return db_name in self._server

    def list_created_database_names(self):
        return self._server.list_created_database_names()

    def mark_dirty(self) -> None:
        self._dirty = True

    def in_transaction_of(self, thread_id: int) -> bool:
        return self._depth > 0 and self._owner == thread_id

    @contextmanager
    def transaction(self):
        with self._rlock:
            outer = self._depth == 0
            if outer:
                self._lock()
            self._depth += 1
            interrupted = False
            try:
                if outer:
                    self._owner = threading.get_ident()
                    self._refresh()
                yield self
            except BaseException as exc:
                # Ctrl-C, SystemExit, a RocketInterrupted: leave the file as the last finished operation left it
                interrupted = not isinstance(exc, Exception)
                raise
            finally:
                if outer:
                    self._finish(save=self._dirty and not interrupted)
                else:
                    self._depth -= 1
            if outer:
                _raise_pending_interrupt()

    def _finish(self, save: bool) -> None:
        # still "in a transaction" while saving: a signal now is deferred instead of cutting the save short
        try:
            if save:
                self._save()
        finally:
            if self._dirty and not save:
                self._stamp = None  # memory holds unsaved changes: reload before the next operation
            self._dirty = False
            self._owner = None
            self._depth -= 1
            self._unlock()

    def _lock(self) -> None:
        import fcntl

        # opened per transaction: a forked child must not share the parent's lock (flock is per open file)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def _unlock(self) -> None:
        import fcntl

        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def _file_stamp(self) -> tuple | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def _refresh(self) -> None:
        # The file's (inode, mtime, size) alone could repeat (coarse timestamps, a freed inode reused), so every save
        # also writes a fresh token into the lock file: reload when either differs from what this process last saw.
        stamp = self._file_stamp()
        version = os.pread(self._fd, 128, 0)
        if stamp is not None and stamp == self._stamp and version == self._version:
            return
        data: dict = {}
        if stamp is not None:
            from bson import json_util

            with open(self.path, encoding="utf-8") as handle:
                text = handle.read()
            data = json_util.loads(text) if text.strip() else {}
        self._load(data)
        self._stamp, self._version = stamp, version

    def _load(self, data: dict) -> None:
        # Keep mongomock's DatabaseStore/CollectionStore objects (clients and collections hold them) and swap their
        # documents; a new dict, so that a cursor iterating the old one is not disturbed.
        for db_name in set(self._server._databases) | set(data):
            database = self._server[db_name]
            collections = data.get(db_name, {})
            for name in set(database._collections) | set(collections):
                documents = collections.get(name, {}).get("documents", [])
                database[name]._documents = OrderedDict((key, doc) for key, doc in documents)

    def _save(self) -> None:
        from bson import json_util

        self._stamp = None  # until the new file is in place: a failed save means a reload next time
        data = {db_name: {name: {"name": name, "documents": list(collection._documents.items())}
                          for name, collection in database._collections.items()}
                for db_name, database in self._server._databases.items()}
        text = json_util.dumps(data)
        temporary = f"{self.path}.{os.getpid()}.tmp"
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, self.path)
        self._saves += 1
        version = f"{os.getpid()}:{time.time_ns()}:{self._saves}".encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, version, 0)
        self._stamp, self._version = self._file_stamp(), version


def _file_store(obj) -> FileServerStore | None:
    """The FileServerStore behind a mongomock collection, database, client or a LaunchPad, if any."""
    for attribute in ("connection", "database", "client", "_client"):
        while hasattr(obj, "__dict__") and attribute in vars(obj):
            obj = vars(obj)[attribute]
    store = vars(obj).get("_store") if hasattr(obj, "__dict__") else None
    return store if isinstance(store, FileServerStore) else None


def _transaction(obj, writes: bool):
    store = _file_store(obj)
    if store is None:
        return nullcontext()
    return _write_transaction(store) if writes else store.transaction()


@contextmanager
def _write_transaction(store: FileServerStore):
    with store.transaction():
        store.mark_dirty()  # before the call: an operation that fails half-way may have written
        yield


def _guard_method(method, writes: bool):
    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        with _transaction(self, writes):
            return method(self, *args, **kwargs)

    guarded._pccd_guarded = True
    return guarded


def _guard_class(cls, exclude=frozenset(), all_writes=None) -> None:
    for name, value in list(vars(cls).items()):
        if name.startswith("_") or name in exclude or not callable(value) or getattr(value, "_pccd_guarded", False):
            continue
        if isinstance(value, staticmethod | classmethod | type):
            continue
        writes = all_writes if all_writes is not None else name not in READ_ONLY
        setattr(cls, name, _guard_method(value, writes))


# -------------------------------------------------------------------------------------------------- interrupts

_pending_signal: list[int] = []  # the signal received while a rocket ran
_delivered: list[bool] = []  # whether its RocketInterrupted was raised (once: FireWorks must record the FIZZLED)
_rocket_depth = 0


def _raise_pending_interrupt() -> None:
    if (_pending_signal and not _delivered and _rocket_depth
            and threading.current_thread() is threading.main_thread()
            and not any(s.in_transaction_of(threading.get_ident()) for s in FileServerStore._instances.values())):
        _delivered.append(True)
        raise RocketInterrupted(_pending_signal[0])


def _on_signal(signum, frame) -> None:
    if _pending_signal:  # the second signal: stop now, the FireWork stays RUNNING for detect_lostruns
        _say(f"rlaunch: {signal.Signals(signum).name} again, stopping now; {RECOVERY}")
        os._exit(128 + signum)
    _pending_signal.append(signum)
    main = threading.main_thread().ident
    if any(store.in_transaction_of(main) for store in FileServerStore._instances.values()):
        return  # finish the LaunchPad operation under way (e.g. recording a COMPLETED FireWork), raise after it
    _delivered.append(True)
    raise RocketInterrupted(signum)


RECOVERY = ("recover with `lpad detect_lostruns --time 1 --fizzle` (a FireWork left RUNNING), "
            "`lpad rerun_fws -s FIZZLED`, then `rlaunch rapidfire`")


def _say(message: str) -> None:
    for stream in (sys.stdout, sys.stderr):
        with suppress(Exception):  # a closed stream must not keep us from stopping
            stream.flush()
    with suppress(OSError):
        os.write(2, (message + "\n").encode())


def _guard_rocket_run(run):
    @functools.wraps(run)
    def guarded_run(self, *args, **kwargs):
        global _rocket_depth
        if (_file_store(self.launchpad) is None or _rocket_depth
                or threading.current_thread() is not threading.main_thread()):
            return run(self, *args, **kwargs)
        previous = {signum: signal.signal(signum, _on_signal) for signum in (signal.SIGINT, signal.SIGTERM)}
        _rocket_depth += 1
        try:
            return run(self, *args, **kwargs)
        except RocketInterrupted:
            pass  # interrupted outside the task (checking out, recording): the LaunchPad keeps its last state
        finally:
            _rocket_depth -= 1
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            if _pending_signal:
                signum = _pending_signal[0]
                _say(f"rlaunch: stopped by {signal.Signals(signum).name}; {RECOVERY}")
                raise SystemExit(128 + signum)

    guarded_run._pccd_guarded = True
    return guarded_run


# ------------------------------------------------------------------------------------------------ installation


def _patch_mongomock(persistence_module) -> None:
    global _patched
    if _patched:
        return
    _patched = True
    import mongomock
    from mongomock.collection import Collection
    from mongomock.database import Database
    from mongomock.store import ServerStore

    def plain_server_store_init(self, *args, **kwargs):
        self._databases = {}

    ServerStore.__init__ = plain_server_store_init

    class FileBackedMongoClient(mongomock.MongoClient):
        """FireWorks' client in mongomock mode: its data is the shared, file-backed store of the configured file."""

        def __init__(self, *args, **kwargs):
            path = os.environ.get("MONGOMOCK_SERVERSTORE_FILE")
            if path and kwargs.get("_store") is None:
                kwargs["_store"] = FileServerStore.for_file(path)
            super().__init__(*args, **kwargs)

    # fw_config reads mongomock_persistence.MongoClient right after importing it: FireWorks gets this client
    persistence_module.MongoClient = FileBackedMongoClient
    _guard_class(Collection)
    _guard_class(Database)
    _guard_class(mongomock.MongoClient)
    _after_import("fireworks.core.launchpad", _patch_launchpad)
    _after_import("fireworks.core.rocket", _patch_rocket)


def _patch_launchpad(module) -> None:
    _guard_class(module.LaunchPad, exclude=NOT_TRANSACTIONS, all_writes=False)


def _patch_rocket(module) -> None:
    if not getattr(module.Rocket.run, "_pccd_guarded", False):
        module.Rocket.run = _guard_rocket_run(module.Rocket.run)
    # An interrupted rocket does not always reach FireWorks' stop_backgrounds (a signal after the checkout, outside
    # the task; CI also saw one during a relaxation), and the launch's ping thread, waiting an hour between pings,
    # then held the stopped rlaunch at exit. As daemons, the threads Rocket.run starts (pings, background tasks) never
    # hold the process; each ping is a LaunchPad transaction saved by os.replace, so one cut short leaves the file whole.
    if not getattr(module.Thread, "_pccd_guarded", False):
        module.Thread = _DaemonThread


class _DaemonThread(threading.Thread):
    _pccd_guarded = True

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("daemon", True)
        super().__init__(*args, **kwargs)


_post_import: dict[str, list] = {}


def _after_import(name: str, callback) -> None:
    """Run ``callback(module)`` once ``name`` is imported (now, if it is already)."""
    if name in sys.modules:
        callback(sys.modules[name])
    else:
        _post_import.setdefault(name, []).append(callback)


class _PostImportFinder(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps the real loader of a watched module to patch the module once it has run."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in _post_import:
            return None
        callbacks = _post_import.pop(fullname)
        spec = importlib.util.find_spec(fullname)  # safe: fullname is no longer watched
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            for callback in callbacks:
                callback(module)

        spec.loader.exec_module = exec_and_patch
        return spec


def register() -> None:
    """Called at interpreter start (the .pth line): patch FireWorks' mongomock mode if and when it is used."""
    global _registered
    if _registered:
        return
    _registered = True
    sys.meta_path.insert(0, _PostImportFinder())
    _after_import("mongomock_persistence", _patch_mongomock)


def install_startup_hook() -> str:
    """Write the .pth line into this interpreter's site-packages (idempotent); returns its path."""
    import sysconfig

    path = os.path.join(sysconfig.get_paths()["purelib"], PTH_NAME)
    try:
        with open(path, encoding="utf-8") as handle:
            if handle.read() == PTH_LINE:
                return path
    except FileNotFoundError:
        pass
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(PTH_LINE)
    return path
