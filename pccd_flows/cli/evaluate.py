"""``pccd evaluate``: quality of a checkpoint's crystals."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from pccd_flows.cli.common import (
    SEED_MAX,
    DataOption,
    EtaOption,
    JsonOption,
    RepulsionOption,
    SamplerStepsOption,
    emit_report,
    fail,
    finite,
    progress_bar,
    require_output_file,
    stderr,
    stdout,
    validation_message,
)
from pccd_flows.cli.data import resolve_data
from pccd_flows.cli.generate import CheckpointOption, load_checkpoint_or_fail
from pccd_flows.settings import DEFAULT_REPULSION_RATIO, DEFAULT_SAMPLER_ETA, DEFAULT_SAMPLER_STEPS

evaluate_app = typer.Typer(help="Measure generation quality.", no_args_is_help=True)


@evaluate_app.command("generation")
def generation(
    n: Annotated[int, typer.Option("--n", min=1, help="Crystals to generate.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", min=0, max=SEED_MAX)] = 0,
    steps: SamplerStepsOption = DEFAULT_SAMPLER_STEPS,
    eta: EtaOption = DEFAULT_SAMPLER_ETA,
    repulsion: RepulsionOption = DEFAULT_REPULSION_RATIO,
    sampler: Annotated[str, typer.Option("--sampler")] = "ddim",
    guidance: Annotated[float, typer.Option("--guidance", callback=finite)] = 1.0,
    checkpoint: CheckpointOption = None,
    data: DataOption = None,
    novelty_data: Annotated[
        Path | None, typer.Option("--novelty-data", help="Known crystals for novelty (default: all of MP if present).")
    ] = None,
    target_composition: Annotated[bool, typer.Option(
        "--target-composition", help="Ask for each held-out crystal's exact composition (element-channel "
        "inpainting), not only its elements.")] = False,
    out: Annotated[Path | None, typer.Option("--out", help="Also write the JSON report here.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Generate for compositions of held-out crystals; validity, element and composition match, uniqueness,
    novelty, speed."""
    from pydantic import ValidationError

    from pccd_flows.evaluation.generation import HeldOutError, evaluate_checkpoint
    from pccd_flows.evaluation.novelty import NoveltyIndex
    from pccd_flows.model.generate import SamplerSettings, network_evaluations

    path = resolve_data(data)
    if novelty_data is not None:
        resolve_data(novelty_data)
    if out is not None:
        require_output_file(out, "--out")
    try:
        settings = SamplerSettings(sampler=sampler, steps=steps, guidance=guidance, eta=eta,
                                   repulsion_ratio=repulsion)
    except ValidationError as exc:
        fail(validation_message(exc))
    model, codec, payload = load_checkpoint_or_fail(checkpoint)
    stderr.print("indexing known crystals for novelty...")
    novelty = NoveltyIndex(novelty_data) if novelty_data else NoveltyIndex()
    total = n * network_evaluations(settings, model.config.timesteps)
    try:
        with progress_bar("sampling", total) as advance:
            report = evaluate_checkpoint(model, codec, payload, path, n, seed, settings, novelty, progress=advance,
                                         target_composition=target_composition)
    except HeldOutError as exc:
        fail(str(exc))
    if emit_report(report, out, as_json):
        return
    table = Table("metric", "value", title=f"Generation quality ({n} crystals)")
    for key, value in report.model_dump(exclude={"sampler"}).items():
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    stdout.print(table)

