"""``pccd benchmark``: PCCD against a PyXtal random structure search and ion substitution, on one judge."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from pccd_flows.cli.common import (
    SEED_MAX,
    ConfirmWithOption,
    JsonOption,
    confirm_engines,
    fail,
    finite,
    print_json,
    require_file,
    require_output_dir,
    require_output_file,
    shard_of,
    stderr,
    stdout,
)
from pccd_flows.cli.generate import CheckpointOption
from pccd_flows.settings import BENCHMARK_N, BENCHMARK_RELAX_FMAX, BENCHMARK_RELAX_STEPS


def benchmark_command(
    chemsys: Annotated[list[str] | None, typer.Option(
        "--chemsys", help="Chemical system, e.g. Ca-Sn-O (repeat for more). Or --held-out.")] = None,
    held_out: Annotated[int | None, typer.Option(
        "--held-out", min=1, help="Instead of --chemsys: draw N crystals of the held-out (validation) split of the "
        "training data and ask PCCD for one crystal per drawn crystal, conditioned on its elements (MatterGen's "
        "samples of the data distribution; it reports 1,000). Hundreds of systems: --reference mp-formation needs "
        "only elemental references and is the practical choice (mp-structures first relaxes every MP phase of "
        "each system with the force field).")] = None,
    target_composition: Annotated[bool, typer.Option(
        "--target-composition", help="With --held-out: ask for each held-out crystal's exact composition, not only "
        "its elements.")] = False,
    charge_balanced: Annotated[bool, typer.Option(
        "--charge-balanced", help="Choose PCCD's compositions by charge balance: keep the first N of 4N samples "
        "per system whose composition has charge-balanced ICSD oxidation states (what `pccd study`'s prefilter "
        "keeps); the baselines take these compositions.")] = False,
    n: Annotated[int | None, typer.Option("--n", min=1, help=f"PCCD crystals per --chemsys system (default "
                                                             f"{BENCHMARK_N}); the baselines take their "
                                                             f"compositions.")] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, max=SEED_MAX)] = 0,
    engine: Annotated[str | None, typer.Option("--engine", help="Judge: chgnet (default) or sevennet.")] = None,
    confirm_with: ConfirmWithOption = None,
    reference: Annotated[str | None, typer.Option(
        "--reference", help="Hull reference: mp-structures (default), mp-formation or mp-api.")] = None,
    relax_steps: Annotated[int, typer.Option("--relax-steps", min=1, help="FIRE steps.")] = BENCHMARK_RELAX_STEPS,
    fmax: Annotated[float, typer.Option("--fmax", min=1e-6, callback=finite, help="Force criterion, eV/A.")] = BENCHMARK_RELAX_FMAX,
    generator: Annotated[list[str] | None, typer.Option(
        "--generator", help="pccd, random_search, substitution (repeat; default: these three); also "
        "the yield levers pccd_charge_balanced (PCCD keeping charge-balanced compositions), pccd_ranked (PCCD "
        "drawing 4N samples and keeping the N novel, distinct ones lowest in single-point E_hull) and "
        "pccd_prerelaxed (the same, ranked after 30 FIRE steps).")] = None,
    checkpoint: CheckpointOption = None,
    prototypes: Annotated[Path | None, typer.Option(
        "--prototypes", help="Structures for substitution (jsonl). Default: the bundled MP set.")] = None,
    novelty_data: Annotated[Path | None, typer.Option(
        "--novelty-data", help="Known crystals for novelty. Default: all of MP if present, else the bundled set.")
    ] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Folder: candidates.jsonl grows as crystals are judged (a rerun resumes), benchmark.json.")
    ] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write a PNG of rates and E_hull here.")] = None,
    shard: Annotated[str | None, typer.Option(
        "--shard", help="I/N: this process judges every N-th block of 32 crystals from the I-th, so that N "
        "processes with the same options and --out (e.g. 0/2 and 1/2 on two cores) share the relaxations; each "
        "reports what all had judged when it ends, and a last run without --shard judges nothing and reports all. "
        "Start them after one run has generated, or each generates the same crystals again.")] = None,
    as_json: JsonOption = False,
) -> None:
    """PCCD vs a PyXtal random search and ion substitution at the same compositions, relaxed and judged alike:
    stable, on-hull and S.U.N. rates, median E_hull, RMSD to relaxed, CPU seconds per S.U.N."""
    from pccd_flows.benchmark import (
        GENERATORS,
        BenchmarkError,
        BenchmarkSettings,
        plot_benchmark,
        run_benchmark,
        systems_title,
    )
    from pccd_flows.benchmark.run import normalise_chemsys
    from pccd_flows.model.checkpoint import CheckpointError
    from pccd_flows.settings import get_settings
    from pccd_flows.stability.engines import EngineError, check_engine
    from pccd_flows.stability.references import REFERENCES

    settings = get_settings()
    engine = engine or settings.engine
    reference = reference or settings.reference
    try:
        engine = check_engine(engine)
    except EngineError as exc:
        fail(str(exc))
    confirm_with = confirm_engines(confirm_with, engine)
    if reference not in REFERENCES:
        fail(f"unknown --reference {reference!r}: choose one of {', '.join(REFERENCES)}")
    generators = tuple(dict.fromkeys(generator or GENERATORS))
    if held_out is not None and n is not None:
        fail("--n sets PCCD's crystals per --chemsys system; --held-out N asks for one per drawn crystal")
    try:
        systems = [normalise_chemsys(s) for s in chemsys or []]
    except BenchmarkError as exc:
        fail(str(exc))
    for path, option in ((checkpoint, "--checkpoint"), (prototypes, "--prototypes"),
                         (novelty_data, "--novelty-data")):
        if path is not None:
            require_file(path, option)
    shard_range = shard_of(shard)
    if shard_range is not None and out is None:
        fail("--shard shares the judging through --out's candidates.jsonl: give --out")
    if out is not None:
        require_output_dir(out, "--out")
    if plot is not None:
        require_output_file(plot, "--plot")
    run = BenchmarkSettings(n=n or BENCHMARK_N, held_out=held_out, target_composition=target_composition,
                            charge_balanced=charge_balanced, seed=seed,
                            engine=engine, confirm_with=confirm_with, reference=reference, relax_steps=relax_steps,
                            relax_fmax=fmax, generators=generators,
                            checkpoint=str(checkpoint) if checkpoint else None,
                            prototypes=str(prototypes) if prototypes else None,
                            novelty_data=str(novelty_data) if novelty_data else None)
    try:
        report, candidates = run_benchmark(systems, run, out_dir=out, shard=shard_range,
                                           log=lambda line: stderr.print(line, highlight=False, soft_wrap=True))
    except (BenchmarkError, CheckpointError) as exc:
        fail(str(exc))
    if plot is not None:
        plot_benchmark(report, candidates, plot)
    if as_json:
        print_json(report.model_dump(mode="json", include={"systems", "judge", "generators", "per_system",
                                                           "settings", "wall_seconds"}))
        return
    table = Table(title=f"{systems_title(report)}: judge {report.judge['model']}, {report.judge['reference']} "
                        f"hull, {relax_steps} FIRE steps")
    for column in ("generator", "n", "judged", "stable", "on hull", "S.U.N.", "median E_hull", "RMSD (A)",
                   "CPU s / S.U.N.", "failures"):
        table.add_column(column)

    def cell(value, fmt="{:.2f}"):
        return "-" if value is None else fmt.format(value)

    for name, m in report.generators.items():
        table.add_row(name, str(m.n), str(m.n_judged), cell(m.stable_rate), cell(m.on_hull_rate), cell(m.sun_rate),
                      cell(m.median_e_above_hull, "{:.3f}"), cell(m.rmsd_to_relaxed, "{:.3f}"),
                      cell(m.cpu_seconds_per_sun, "{:.0f}"),
                      ", ".join(f"{k} {v}" for k, v in m.failures.items()) or "-")
    stdout.print(table)
