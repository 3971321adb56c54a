"""Issue 25 item 3, composition choice by charge balance, measured on the final set without relaxing anything.

`random_search` and `substitution` take the cell composition of PCCD's crystal of the same index, so the final set's
rows are paired by position. Restricted to the positions where PCCD's composition has charge-balanced ICSD oxidation
states (`evaluation.metrics.icsd_charge_balanced`), the three generators are compared at the same compositions: what a
PCCD that chose only charge-balanced compositions would face. S.U.N. is marked within each seed's run of each generator,
as `pccd benchmark` does. Reads the shipped rows, writes docs/benchmark/final_charge_balanced_subset.json.

    python scripts/charge_balance_subset.py
"""
import gzip
import json
from pathlib import Path

from pymatgen.core import Composition

from pccd_flows.benchmark.metrics import generator_metrics, mark_sun
from pccd_flows.benchmark.schemas import GENERATORS, BenchmarkCandidate
from pccd_flows.evaluation.metrics import icsd_charge_balanced
from pccd_flows.evaluation.novelty import default_novelty_source, known_structure_index

docs = Path("docs/benchmark")
with gzip.open(docs / "candidates_final.jsonl.gz", "rt") as handle:
    rows = [BenchmarkCandidate.model_validate_json(line) for line in handle]
seed_of = {json.loads((docs / f"final_seed{seed}.json").read_text())["settings"]["run_key"]: seed for seed in range(3)}
novelty = known_structure_index(default_novelty_source())
balanced = {(r.run_key, r.chemsys, r.index) for r in rows
            if r.generator == "pccd" and r.formula and icsd_charge_balanced(Composition(r.formula))}
result = {"positions": sum(1 for r in rows if r.generator == "pccd"), "charge_balanced_positions": len(balanced),
          "novelty_source": novelty.source.name, "subsets": {}}
for subset, keep in (("all", lambda r: True), ("charge_balanced", lambda r: (r.run_key, r.chemsys, r.index) in balanced)):
    table = {}
    for generator in GENERATORS:
        totals = {"n": 0, "stable": 0, "sun": 0, "per_seed_sun": {}}
        for run_key, seed in sorted(seed_of.items(), key=lambda item: item[1]):
            mine = [r for r in rows if r.generator == generator and r.run_key == run_key and keep(r)]
            metrics = generator_metrics(mark_sun(mine, novelty))
            sun = round(metrics.sun_rate * metrics.n)
            totals["n"] += metrics.n
            totals["stable"] += round(metrics.stable_rate * metrics.n)
            totals["sun"] += sun
            totals["per_seed_sun"][seed] = sun
        totals["sun_rate"] = round(totals["sun"] / totals["n"], 4) if totals["n"] else None
        table[generator] = totals
    result["subsets"][subset] = table
(docs / "final_charge_balanced_subset.json").write_text(json.dumps(result, indent=2) + "\n")
print(json.dumps(result, indent=2))
