"""Issue 25 item 3, measured offline on a judged `pccd benchmark --held-out` run: would ranking PCCD's samples before
relaxing them raise its S.U.N. rate?

Levers (each keeps a subset of the samples; only the kept ones would be relaxed):

- ``novel_generated``: drop samples whose *generated* structure already matches a known MP crystal
  (StructureMatcher, the novelty index of the benchmark);
- ``rank_q``: keep the fraction q of samples with the lowest single-point E_hull, i.e. the CHGNet energy of the
  generated structure, unrelaxed, placed on the same hull (E_hull_sp = E_hull_relaxed + e_sp - e_relaxed, per atom:
  the same engine and composition, so every correction cancels);
- both.

The chemical systems are split in two halves by a hash of their name before anything is looked at: the lever and its q
are chosen on the tuning half and reported on the other half. S.U.N. is recomputed within each kept subset
(``benchmark.metrics.mark_sun``). CPU: every sample's generation and single point counts, relaxations only for the
kept ones.

    OMP_NUM_THREADS=1 python scripts/rank_lever.py runs/benchmark/held-out-1000 --json docs/benchmark/rank_lever.json

Single points are cached in ``<out>/single_points.jsonl`` (resumable).
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import time
from pathlib import Path

from pccd_flows.benchmark.metrics import generator_metrics, mark_sun
from pccd_flows.benchmark.run import CANDIDATES_FILE, read_rows
from pccd_flows.evaluation.novelty import default_novelty_source, known_structure_index

QUANTILES = (0.25, 0.5, 0.75)


def half(chemsys: str) -> str:
    return "tuning" if int(hashlib.sha256(chemsys.encode()).hexdigest(), 16) % 2 == 0 else "test"


def single_points(rows, cache: Path) -> dict[str, dict]:
    from chgnet.model import CHGNet

    done = {}
    if cache.is_file():
        for line in cache.read_text().splitlines():
            record = json.loads(line)
            done[record["key"]] = record
    todo = [r for r in rows if r.key not in done]
    if todo:
        model = CHGNet.load(verbose=False)
        with cache.open("a") as handle:
            for number, row in enumerate(todo, start=1):
                start = time.process_time()
                try:
                    energy = float(model.predict_structure(row.generated_structure(), task="e")["e"])
                except ValueError:  # an isolated atom as generated: ranked last
                    energy = float("inf")
                record = {"key": row.key, "e_sp": energy, "cpu_seconds": time.process_time() - start}
                done[row.key] = record
                handle.write(json.dumps(record) + "\n")
                if number % 100 == 0:
                    print(f"single points: {number}/{len(todo)}", flush=True)
    return done


def measure(rows, keep, novelty_index, sp) -> dict:
    kept = [r for r in rows if keep(r)]
    metrics = generator_metrics(mark_sun(kept, novelty_index))
    cpu = sum(r.generation_cpu_seconds + sp[r.key]["cpu_seconds"] for r in rows) + sum(
        r.relax_cpu_seconds for r in kept)
    return {"n_samples": len(rows), "n_kept": len(kept), "n_sun": metrics.n_sun,
            "sun_rate": round(metrics.n_sun / len(kept), 4) if kept else None,
            "stable_rate": metrics.stable_rate, "novel_rate": metrics.novel_rate,
            "sun_per_sample": round(metrics.n_sun / len(rows), 4),
            "cpu_seconds": round(cpu, 1), "cpu_seconds_per_sun": round(cpu / metrics.n_sun, 1) if metrics.n_sun else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--novelty-data", type=Path, help="Known crystals (default: the benchmark's default).")
    parser.add_argument("--limit", type=int, help="Only the first N judged rows (a smoke test).")
    args = parser.parse_args()
    keys = collections.Counter(json.loads(line)["run_key"]
                               for line in (args.out / CANDIDATES_FILE).read_text().splitlines() if line.strip())
    run_key = keys.most_common(1)[0][0]
    rows = [r for r in read_rows(args.out / CANDIDATES_FILE, run_key).values()
            if r.generator == "pccd" and r.judged and r.e_above_hull is not None]
    rows = rows[:args.limit] if args.limit else rows
    novelty_index = known_structure_index(args.novelty_data or default_novelty_source())
    sp = single_points(rows, args.out / "single_points.jsonl")
    hull_sp = {r.key: r.e_above_hull + sp[r.key]["e_sp"] - r.energy_per_atom for r in rows}
    known_generated = {r.key for r in rows if novelty_index.find_match(r.generated_structure()) is not None}

    report = {"run_key": run_key, "n_judged": len(rows), "novelty_source": novelty_index.source.name, "halves": {}}
    for name in ("tuning", "test"):
        mine = [r for r in rows if half(r.chemsys) == name]
        ordered = sorted(hull_sp[r.key] for r in mine)
        levers = {"all": lambda r: True, "novel_generated": lambda r: r.key not in known_generated}
        for q in QUANTILES:
            cut = ordered[max(0, int(q * len(ordered)) - 1)]
            levers[f"rank_{q}"] = lambda r, cut=cut: hull_sp[r.key] <= cut
            levers[f"novel_generated+rank_{q}"] = lambda r, cut=cut: (r.key not in known_generated
                                                                       and hull_sp[r.key] <= cut)
        report["halves"][name] = {
            "systems": len({r.chemsys for r in mine}),
            "levers": {lever: measure(mine, keep, novelty_index, sp) for lever, keep in levers.items()}}
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
