"""``pccd reconstruct``: the paper's reconstruction experiment (Fig. 1, Table 1)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from pccd_flows.cli.common import (
    SEED_MAX,
    DataOption,
    JsonOption,
    emit_report,
    fail,
    progress_bar,
    require_output_dir,
    require_output_file,
    stdout,
)
from pccd_flows.cli.data import resolve_data
from pccd_flows.cli.generate import CheckpointOption, load_checkpoint_or_fail

# The paper does not state the noise level of its reconstruction runs; t = 200 of T = 1000 is the setting whose
# measured floor the project brief quotes, and is the default here.
PAPER_T = 200


def reconstruct_command(
    n: Annotated[int, typer.Option("--n", min=1, help="Crystals to noise and reconstruct (paper: 1280).")] = 1280,
    t: Annotated[int, typer.Option("--t", min=1, max=1000, help="Forward diffusion step.")] = PAPER_T,
    split: Annotated[str, typer.Option("--split", help="train, validation (held out) or all.")] = "train",
    sampler: Annotated[str, typer.Option("--sampler", help="ddpm (paper) or ddim.")] = "ddpm",
    steps: Annotated[int, typer.Option("--steps", min=1, help="DDIM steps from t.")] = 50,
    seed: Annotated[int, typer.Option("--seed", min=0, max=SEED_MAX)] = 0,
    checkpoint: CheckpointOption = None,
    data: DataOption = None,
    plots: Annotated[Path | None, typer.Option("--plots", help="Directory for Fig. 1-like PNGs.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Also write the JSON report here.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Noise N crystals to step t (recorded seed), denoise them, decode, and compare with the originals."""
    import torch

    from pccd_flows.codec.errors import CodecError
    from pccd_flows.data.io import read_records
    from pccd_flows.evaluation.reconstruction import measure_pair, reconstruct, summarise
    from pccd_flows.model.conditions import record_condition_labels
    from pccd_flows.model.dataset import is_validation
    from pccd_flows.model.diffusion import Conditions

    if split not in {"train", "validation", "all"}:
        fail(f"unknown split {split!r}: train, validation or all")
    if sampler not in {"ddpm", "ddim"}:
        fail(f"unknown sampler {sampler!r}: ddpm or ddim")
    path = resolve_data(data)
    if plots is not None:
        require_output_dir(plots, "--plots")
    if out is not None:
        require_output_file(out, "--out")
    model, _, _ = load_checkpoint_or_fail(checkpoint)
    records = [r for r in read_records(path)
               if split == "all" or is_validation(r.material_id) == (split == "validation")]
    chosen = np.random.default_rng(seed).choice(len(records), size=min(n, len(records)), replace=False)
    items = []
    for index in chosen:
        record = records[index]
        try:
            structure = record.to_structure()
            tokens, band_gap, magnetic = record_condition_labels(record, structure)
        except (CodecError, ValueError):
            continue
        conditions = Conditions(torch.from_numpy(tokens)[None], torch.tensor([band_gap]), torch.tensor([magnetic]))
        items.append((record.material_id, structure, conditions))
    per_item = t if sampler == "ddpm" else steps
    with progress_bar(f"reconstructing from t={t}", len(items) * per_item) as advance:
        pairs = reconstruct(model, items, t, seed, sampler, steps, progress=advance)
    measures = [measure_pair(pair) for pair in pairs]
    report = summarise(measures, t, sampler, seed, split)
    if plots is not None:
        from pccd_flows.evaluation.plots import reconstruction_figures

        reconstruction_figures(measures, plots)
    if emit_report(report, out, as_json):
        return
    stdout.print(f"n={report.n} t={t} ({split}): atom counts {report.atom_count_accuracy:.1%} "
                 f"(paper 67.8%), compositions {report.composition_accuracy:.1%}, "
                 f"StructureMatcher {report.structure_match_rate:.1%}")
    for axis, stats in {**report.lattice_rel_error, **report.coordinate_error}.items():
        if stats.within_5_percent is not None:
            stdout.print(f"  {axis}: within +-5% {stats.within_5_percent:.1%}, "
                         f"within the paper's limits {stats.within_paper_limits:.1%}")
