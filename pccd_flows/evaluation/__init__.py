"""Generation-quality metrics as in CDVAE / DiffCSP: validity, element match, uniqueness, novelty."""

from pccd_flows.evaluation.metrics import (
    GenerationMetrics,
    atom_count_wasserstein,
    compositional_validity,
    density_wasserstein,
    element_match,
    evaluate_generation,
    structural_validity,
    uniqueness,
    wasserstein,
)
from pccd_flows.evaluation.novelty import NoveltyIndex, default_novelty_source

__all__ = [
    "GenerationMetrics",
    "NoveltyIndex",
    "atom_count_wasserstein",
    "compositional_validity",
    "default_novelty_source",
    "density_wasserstein",
    "element_match",
    "evaluate_generation",
    "structural_validity",
    "uniqueness",
    "wasserstein",
]
