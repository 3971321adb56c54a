"""``pccd evaluate``: quality of a checkpoint's crystals."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from pccd_flows.cli.common import (
    DataOption,
    EtaOption,
    JsonOption,
    RepulsionOption,
    SamplerStepsOption,
    emit_report,
    fail,
    finite,
    print_json,
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
    seed: Annotated[int, typer.Option("--seed")] = 0,
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

    from pccd_flows.evaluation.generation import evaluate_checkpoint
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
    with progress_bar("sampling", total) as advance:
        report = evaluate_checkpoint(model, codec, payload, path, n, seed, settings, novelty, progress=advance,
                                     target_composition=target_composition)
    if emit_report(report, out, as_json):
        return
    table = Table("metric", "value", title=f"Generation quality ({n} crystals)")
    for key, value in report.model_dump(exclude={"sampler"}).items():
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    stdout.print(table)


def bench_command(
    train_batch: Annotated[int, typer.Option("--train-batch", min=1)] = 64,
    train_steps: Annotated[int, typer.Option("--train-steps", min=1)] = 5,
    sample_batch: Annotated[int, typer.Option("--sample-batch", min=1)] = 64,
    ddim_steps: Annotated[int, typer.Option("--ddim-steps", min=1)] = DEFAULT_SAMPLER_STEPS,
    paper_measured_steps: Annotated[
        int, typer.Option("--paper-measured-steps", min=1, help="DDPM steps timed, then scaled to 1000.")
    ] = 20,
    as_json: JsonOption = False,
) -> None:
    """Training and sampling throughput: default preset + DDIM vs the paper preset + 1000-step DDPM."""
    from pccd_flows.model.bench import run_bench

    stderr.print("benchmarking (run on a quiet machine: other load skews both sides)...")
    report = run_bench(train_batch, train_steps, sample_batch, ddim_steps, paper_measured_steps)
    if as_json:
        print_json(report)
        return
    table = Table("", "default", "paper", "ratio", title="pccd bench")
    table.add_row("parameters", f"{report.default.parameters:,}", f"{report.paper.parameters:,}", "")
    table.add_row("sampler", f"DDIM {report.default.sampler_steps}", f"DDPM {report.paper.sampler_steps}", "")
    table.add_row("training samples/s", f"{report.default.train_samples_per_second:.1f}",
                  f"{report.paper.train_samples_per_second:.1f}", f"{report.train_speedup:.1f}x")
    table.add_row("structures/s", f"{report.default.structures_per_second:.3f}",
                  f"{report.paper.structures_per_second:.4f}", f"{report.sampling_speedup:.0f}x")
    stdout.print(table)
