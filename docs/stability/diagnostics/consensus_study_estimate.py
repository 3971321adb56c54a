"""The 746 study's fractions under the default judge (CHGNet confirmed by SevenNet-0) before every candidate is
judged again: estimated from a uniform random subset that SevenNet-0 judged, the first candidates outside the DFT
sample in candidate-id order (ids are hashes, so that order is random), with a bootstrap 95% interval.

    PCCD_STORE_DIR=runs/study-v4 python docs/stability/diagnostics/consensus_study_estimate.py [K] [OUT.json]

K (default 118): how many candidates of that order were judged by SevenNet-0 on the GPU (all of them are).
"""
import json
import random
import sys

from pccd_flows.stores.candidates import CandidateStore
from pccd_flows.validation.dft import select_candidates

K = int(sys.argv[1]) if len(sys.argv) > 1 else 118
store = CandidateStore()
docs = {d.candidate_id: d for d in store.find({"study": "paper-746", "e_above_hull": {"$ne": None}})}
sample = set(select_candidates(60, 0, study="paper-746"))
rest = sorted(set(docs) - sample)[:K]
subset = [docs[c] for c in rest]
missing = [d.candidate_id for d in subset if "sevennet" not in d.judgements]
if missing:
    sys.exit(f"{len(missing)} of the first {K} have no SevenNet-0 verdict: {missing[:3]}")


def chgnet(d):
    return d.own_stability.e_above_hull


def consensus(d):
    return max(chgnet(d), d.judgements["sevennet"].e_above_hull)


def sun(d, value):
    return value(d) <= 0.1 and bool(d.relaxed_novelty and d.relaxed_novelty.novel and d.relaxed_novelty.unique)


tests = {"fraction_below_250meV": lambda d, v: v(d) <= 0.25, "fraction_below_80meV": lambda d, v: v(d) <= 0.08,
         "sun_fraction": sun}
rng = random.Random(0)
result = {"n_subset": len(subset), "n_study": len(docs), "judges": {}}
for name, value in (("chgnet", chgnet), ("chgnet+sevennet", consensus)):
    result["judges"][name] = {}
    for key, test in tests.items():
        point = sum(test(d, value) for d in subset) / len(subset)
        draws = sorted(sum(test(d, value) for d in rng.choices(subset, k=len(subset))) / len(subset)
                       for _ in range(2000))
        result["judges"][name][key] = {"value": round(point, 4), "ci95": [round(draws[50], 4), round(draws[1949], 4)]}
    everyone = list(docs.values())
    result["judges"]["chgnet"]["all_746"] = {k: round(sum(t(d, chgnet) for d in everyone) / len(everyone), 4)
                                             for k, t in tests.items()}
print(json.dumps(result, indent=1))
if len(sys.argv) > 2:
    with open(sys.argv[2], "w") as f:
        json.dump(result, f, indent=1)
