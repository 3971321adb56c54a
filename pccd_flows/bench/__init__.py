"""Measurements that choose between implementations: relaxations per CPU-second of the ways to relax candidates
(:mod:`pccd_flows.bench.relax`). The model's own throughput is :mod:`pccd_flows.model.bench`."""

from pccd_flows.bench.candidates import BenchCandidate, candidates_from_cifs, generated_candidates
from pccd_flows.bench.relax import (
    METHODS,
    EnergyAgreement,
    MethodMeasurement,
    RelaxBenchReport,
    RelaxOutcome,
    run_relax_bench,
)

__all__ = ["METHODS", "BenchCandidate", "EnergyAgreement", "MethodMeasurement", "RelaxBenchReport", "RelaxOutcome",
           "candidates_from_cifs", "generated_candidates", "run_relax_bench"]
