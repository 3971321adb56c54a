"""How well each judge's verdicts survive DFT: parity, MAE, precision and recall of "stable", and the DFT-estimated
fractions of a whole study.

The sample is stratified by the checked judge's E_hull (``pccd_flows.validation.dft.stratified_sample``), so every
rate is weighted by the size of its stratum in the eligible population (inverse sampling fraction): a plain average
over a 50/50 sample would over-weight the stable stratum.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import BaseModel, Field

from pccd_flows.schemas.candidate import CandidateDoc
from pccd_flows.validation.dft import NEAR_ABOVE, STABLE_BELOW, eligible, sampled_e_above_hull

THRESHOLDS = {"100meV": 0.1, "80meV": 0.08}
BOOTSTRAP = 2000


class Interval(BaseModel):
    value: float | None
    ci95: tuple[float, float] | None = None


class JudgeMetrics(BaseModel):
    n: int
    mae: float | None = Field(None, description="Weighted mean |E_hull(judge) - E_hull(DFT)| (eV/atom).")
    precision_at_100meV: float | None = None
    recall_at_100meV: float | None = None
    precision_at_80meV: float | None = None
    recall_at_80meV: float | None = None
    n_called_stable_at_100meV: int = 0


class DftValidationReport(BaseModel):
    n: int = Field(description="Candidates with a DFT E_hull.")
    n_failed: int = 0
    protocol: str | None
    settings: dict = Field(default_factory=dict)
    checked_judge: str | None = Field(None, description="The judge whose E_hull defined the strata.")
    default_judge: str
    strata: dict[str, dict] = Field(default_factory=dict, description="Population and sample size per stratum.")
    judges: dict[str, JudgeMetrics]
    dft_estimated: dict[str, Interval] = Field(default_factory=dict)
    dft_estimated_assumptions: list[str] = Field(default_factory=list)
    candidates: list[dict] = Field(default_factory=list)


def stratum(e_above_hull: float | None) -> str:
    if e_above_hull is None:
        return "unjudged"
    if e_above_hull <= STABLE_BELOW + 1e-9:
        return "stable"
    return "near" if e_above_hull <= NEAR_ABOVE + 1e-9 else "far"


def checked_e_above_hull(doc: CandidateDoc) -> float | None:
    """The sampled stratum's value of a checked candidate: the relaxing force field's own verdict when it was
    checked (a check of a combined verdict, e.g. ``chgnet+sevennet``, reads the own verdict from the candidate)."""
    check = doc.dft_check
    if check.judge_engine and "+" not in check.judge_engine:
        return check.judge_e_above_hull
    return sampled_e_above_hull(doc)


def judge_values(doc: CandidateDoc) -> dict[str, float]:
    """E_hull of every judge that judged this candidate, and the consensus rules built from them."""
    values = {}
    if doc.dft_check is not None and doc.dft_check.judge_engine and doc.dft_check.judge_e_above_hull is not None:
        values[doc.dft_check.judge_engine] = doc.dft_check.judge_e_above_hull
    elif doc.stability is not None:
        values[doc.stability.engine] = doc.stability.e_above_hull
    values.update({name: result.e_above_hull for name, result in doc.judgements.items()})
    # consensus: stable only if both engines agree, i.e. the larger of the two E_hull is under the threshold
    for a, b in (("chgnet", "sevennet"), ("sevennet", "sevennet-l3i5"), ("chgnet", "sevennet-l3i5")):
        if a in values and b in values:
            values[f"{a}+{b}"] = max(values[a], values[b])
    if all(k in values for k in ("chgnet", "sevennet", "sevennet-l3i5")):
        values["mean-of-three"] = (values["chgnet"] + values["sevennet"] + values["sevennet-l3i5"]) / 3
    return values


def weighted_metrics(rows: list[tuple[float, float, float]]) -> JudgeMetrics:
    """rows of (weight, judge E_hull, DFT E_hull)."""
    total = sum(w for w, _, _ in rows)
    metrics = {"n": len(rows)}
    if not rows:
        return JudgeMetrics(n=0)
    metrics["mae"] = sum(w * abs(j - d) for w, j, d in rows) / total
    for name, t in THRESHOLDS.items():
        called = sum(w for w, j, _ in rows if j <= t)
        true = sum(w for w, _, d in rows if d <= t)
        hit = sum(w for w, j, d in rows if j <= t and d <= t)
        metrics[f"precision_at_{name}"] = hit / called if called else None
        metrics[f"recall_at_{name}"] = hit / true if true else None
    metrics["n_called_stable_at_100meV"] = sum(1 for _, j, _ in rows if j <= THRESHOLDS["100meV"])
    return JudgeMetrics(**metrics)


def build_report(checked: Sequence[CandidateDoc], population: Sequence[CandidateDoc],
                 study: Sequence[CandidateDoc] | None = None, default_judge: str = "chgnet",
                 sun: Callable[[CandidateDoc], bool] | None = None, seed: int = 0) -> DftValidationReport:
    """The report of the stored DFT checks.

    Parameters
    ----------
    checked
        Candidates with a ``dft_check`` (failed checks are counted, not used).
    population
        The eligible candidates the sample was drawn from (plain-PBE chemistries, judged): stratum weights.
    study
        All candidates of the study, for the DFT-estimated fractions (default: ``population``).
    sun
        Whether a candidate is novel and unique after relaxation (for the S.U.N. estimate).
    """
    ok = [d for d in checked if d.dft_check is not None and d.dft_check.e_above_hull is not None]
    failed = [d for d in checked if d.dft_check is not None and d.dft_check.error]
    protocols = {d.dft_check.protocol for d in ok}
    checked_judge = next(iter({d.dft_check.judge_engine for d in ok}), None)
    pop_counts: dict[str, int] = {}
    for doc in population:
        key = stratum(sampled_e_above_hull(doc))
        pop_counts[key] = pop_counts.get(key, 0) + 1
    sample_counts: dict[str, int] = {}
    for doc in ok:
        key = stratum(checked_e_above_hull(doc))
        sample_counts[key] = sample_counts.get(key, 0) + 1
    weight = {k: pop_counts.get(k, 0) / n for k, n in sample_counts.items()}

    per_judge: dict[str, list[tuple[float, float, float]]] = {}
    rows = []
    for doc in ok:
        dft = doc.dft_check.e_above_hull
        values = judge_values(doc)
        w = weight[stratum(checked_e_above_hull(doc))]
        for name, value in values.items():
            per_judge.setdefault(name, []).append((w, value, dft))
        rows.append({"candidate_id": doc.candidate_id, "formula": doc.formula, "nsites": doc.nsites,
                     "dft_e_above_hull": round(dft, 4), "seconds": doc.dft_check.seconds,
                     **{f"{k}_e_above_hull": round(v, 4) for k, v in values.items()}})
    judges = {name: weighted_metrics(r) for name, r in sorted(per_judge.items())}
    estimated, assumptions = dft_estimated_fractions(ok, study or population, sun, seed)
    return DftValidationReport(
        n=len(ok), n_failed=len(failed), protocol=",".join(sorted(protocols)) or None,
        settings=ok[0].dft_check.settings if ok else {}, checked_judge=checked_judge, default_judge=default_judge,
        strata={k: {"population": pop_counts.get(k, 0), "sampled": sample_counts.get(k, 0)}
                for k in sorted(set(pop_counts) | set(sample_counts))},
        judges=judges, dft_estimated=estimated, dft_estimated_assumptions=assumptions, candidates=rows)


def dft_estimated_fractions(ok: Sequence[CandidateDoc], study: Sequence[CandidateDoc],
                            sun: Callable[[CandidateDoc], bool] | None, seed: int = 0
                            ) -> tuple[dict[str, Interval], list[str]]:
    """Fractions of the whole study under 0.25 / 0.08 eV/atom and S.U.N. by DFT: per stratum of the judge's E_hull,
    the DFT rate of the sample times the stratum's share of the study; 95% intervals by a stratified bootstrap."""
    if not ok or not study:
        return {}, []
    shares: dict[str, float] = {}
    for doc in study:
        key = stratum(sampled_e_above_hull(doc))
        shares[key] = shares.get(key, 0) + 1 / len(study)
    by_stratum: dict[str, list[CandidateDoc]] = {}
    for doc in ok:
        by_stratum.setdefault(stratum(checked_e_above_hull(doc)), []).append(doc)
    tests = {
        "fraction_below_250meV": lambda d: d.dft_check.e_above_hull <= 0.25,
        "fraction_below_80meV": lambda d: d.dft_check.e_above_hull <= 0.08,
        "sun_fraction": lambda d: d.dft_check.e_above_hull <= 0.1 and (sun(d) if sun else True),
    }

    def estimate(samples: dict[str, list[CandidateDoc]], test) -> float:
        return sum(share * (sum(map(test, samples[k])) / len(samples[k]))
                   for k, share in shares.items() if samples.get(k))

    rng = random.Random(seed)
    estimated = {}
    for name, test in tests.items():
        value = estimate(by_stratum, test)
        draws = sorted(estimate({k: rng.choices(v, k=len(v)) for k, v in by_stratum.items()}, test)
                       for _ in range(BOOTSTRAP))
        estimated[name] = Interval(value=round(value, 4),
                                   ci95=(round(draws[int(0.025 * BOOTSTRAP)], 4),
                                         round(draws[int(0.975 * BOOTSTRAP) - 1], 4)))
    unsampled = sorted(k for k in shares if k not in by_stratum)
    assumptions = [
        "strata by the checked judge's E_hull: stable <= 0.1, near (0.1, 0.3], far > 0.3 eV/atom",
        "rates measured on plain-PBE chemistries are applied to the whole stratum (also to +U chemistries)",
    ]
    if unsampled:
        assumptions.append(f"unsampled strata ({', '.join(unsampled)}: "
                           f"{sum(shares[k] for k in unsampled):.1%} of the study) count as not stable by DFT: "
                           "the estimates are lower bounds there")
    if not sun:
        assumptions.append("S.U.N. without the novelty/uniqueness test: an upper bound")
    return estimated, assumptions


