#!/usr/bin/env python3
"""Run a bundle of `pccd validate export-relaxations` where only ASE and the potential (SevenNet, CHGNet) are installed.

    python portable_relax.py bundle.json.gz results.jsonl --workers 14 --device cuda --seconds 480

Relaxation as atomate2's ``AseRelaxer`` does it (FIRE on a ``FrechetCellFilter``, ``optimizer.run(fmax, steps)``;
``steps <= 1`` is a single point). Work is done in priority order: single points of every reference polymorph,
relaxations of the lowest ``top`` polymorphs of each formula (by raw energy per atom), candidates marked ``first``,
then the other candidates. One JSON line per result, flushed as it comes; after ``--seconds`` nothing new starts.
"""

from __future__ import annotations

import argparse
import gzip
import heapq
import json
import multiprocessing as mp
import os
import sys
import time
from collections import defaultdict
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

_calculators: dict = {}
_device = "cpu"


def _init(device: str) -> None:
    global _device
    import torch

    torch.set_num_threads(1)
    _device = device


def _calculator(model: str):
    if model not in _calculators:
        if model.startswith("chgnet"):  # atomate2's CHGNet: CHGNetCalculator with its defaults
            from chgnet.model.dynamics import CHGNetCalculator

            _calculators[model] = CHGNetCalculator(use_device=_device)
        else:
            from sevenn.calculator import SevenNetCalculator

            _calculators[model] = SevenNetCalculator(model=model, device=_device)
    return _calculators[model]


def run_task(task: dict) -> dict:
    import numpy as np
    from ase import Atoms
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE

    started = time.perf_counter()
    row = {k: task[k] for k in ("engine", "role", "kind", "id", "steps", "fmax", "chemsys", "formula") if k in task}
    try:
        atoms = Atoms(numbers=task["numbers"], positions=task["positions"], cell=task["cell"], pbc=True)
        atoms.calc = _calculator(task["model"])
        converged, steps = True, 0
        if task["steps"] > 1:
            optimizer = FIRE(FrechetCellFilter(atoms), logfile=None)
            converged = bool(optimizer.run(fmax=task["fmax"], steps=task["steps"]))
            steps = optimizer.nsteps
        energy = float(atoms.get_potential_energy())
        if not np.isfinite(energy):
            raise ValueError(f"energy {energy}")
        row.update(energy=energy, natoms=len(atoms), converged=converged, optimizer_steps=steps,
                   structure={"cell": atoms.cell.array.round(8).tolist(),
                              "positions": atoms.positions.round(8).tolist(),
                              "numbers": atoms.numbers.tolist()})
    except Exception as exc:  # noqa: BLE001 - recorded, the others go on
        lines = str(exc).strip().splitlines()
        row["error"] = f"{type(exc).__name__}: {lines[-1] if lines else ''}"[:300]
    row["seconds"] = round(time.perf_counter() - started, 3)
    return row


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("bundle")
    parser.add_argument("out")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--seconds", type=float, default=float("inf"))
    parser.add_argument("--engines", default=None, help="comma-separated subset of the bundle's engines")
    parser.add_argument("--skip-references", action="store_true", help="only the candidates (references done)")
    parser.add_argument("--done", default=None, help="results file of an earlier run: skip what it holds")
    args = parser.parse_args()
    started = time.monotonic()
    with gzip.open(args.bundle, "rt") as handle:
        bundle = json.load(handle)
    engines = dict(bundle["engines"])
    if args.engines:
        engines = {e: m for e, m in engines.items() if e in args.engines.split(",")}
    ref = bundle["reference_relax"]
    cand = bundle["candidate_relax"]
    queue: list = []  # (priority class, engine rank, order, task)
    order = 0

    def push(klass: int, rank: int, task: dict) -> None:
        nonlocal order
        order += 1
        heapq.heappush(queue, (klass, rank, order, task))

    pending_static: dict = defaultdict(int)  # (engine, formula) -> single points not back yet
    statics: dict = defaultdict(list)  # (engine, formula) -> [(energy per atom, reference)]
    by_id = {r["id"]: r for r in bundle["references"]}
    done_before = set()
    if args.done:
        with open(args.done) as handle:
            done_before = {(r["engine"], r["role"], r["id"]) for r in map(json.loads, handle) if "error" not in r}
    if args.skip_references:
        bundle["references"] = []
    for rank, (engine, model) in enumerate(engines.items()):
        for r in bundle["references"]:
            push(0, rank, {**r, "engine": engine, "model": model, "role": "reference", "kind": "static",
                           "steps": 1, "fmax": ref["fmax"]})
            pending_static[(engine, r["formula"])] += 1
        for c in bundle["candidates"]:
            if (engine, "candidate", c["id"]) in done_before:
                continue
            push(2 if c.get("first") else 3, rank, {**c, "engine": engine, "model": model, "role": "candidate",
                                                     "kind": "relax", "steps": cand["steps"], "fmax": cand["fmax"]})
    rank_of = {e: i for i, e in enumerate(engines)}
    done = defaultdict(int)
    context = mp.get_context("spawn")
    with open(args.out, "a") as out, ProcessPoolExecutor(args.workers, mp_context=context, initializer=_init,
                                                          initargs=(args.device,)) as pool:
        running: dict = {}
        while queue or running:
            while queue and len(running) < 2 * args.workers and time.monotonic() - started < args.seconds:
                task = heapq.heappop(queue)[3]
                running[pool.submit(run_task, task)] = task
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                task = running.pop(future)
                row = future.result()
                out.write(json.dumps(row) + "\n")
                out.flush()
                done[(row["role"], row["kind"], row["engine"], "error" in row)] += 1
                if row["role"] == "reference" and row["kind"] == "static":
                    key = (row["engine"], row["formula"])
                    if "error" not in row:
                        statics[key].append((row["energy"] / row["natoms"], row["id"]))
                    pending_static[key] -= 1
                    if pending_static[key] == 0:
                        for _, material_id in sorted(statics[key])[:ref["top"]]:
                            push(1, rank_of[row["engine"]], {**by_id[material_id], "engine": row["engine"],
                                                             "model": engines[row["engine"]], "role": "reference",
                                                             "kind": "relax", "steps": ref["steps"],
                                                             "fmax": ref["fmax"]})
            elapsed = time.monotonic() - started
            if sum(done.values()) % 50 == 0:
                print(f"{elapsed:.0f} s: {dict(done)}; {len(queue)} queued", file=sys.stderr, flush=True)
            if elapsed > args.seconds and (queue or any(not f.running() for f in running)):
                queue.clear()
                for future in [f for f in running if f.cancel()]:
                    running.pop(future)
                print(f"{elapsed:.0f} s: time is up, finishing the {len(running)} running", file=sys.stderr,
                      flush=True)
    print(json.dumps({"seconds": round(time.monotonic() - started, 1), "done": {"/".join(map(str, k)): v
                                                                               for k, v in done.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
