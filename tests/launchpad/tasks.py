"""A cheap FireWorks task for the LaunchPad tests: its log says which task started and finished, and in which process."""

from __future__ import annotations

import os
import time


def step(log: str, name: str, seconds: float) -> None:
    # one write per line with O_APPEND: lines of concurrent processes never interleave
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(f"start {name} {os.getpid()}\n")
    time.sleep(seconds)
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(f"done {name} {os.getpid()}\n")


def wait_for_file(path: str, timeout: float = 300) -> None:
    """Keep an rlaunch busy until the test says so (it creates ``path``)."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.1)