def eligible_population(docs: Sequence[CandidateDoc], judge_engine: str | None = None) -> list[CandidateDoc]:
    return [d for d in docs if eligible(d, judge_engine)]


def parity_plot(report: DftValidationReport, path: Path) -> Path:
    """DFT E_hull against each judge's, one panel per single judge, thresholds drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in report.judges if "+" not in n and n != "mean-of-three"]
    fig, axes = plt.subplots(1, max(1, len(names)), figsize=(4.2 * max(1, len(names)), 4.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        pairs = [(r[f"{name}_e_above_hull"], r["dft_e_above_hull"]) for r in report.candidates
                 if f"{name}_e_above_hull" in r]
        if pairs:
            x, y = zip(*pairs)
            ax.scatter(x, y, s=14, alpha=0.75)
        lo = min([-0.1, *[min(p) for p in pairs]]) if pairs else -0.1
        hi = max([0.5, *[max(p) for p in pairs]]) if pairs else 0.5
        ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8)
        for t in (0.1,):
            ax.axvline(t, color="tab:red", lw=0.6, ls="--")
            ax.axhline(t, color="tab:red", lw=0.6, ls="--")
        m = report.judges[name]
        precision = f"{m.precision_at_100meV:.2f}" if m.precision_at_100meV is not None else "n/a"
        ax.set_title(f"{name}: MAE {m.mae:.3f}, precision@0.1 {precision} (n={m.n})", fontsize=9)
        ax.set_xlabel(f"{name} E_hull (eV/atom)")
        ax.set_ylabel("GPAW PBE E_hull (eV/atom)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
