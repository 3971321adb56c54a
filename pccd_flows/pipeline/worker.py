"""A worker process of :func:`pccd_flows.pipeline.executors.run_flow`: ``add WORKFLOW`` (a fresh LaunchPad with that
workflow) or ``launch N`` (run FireWorks until none is left or can become ready). Its environment points FireWorks at
the private embedded LaunchPad (FW_CONFIG_FILE)."""

from __future__ import annotations

import logging
import sys
import time


def main(argv: list[str]) -> int:
    # first: the guard makes the embedded LaunchPad one shared file for all worker processes
    from pccd_flows.launchpad_guard import register

    register()
    from fireworks import FWorker, LaunchPad, Workflow
    from fireworks.core.rocket_launcher import rapidfire
    from fireworks.fw_config import FWORKER_LOC, LAUNCHPAD_LOC

    launchpad = LaunchPad.from_file(LAUNCHPAD_LOC)
    command = argv[0]
    if command == "add":
        launchpad.reset("", require_password=False)
        launchpad.add_wf(Workflow.from_file(argv[1]))
        return 0
    worker = argv[1] if len(argv) > 1 else "0"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"[worker {worker} %(asctime)s] %(message)s", "%H:%M:%S"))
    for name in ("jobflow", "pccd_flows"):  # which job starts and ends, and the study's batch lines
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    fworker = FWorker.from_file(FWORKER_LOC)
    while True:
        rapidfire(launchpad, fworker, nlaunches=0, sleep_time=1, strm_lvl="WARNING")
        # rapidfire stops when nothing is ready and no running FireWork has waiting children; but a running job may
        # still add FireWorks (the study's screening adds the next batches and their relaxations): wait for it
        if not launchpad.get_fw_ids({"state": {"$in": ["RUNNING", "RESERVED", "READY"]}}):
            return 0
        time.sleep(1)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
