"""Processes connecting to one embedded store directory at once (a study's workers, `pccd query` beside them)."""

import subprocess
import sys

CONNECT = """
import sys
from pccd_flows.stores.config import embedded_store
failures = 0
for _ in range(int(sys.argv[3])):
    store = embedded_store(sys.argv[2], sys.argv[1], key="key")
    try:
        store.connect()
        store.count({})
    except Exception as exc:  # montydb's race shows as ValueError("Empty module name") or others
        failures += 1
        print(type(exc).__name__, exc, file=sys.stderr)
    finally:
        if store._coll is not None:
            store.close()
print(failures)
"""


def test_three_processes_connecting_to_one_directory_never_fail(tmp_path):
    # maggma's MontyStore rewrote montydb's storage files on every connection: unlocked, about a third of these
    # connections failed (measured 85-122 of 300 per process)
    workers = [subprocess.Popen([sys.executable, "-c", CONNECT, str(tmp_path / "store"), collection, "120"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for collection in ("candidates", "jobs", "job_data")]
    results = [worker.communicate(timeout=300) for worker in workers]
    assert all(worker.returncode == 0 for worker in workers), [err[-2000:] for _, err in results]
    assert [int(out.strip()) for out, _ in results] == [0, 0, 0], [err[-2000:] for _, err in results]
