"""Issue 25 item 3, the guidance lever on the tuning set: PCCD sampled with classifier-free guidance scale w.

The tuning systems (Ca-Sn-O, Sr-Zr-O), seeds 0 and 1, 8 crystals per system and seed, each w against w = 1 (the
default sampler) with the same noise; judged by CHGNet alone on the mp-structures hull (as the other tuning runs),
S.U.N. marked per seed. Resumable: the rows go to runs/guidance/w{w}.jsonl as each system is judged. Writes
docs/benchmark/tuning_guidance.json.

    OMP_NUM_THREADS=1 python scripts/guidance_lever.py 1 2 3
"""
import json
import statistics
import sys
import time
from pathlib import Path

from pccd_flows.benchmark.generators import pccd_candidates
from pccd_flows.benchmark.metrics import generator_metrics, mark_sun
from pccd_flows.benchmark.run import judge
from pccd_flows.benchmark.schemas import BenchmarkCandidate
from pccd_flows.evaluation.metrics import icsd_charge_balanced
from pccd_flows.evaluation.novelty import default_novelty_source, known_structure_index
from pccd_flows.model.checkpoint import load_model
from pccd_flows.schemas.provenance import SamplerSettings
from pccd_flows.settings import get_settings

SYSTEMS, SEEDS, N = ("Ca-Sn-O", "O-Sr-Zr"), (0, 1), 8
folder = Path("runs/guidance")
folder.mkdir(parents=True, exist_ok=True)
loaded = load_model(get_settings().checkpoint)
novelty = known_structure_index(default_novelty_source())
summary = {"systems": SYSTEMS, "seeds": SEEDS, "n": N, "judge": "chgnet, 300 FIRE steps, fmax 0.05, mp-structures",
           "checkpoint_sha256": loaded[2].get("sha256"), "scales": {}}
for w in (float(arg) for arg in sys.argv[1:]):
    path = folder / f"w{w:g}.jsonl"
    done = {(r["seed"], r["chemsys"]): r for r in map(json.loads, path.read_text().splitlines())} if path.exists() else {}
    for seed in SEEDS:
        for system in SYSTEMS:
            if (seed, system) in done:
                continue
            started = time.process_time()
            rows = pccd_candidates(system, N, seed, loaded=loaded, sampler=SamplerSettings(guidance=w))
            judged, _ = judge(rows, "chgnet", "mp-structures", 300, 0.05, "none")
            done[seed, system] = {"seed": seed, "chemsys": system, "w": w, "cpu_seconds": time.process_time() - started,
                                  "rows": [r.model_dump(mode="json") for r in judged]}
            with path.open("a") as handle:
                handle.write(json.dumps(done[seed, system]) + "\n")
            print(f"w={w:g} seed {seed} {system} judged", flush=True)
    n = stable = novel = sun = balanced = 0
    energies = []
    for seed in SEEDS:
        rows = [BenchmarkCandidate(**r) for system in SYSTEMS for r in done[seed, system]["rows"]]
        metrics = generator_metrics(mark_sun(rows, novelty))
        n += metrics.n
        stable += round(metrics.stable_rate * metrics.n)
        novel += round(metrics.novel_rate * metrics.n)
        sun += round(metrics.sun_rate * metrics.n)
        balanced += sum(1 for r in rows if r.formula and icsd_charge_balanced(r.formula))
        energies += [r.e_above_hull for r in rows if r.e_above_hull is not None]
    summary["scales"][f"{w:g}"] = {"n": n, "stable": stable, "novel": novel, "sun": sun, "charge_balanced": balanced,
                                   "median_e_above_hull": round(statistics.median(energies), 4),
                                   "mean_e_above_hull": round(statistics.mean(energies), 4)}
Path("docs/benchmark/tuning_guidance.json").write_text(json.dumps(summary, indent=2) + "\n")
print(json.dumps(summary["scales"], indent=2))
