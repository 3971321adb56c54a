"""Issue 25 item 3, the symmetry-refinement lever, sized before any relaxation: how many generated PCCD crystals
have any symmetry for `SpacegroupAnalyzer` to refine to?

Symmetry refinement replaces a generated crystal by its refined cell in the space group found at a tolerance; a
crystal found in P1 (or P-1) at every tolerance is left as it is, so the lever can only change the rest. Reads the
shipped PCCD rows (tuning and held-out systems, seeds 0 and 1; the final set, seeds 0-2), writes
docs/benchmark/symmetry_lever.json.

With ``--relax``, the crystals of the tuning and held-out systems that have symmetry at 0.3 A are refined (their
primitive standard cell in that space group) and judged again as their unrefined selves were (CHGNet alone, 300 FIRE
steps, mp-structures hull), paired crystal by crystal.

    python scripts/symmetry_lever.py [--relax]
"""
import gzip
import json
import sys
from collections import Counter
from pathlib import Path

from pymatgen.core import Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from pccd_flows.benchmark.generators import cell_composition
from pccd_flows.benchmark.run import judge
from pccd_flows.benchmark.schemas import BenchmarkCandidate

TOLERANCES = (0.01, 0.1, 0.3, 0.5)  # A; angle tolerance 5 degrees
docs = Path("docs/benchmark")
result = {"tolerances_angstrom": TOLERANCES, "sets": {}}
for name, files in (("tuning_and_heldout", ("candidates.jsonl.gz", "candidates_seed1.jsonl.gz")),
                    ("final", ("candidates_final.jsonl.gz",))):
    structures, rows = {}, {}
    for file in files:
        with gzip.open(docs / file, "rt") as handle:
            for row in map(json.loads, handle):
                if row["generator"] == "pccd" and row.get("structure"):
                    structures[row["run_key"], row["chemsys"], row["index"]] = Structure.from_dict(row["structure"])
                    rows[row["run_key"], row["chemsys"], row["index"]] = row
    above_p1 = Counter()
    above_p_1 = Counter()
    for structure in structures.values():
        for tolerance in TOLERANCES:
            try:
                number = SpacegroupAnalyzer(structure, symprec=tolerance, angle_tolerance=5).get_space_group_number()
            except Exception:  # noqa: BLE001 - spglib gives up on a few distorted cells: no symmetry found
                number = 1
            above_p1[tolerance] += number > 1
            above_p_1[tolerance] += number > 2
    result["sets"][name] = {"crystals": len(structures),
                            "above_P1": {str(t): above_p1[t] for t in TOLERANCES},
                            "above_P-1": {str(t): above_p_1[t] for t in TOLERANCES}}
    if name == "tuning_and_heldout" and "--relax" in sys.argv:
        refined = []
        for key, structure in structures.items():
            analyzer = SpacegroupAnalyzer(structure, symprec=0.3, angle_tolerance=5)
            if analyzer.get_space_group_number() > 1:
                cell = analyzer.get_primitive_standard_structure()
                refined.append(BenchmarkCandidate(
                    generator="pccd_symmetrized", chemsys=key[1], index=len(refined), formula=rows[key]["formula"],
                    cell_composition=cell_composition(cell), structure=cell.as_dict(),
                    origin={"run_key": key[0], "index": key[2], "e_above_hull_unrefined": rows[key]["e_above_hull"],
                            "space_group": analyzer.get_space_group_symbol()}))
        judged, _ = judge(refined, "chgnet", "mp-structures", 300, 0.05, "none")
        pairs = [{"formula": r.formula, "space_group": r.origin["space_group"],
                  "e_above_hull_unrefined": r.origin["e_above_hull_unrefined"], "e_above_hull_refined": r.e_above_hull}
                 for r in judged]
        both = [p for p in pairs if p["e_above_hull_unrefined"] is not None and p["e_above_hull_refined"] is not None]
        result["sets"][name]["refined_at_0.3"] = {
            "pairs": pairs,
            "stable_unrefined": sum(p["e_above_hull_unrefined"] <= 0.1 for p in both),
            "stable_refined": sum(p["e_above_hull_refined"] <= 0.1 for p in both),
            "refined_lower": sum(p["e_above_hull_refined"] < p["e_above_hull_unrefined"] - 0.005 for p in both),
            "refined_higher": sum(p["e_above_hull_refined"] > p["e_above_hull_unrefined"] + 0.005 for p in both)}
(docs / "symmetry_lever.json").write_text(json.dumps(result, indent=2) + "\n")
print(json.dumps(result, indent=2))
