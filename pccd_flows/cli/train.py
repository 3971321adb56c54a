"""``pccd train``: train or continue training a PCCD model."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from pccd_flows.cli.common import (
    SEED_MAX,
    DataOption,
    LimitOption,
    fail,
    finite,
    require_output_file,
    stderr,
    stdout,
)
from pccd_flows.cli.data import resolve_data
from pccd_flows.model.checkpoint import CheckpointError


def train_command(
    out: Annotated[Path, typer.Option("--out", help="Checkpoint to write (and to resume from).")],
    data: DataOption = None,
    preset: Annotated[str, typer.Option("--preset", help="Model preset: default, paper or tiny.")] = "default",
    hours: Annotated[float | None, typer.Option(
        "--hours", min=0, callback=finite, help="Wall-time budget of this run.")] = None,
    epochs: Annotated[float | None, typer.Option(
        "--epochs", min=0, callback=finite, help="Epochs of this run.")] = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", min=1, help="Optimiser steps of this run.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the checkpoint at --out.")] = False,
    anneal_lr: Annotated[bool, typer.Option(
        "--anneal-lr", help="Decay the learning rate (cosine, to 5%) over this run's budget: for a final run.")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 128,
    learning_rate: Annotated[float, typer.Option("--lr", min=0, callback=finite)] = 5e-4,
    lattice_loss_weight: Annotated[float, typer.Option(
        "--lattice-loss-weight", min=0.01, callback=finite, help="Weight of the lattice channel in the loss (1: plain DDPM loss).")] = 1.0,
    seed: Annotated[int, typer.Option("--seed", min=0, max=SEED_MAX)] = 0,
    limit: LimitOption = None,
    log: Annotated[Path | None, typer.Option("--log", help="JSON-lines log (default: next to --out).")] = None,
    device: Annotated[str, typer.Option("--device", help="auto (a CUDA GPU where torch sees one), cpu or cuda.")
                      ] = "auto",
) -> None:
    """Train the conditional DDPM on a data set; resumable, with validation loss and a JSON-lines log."""
    from pccd_flows.model.config import get_preset
    from pccd_flows.model.dataset import load_encoded_dataset
    from pccd_flows.model.train import TrainingSettings, train

    if hours is None and epochs is None and max_steps is None:
        fail("give a budget: --hours, --epochs or --max-steps")
    if out.is_dir():
        fail(f"--out {out}: is a directory; name the checkpoint file to write")
    if resume and not out.exists():
        fail(f"{out}: nothing to resume (no such checkpoint)")
    if not resume and out.exists():
        fail(f"{out} exists: pass --resume to continue it, or choose another --out")
    try:
        config = get_preset(preset)
    except ValueError as exc:
        fail(str(exc))
    path = resolve_data(data)
    if log is not None:
        require_output_file(log, "--log")
    require_output_file(out, "--out")
    stderr.print(f"encoding {path.name} (cached after the first time)...")
    try:
        dataset = load_encoded_dataset(path, limit=limit)
    except ValueError as exc:  # DataFormatError (a damaged file) or no encodable crystal in it
        fail(str(exc))
    stderr.print(f"{len(dataset):,} crystals ({dataset.n_skipped} skipped), preset {config.name}")
    settings = TrainingSettings(batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                                lattice_loss_weight=lattice_loss_weight)

    columns = [TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[status]}"),
               TimeElapsedColumn(), TimeRemainingColumn()]
    start = time.monotonic()
    with Progress(*columns, console=stderr) as progress:
        total = hours * 3600 if hours is not None else (max_steps or None)
        task = progress.add_task("training", total=total, status="")

        def on_step(info: dict) -> None:
            completed = time.monotonic() - start if hours is not None else info["run_steps"]
            progress.update(task, completed=completed, status=f"step {info['step']} loss {info['loss']:.4f}")

        try:
            result = train(dataset, out, config=config, settings=settings, hours=hours, epochs=epochs,
                           max_steps=max_steps, resume=resume, anneal_lr=anneal_lr, log_path=log, on_step=on_step,
                           device=device)
        except (CheckpointError, ValueError) as exc:
            fail(str(exc))
    last = result["history"][-1] if result["history"] else {}
    stdout.print(f"wrote {out}: step {result['step']}, val_loss {last.get('val_loss', float('nan')):.4f}, "
                 f"{result['trained_seconds'] / 3600:.2f} h trained")
