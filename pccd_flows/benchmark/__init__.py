"""`pccd benchmark`: PCCD against a PyXtal random structure search and ion substitution, MatterGen's metrics."""

from pccd_flows.benchmark.generators import (
    PrototypeLibrary,
    held_out_pccd_candidates,
    pccd_candidates,
    pccd_ranked_candidates,
    random_search_candidates,
    random_symmetric_crystal,
    rank_substitutions,
    substitution_candidates,
    substitution_structures,
)
from pccd_flows.benchmark.metrics import generator_metrics, mark_sun, rmsd_to_relaxed
from pccd_flows.benchmark.run import (
    BenchmarkError,
    BenchmarkMaker,
    BenchmarkSettings,
    plot_benchmark,
    run_benchmark,
    systems_title,
)
from pccd_flows.benchmark.schemas import GENERATORS, BenchmarkCandidate, BenchmarkReport, GeneratorMetrics

__all__ = [
    "GENERATORS", "BenchmarkCandidate", "BenchmarkError", "BenchmarkMaker", "BenchmarkReport", "BenchmarkSettings",
    "GeneratorMetrics", "PrototypeLibrary", "generator_metrics", "held_out_pccd_candidates", "mark_sun",
    "pccd_candidates", "pccd_ranked_candidates", "plot_benchmark", "random_search_candidates", "random_symmetric_crystal",
    "rank_substitutions", "rmsd_to_relaxed", "run_benchmark", "substitution_candidates", "substitution_structures",
    "systems_title",
]
