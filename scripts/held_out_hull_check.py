"""Issue 25 item 2, a check: the 1,000 held-out rows placed on the `mp-structures` hull instead of `mp-formation`.

Only the systems whose CHGNet reference energies are already cached (subsystems of the study's and benchmarks'
systems) are placed, so nothing is relaxed: the rows' CHGNet energies are re-placed on a hull of CHGNet energies of
MP's structures, where CHGNet's errors on the references cancel. Writes docs/benchmark/held_out_1000_hull_check.json.

    python scripts/held_out_hull_check.py
"""
import json
import statistics
from pathlib import Path

from pymatgen.entries.computed_entries import ComputedEntry

from pccd_flows.benchmark.metrics import generator_metrics, mark_sun
from pccd_flows.benchmark.run import CANDIDATES_FILE, read_rows
from pccd_flows.evaluation.novelty import default_novelty_source, known_structure_index
from pccd_flows.settings import get_settings
from pccd_flows.stability.assess import hull_calculators
from pccd_flows.stability.references import (
    REFERENCE_MAX_SITES,
    bundled_reference_energies,
    structures_in_chemsys,
)
from pccd_flows.stores.config import open_store, reference_energy_store

out = Path("runs/benchmark/held-out-1000")
report = json.loads((Path("docs/benchmark/held_out_1000.json")).read_text())
rows = [r for r in read_rows(out / CANDIDATES_FILE, report["settings"]["run_key"]).values() if r.generator == "pccd"]
s = get_settings()
src = s.reference_structures_file or s.data_file
with open_store(reference_energy_store(s)) as cache:
    keys = {d["key"] for d in cache.query({}, properties=["key"])}
keys |= set(bundled_reference_energies(s.reference_energy_seed_file))

def cached(chemsys):
    polymorphs = structures_in_chemsys(chemsys.split("-"), src, REFERENCE_MAX_SITES)
    for items in polymorphs.values():
        if not all(f"static:{m}:chgnet" in keys for m, _ in items):
            return False
        if not any(f"relaxed:{m}:chgnet:300:0.05" in keys for m, _ in items):
            return False
    return True

systems = sorted({r.chemsys for r in rows})
# systems whose references earlier runs computed: subsystems of the study's and benchmarks' systems
known_systems = [
    "Ba-Hf-O", "Ca-La-O", "La-Mg-O", "Mg-Y-O", "Sr-Y-O", "Ba-Ta-O", "Mg-Ta-O", "Ca-Sc-O", "Cd-Mg-O", "Mg-Sc-O",
    "Ca-Cu-O", "Cu-Mg-O", "Ca-Sn-O", "Sr-Zr-O", "Ba-Sn-O", "Al-Mg-O", "Sr-Ti-O", "Ba-Fe-O", "Ba-Nd-O", "Ba-Ni-O",
    "Ca-Mo-O", "Ca-W-O", "Ce-Sr-O", "Co-O", "Gd-Mg-O", "Gd-Sr-O", "Mg-Nd-O", "Mo-Sr-O", "Nd-Sr-O", "Ni-Sr-O",
    "Sr-V-O", "Ti-O", "V-O", "W-O", "Zr-O", "Hf-O", "Gd-O", "Nd-O"]
supersets = [set(k.split("-")) for k in known_systems]
candidates = [c for c in systems if any(set(c.split("-")) <= sup for sup in supersets)]
print(len(candidates), "candidate systems")
ok = [c for c in candidates if cached(c)]
print(len(systems), "systems;", len(ok), "with all CHGNet mp-structures references cached")
subset = [r for r in rows if r.chemsys in ok and r.e_above_hull is not None]
hulls = hull_calculators(ok, "mp-structures", "chgnet")
moved = []
for r in subset:
    structure = r.final_structure()
    entry = ComputedEntry(structure.composition, r.energy_per_atom * len(structure))
    e_new = hulls[r.chemsys].stability(entry).e_above_hull
    moved.append((r, e_new))
index = known_structure_index(default_novelty_source())
before = generator_metrics(mark_sun(subset, index))
after_rows = [r.model_copy(update={"e_above_hull": e}) for r, e in moved]
after = generator_metrics(mark_sun(after_rows, index))
diff = [e - r.e_above_hull for r, e in moved]
res = {"n_systems": len(ok), "systems": ok, "n": len(subset),
       "mp_formation": {"stable_rate": before.stable_rate, "n_sun": before.n_sun, "sun_rate": before.sun_rate, "median_e_above_hull": before.median_e_above_hull},
       "mp_structures": {"stable_rate": after.stable_rate, "n_sun": after.n_sun, "sun_rate": after.sun_rate, "median_e_above_hull": after.median_e_above_hull},
       "shift_median": statistics.median(diff), "shift_mean": statistics.mean(diff)}
print(json.dumps(res, indent=1))
Path("docs/benchmark/held_out_1000_hull_check.json").write_text(json.dumps(res, indent=1) + "\n")
