"""Which structure should the confirming force field relax? SevenNet-0 from the generated structure (as `pccd
validate judges` and the default confirmation do) against SevenNet-0 from CHGNet's relaxed structure (the one the
DFT check computes), on the study's candidates with a DFT check, weighted by stratum as the report is.

    PCCD_STORE_DIR=runs/study-v4 OMP_NUM_THREADS=1 python docs/stability/diagnostics/confirm_from_relaxed.py \
        docs/stability/confirm_from_relaxed.json
"""
import json
import sys

from pccd_flows.pipeline.judge import reference_hulls
from pccd_flows.pipeline.relax import relax_structures
from pccd_flows.stability.engines import RelaxSettings
from pccd_flows.stability.entries import entry_from_force_field_doc
from pccd_flows.stores.candidates import CandidateStore
from pccd_flows.validation.dft import sampled_e_above_hull
from pccd_flows.validation.report import eligible_population, stratum, weighted_metrics

store = CandidateStore()
docs = [d for d in store.find({"dft_check": {"$ne": None}, "study": "paper-746"})
        if d.dft_check.e_above_hull is not None]
hulls, errors = reference_hulls([d.chemsys for d in docs], "mp-structures", "sevennet")
todo = [d for d in docs if d.chemsys in hulls]
out = {}
outcomes = relax_structures([d.final_structure() for d in todo], "sevennet", RelaxSettings(steps=300, fmax=0.1))
for d, o in zip(todo, outcomes):
    if o.ok:
        e = hulls[d.chemsys].stability(entry_from_force_field_doc(o.task_doc, "sevennet", d.candidate_id)).e_above_hull
        out[d.candidate_id] = {"sevennet_from_relaxed": e, "steps": len(o.task_doc.output.ionic_steps or []),
                               "sevennet_from_generated": d.judgements.get("sevennet").e_above_hull if "sevennet" in d.judgements else None,
                               "chgnet": d.own_stability.e_above_hull, "dft": d.dft_check.e_above_hull}
res = out
judged = [d for d in store.find({"study": "paper-746"}) if d.e_above_hull is not None]
pop = {}
for d in eligible_population(judged, "chgnet"):
    k = stratum(sampled_e_above_hull(d)); pop[k] = pop.get(k, 0) + 1
samp = {}
for r in res.values():
    k = stratum(r["chgnet"]); samp[k] = samp.get(k, 0) + 1
w = {k: pop[k] / n for k, n in samp.items()}
rules = {
    "chgnet": lambda r: r["chgnet"],
    "sevennet (from generated)": lambda r: r["sevennet_from_generated"],
    "sevennet (from CHGNet-relaxed)": lambda r: r["sevennet_from_relaxed"],
    "chgnet+sevennet (from generated)": lambda r: max(r["chgnet"], r["sevennet_from_generated"]),
    "chgnet+sevennet (from CHGNet-relaxed)": lambda r: max(r["chgnet"], r["sevennet_from_relaxed"]),
}
out = {}
for name, f in rules.items():
    rows = [(w[stratum(r["chgnet"])], f(r), r["dft"]) for r in res.values() if f(r) is not None]
    m = weighted_metrics(rows)
    out[name] = m.model_dump()
    print(f"{name:40s} n={m.n} MAE {m.mae:.3f} P@0.1 {m.precision_at_100meV:.2f} R@0.1 {m.recall_at_100meV:.2f} "
          f"P@0.08 {m.precision_at_80meV} R@0.08 {m.recall_at_80meV} called {m.n_called_stable_at_100meV}")
steps = [r["steps"] for r in res.values()]
print("steps from relaxed: mean", sum(steps) / len(steps), "max", max(steps))
with open(sys.argv[1], "w") as f:
    json.dump({"strata_population": pop, "strata_sampled": samp, "judges": out, "candidates": res}, f, indent=1)
