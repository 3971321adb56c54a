"""Evaluate a checkpoint the way CDVAE/DiffCSP evaluate generators: compositions drawn from held-out data."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from pccd_flows.data.io import read_records
from pccd_flows.evaluation.metrics import GenerationMetrics, evaluate_generation
from pccd_flows.evaluation.novelty import NoveltyIndex
from pccd_flows.model.dataset import is_validation
from pccd_flows.model.generate import (
    GenerationConditions,
    Provenance,
    SamplerSettings,
    decode_samples,
    sample_tensors,
)


class GenerationEvaluation(GenerationMetrics):
    checkpoint_sha256: str
    seed: int
    sampler: SamplerSettings
    sampling_seconds: float
    decoding_seconds: float
    mean_atoms_generated: float | None
    mean_atoms_reference: float
    target_composition: bool = Field(False, description="Each request fixed the held-out crystal's exact "
                                                         "composition, not only its elements.")
    composition_match_rate: float = Field(description="Fraction of the n samples with the reduced formula of the "
                                                      "held-out crystal they were generated for.")


class HeldOutError(ValueError):
    """The data set has no crystal of the held-out (validation) split to draw from."""


class HeldOutCompositions(BaseModel):
    conditions: list[GenerationConditions]
    material_ids: list[str]


def draw_compositions(data_path: str | Path, n: int, seed: int, target_composition: bool = False
                      ) -> tuple[HeldOutCompositions, list]:
    """n element sets (or exact compositions) of validation-split crystals (the model never trained on them), and
    those crystals."""
    held_out = [r for r in read_records(data_path) if is_validation(r.material_id)]
    if not held_out:
        raise HeldOutError(f"the data set {Path(data_path).name} has no held-out (validation split) crystals")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(held_out), size=n, replace=n > len(held_out))
    records = [held_out[i] for i in chosen]
    structures = [r.to_structure() for r in records]
    conditions = [
        GenerationConditions(elements=tuple(sorted({str(el) for el in s.composition.elements})),
                             composition=s.composition.formula if target_composition else None)
        for s in structures
    ]
    return HeldOutCompositions(conditions=conditions, material_ids=[r.material_id for r in records]), structures


def evaluate_checkpoint(model, codec, checkpoint: dict, data_path: str | Path, n: int, seed: int = 0,
                        sampler: SamplerSettings | None = None, novelty_index: NoveltyIndex | None = None,
                        progress=None, target_composition: bool = False) -> GenerationEvaluation:
    sampler = sampler or SamplerSettings()
    drawn, reference = draw_compositions(data_path, n, seed, target_composition)
    start = time.perf_counter()
    tensors = sample_tensors(model, drawn.conditions, seed, sampler, progress=progress, codec=codec)
    sampling_seconds = time.perf_counter() - start
    start = time.perf_counter()
    crystals = decode_samples(
        tensors, drawn.conditions, codec,
        provenance=lambda index: Provenance(checkpoint_sha256=checkpoint["sha256"], seed=seed, index=index,
                                            conditions=drawn.conditions[index], sampler=sampler),
    )
    decoding_seconds = time.perf_counter() - start
    structures = [c.to_structure() for c in crystals]
    metrics = evaluate_generation(
        structures, [c.elements for c in drawn.conditions], reference, novelty_index,
        seconds=sampling_seconds + decoding_seconds,
    )
    decoded = [s for s in structures if s is not None]
    return GenerationEvaluation(
        **metrics.model_dump(),
        checkpoint_sha256=checkpoint["sha256"],
        seed=seed,
        sampler=sampler,
        sampling_seconds=sampling_seconds,
        decoding_seconds=decoding_seconds,
        mean_atoms_generated=float(np.mean([len(s) for s in decoded])) if decoded else None,
        mean_atoms_reference=float(np.mean([len(s) for s in reference])),
        target_composition=target_composition,
        composition_match_rate=sum(
            s is not None and s.composition.reduced_formula == r.composition.reduced_formula
            for s, r in zip(structures, reference)) / n,
    )
