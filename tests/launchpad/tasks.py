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


def rlaunch_signalled_after_checkout(argv: list[str]) -> int:
    """`rlaunch` that sends itself SIGTERM right after FireWorks checks a FireWork out, before its task starts.

    The signal then lands outside the task's try block, after FireWorks started the launch's ping thread: the one
    place an interrupted rocket used to hang at exit (the thread waits an hour between pings and is not a daemon).
    Patched here, on FireWorks' side, because no outside process can time a signal into that window.
    """
    import signal

    from fireworks.core import rocket
    from fireworks.scripts.rlaunch_run import rlaunch

    update_checkpoint = rocket.Rocket.update_checkpoint

    def update_then_signal(*args, **kwargs):
        update_checkpoint(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)

    rocket.Rocket.update_checkpoint = staticmethod(update_then_signal)
    return rlaunch(argv)
