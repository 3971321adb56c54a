"""``pccd bench``: throughput measurements that choose between implementations."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from pccd_flows.cli.common import SEED_MAX, JsonOption, emit_report, fail, finite, print_json, stderr, stdout
from pccd_flows.cli.generate import CheckpointOption
from pccd_flows.settings import BENCH_RELAX_CANDIDATES, BENCH_RELAX_SYSTEMS, DEFAULT_SAMPLER_STEPS

bench_app = typer.Typer(help="Measure throughput: the model (`pccd bench` alone, or `model`) or the relaxations.")

TrainBatchOption = Annotated[int, typer.Option("--train-batch", min=1)]
TrainStepsOption = Annotated[int, typer.Option("--train-steps", min=1)]
SampleBatchOption = Annotated[int, typer.Option("--sample-batch", min=1)]
DdimStepsOption = Annotated[int, typer.Option("--ddim-steps", min=1)]
PaperStepsOption = Annotated[int, typer.Option("--paper-measured-steps", min=1,
                                               help="DDPM steps timed, then scaled to 1000.")]


@bench_app.callback(invoke_without_command=True)
def bench_group(
    ctx: typer.Context,
    train_batch: TrainBatchOption = 64,
    train_steps: TrainStepsOption = 5,
    sample_batch: SampleBatchOption = 64,
    ddim_steps: DdimStepsOption = DEFAULT_SAMPLER_STEPS,
    paper_measured_steps: PaperStepsOption = 20,
    as_json: JsonOption = False,
) -> None:
    """Throughput; without a subcommand, the model's (as `pccd bench model`)."""
    if ctx.invoked_subcommand is None:
        model_command(train_batch, train_steps, sample_batch, ddim_steps, paper_measured_steps, as_json)


@bench_app.command("model")
def model_command(
    train_batch: TrainBatchOption = 64,
    train_steps: TrainStepsOption = 5,
    sample_batch: SampleBatchOption = 64,
    ddim_steps: DdimStepsOption = DEFAULT_SAMPLER_STEPS,
    paper_measured_steps: PaperStepsOption = 20,
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


@bench_app.command("relax")
def relax_command(
    n: Annotated[int, typer.Option("--n", min=1, help="Candidates (generated, or the first N CIFs).")]
    = BENCH_RELAX_CANDIDATES,
    seed: Annotated[int, typer.Option("--seed", min=0, max=SEED_MAX, help="Generation seed.")] = 0,
    engines: Annotated[list[str] | None, typer.Option(
        "--engine", help="Force field, repeatable (default chgnet and sevennet); torch-sim runs SevenNet only.")
    ] = None,
    systems: Annotated[list[str] | None, typer.Option(
        "--system", help=f"Chemical system to generate in, repeatable (default {' '.join(BENCH_RELAX_SYSTEMS)}).")
    ] = None,
    cifs: Annotated[Path | None, typer.Option(
        "--cifs", help="Relax the CIF files of this folder instead of generating.")] = None,
    checkpoint: CheckpointOption = None,
    steps: Annotated[int | None, typer.Option("--steps", min=1, help="Most FIRE steps (default the study's).")]
    = None,
    fmax: Annotated[float | None, typer.Option("--fmax", min=0.001, callback=finite,
                                               help="Force convergence, eV/A (default the study's).")] = None,
    chunk_size: Annotated[int | None, typer.Option(
        "--chunk-size", min=1, help="Structures per job of (b) and per batch of (c) (default the study's).")] = None,
    methods: Annotated[list[str] | None, typer.Option(
        "--method", help="per-candidate, chunked or torch-sim, repeatable (default all).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Also write the JSON report here.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Relaxations per CPU-second and convergence of (a) one atomate2 job per candidate, (b) one job per chunk with
    the potential loaded once, (c) torch-sim's batched FIRE on SevenNet: side by side on the same candidates."""
    from pccd_flows.bench import METHODS, candidates_from_cifs, generated_candidates, run_relax_bench
    from pccd_flows.stability.engines import FORCE_FIELDS

    engines = [e.lower() for e in engines or ("chgnet", "sevennet")]
    if bad := [e for e in engines if e not in FORCE_FIELDS]:
        fail(f"--engine {bad[0]}: choose of {', '.join(FORCE_FIELDS)}")
    methods = list(methods or METHODS)
    if bad := [m for m in methods if m not in METHODS]:
        fail(f"--method {bad[0]}: choose of {', '.join(METHODS)}")
    if cifs is not None and systems:
        fail("give --cifs or --system, not both")
    if cifs is not None and not cifs.is_dir():
        fail(f"--cifs {cifs}: not a folder")
    if checkpoint is not None and not checkpoint.is_file():
        fail(f"--checkpoint {checkpoint}: no such file")
    if out is not None and out.is_dir():
        fail(f"--out {out}: is a directory; name a file to write")
    try:
        if cifs is not None:
            candidates = candidates_from_cifs(cifs, n)
            source = f"CIF files of {cifs}"
        else:
            systems = list(systems or BENCH_RELAX_SYSTEMS)
            stderr.print(f"generating {n} candidates in {', '.join(systems)} (seed {seed})...")
            candidates = generated_candidates(n, seed, systems, checkpoint)
            source = (f"generated with {checkpoint or 'the shipped checkpoint'}, seed {seed}, in "
                      f"{', '.join(systems)}; screened by the 746 study's prefilter")
        report = run_relax_bench(candidates, engines, steps, fmax, chunk_size, methods, source,
                                 progress=lambda line: stderr.print(line, highlight=False))
    except ValueError as exc:
        fail(str(exc))
    if emit_report(report, out, as_json):
        return
    table = Table("method", "engine", "n", "converged", "CPU s", "wall s", "relax/CPU-s", "vs (a)", "max |dE| eV/at",
                  title=f"pccd bench relax ({len(candidates)} candidates, {report.steps} steps, fmax {report.fmax}, "
                        f"chunks of {report.chunk_size})")
    for m in report.measurements:
        if m.unavailable:
            table.add_row(f"{m.label} {m.method}", m.engine, str(m.n), f"unavailable: {m.unavailable}")
            continue
        agreement = m.energy_agreement
        table.add_row(
            f"{m.label} {m.method}", m.engine, str(m.n), f"{m.converged}/{m.n}", f"{m.cpu_seconds:.1f}",
            f"{m.wall_seconds:.1f}", f"{m.relaxations_per_cpu_second:.3f}" if m.relaxations_per_cpu_second else "-",
            f"{m.cpu_ratio_vs_per_candidate:.2f}x" if m.cpu_ratio_vs_per_candidate else "-",
            f"{agreement.max_abs_ev_per_atom:.4f}" if agreement and agreement.max_abs_ev_per_atom is not None else "-")
    stdout.print(table)
    for engine, seconds in report.cold_start_cpu_seconds.items():
        stdout.print(f"{engine}: a new process that imports atomate2 and loads the potential: "
                     f"{f'{seconds:.1f} CPU-s' if seconds is not None else 'failed'}")
    for note in report.notes:
        stdout.print(f"note: {note}", highlight=False)
    for engine, method in report.fastest_at_equal_convergence.items():
        stdout.print(f"{engine}: fastest at equal convergence: {method}")
