"""``pccd model``: inspect and export checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from pccd_flows.cli.common import JsonOption, fail, print_json, require_file, require_output_file, stdout
from pccd_flows.model.checkpoint import CheckpointError, export_for_inference, load_checkpoint

model_app = typer.Typer(help="Inspect and export model checkpoints.", no_args_is_help=True)


def checkpoint_summary(payload: dict) -> dict:
    last = payload["history"][-1] if payload["history"] else {}
    return {
        "path": payload["path"],
        "sha256": payload["sha256"],
        "preset": payload["model_config"]["name"],
        "parameters": sum(v.numel() for v in payload["ema_state"].values()),
        "step": payload["step"],
        "epoch": last.get("epoch"),
        "trained_hours": payload.get("trained_seconds", 0.0) / 3600,
        "val_loss": last.get("val_loss"),
        "data_sha256": payload["data_sha256"],
        "n_train": payload.get("n_train"),
        "n_validation": payload.get("n_validation"),
        "has_training_state": "optimizer_state" in payload,
    }


@model_app.command("info")
def info(checkpoint: Annotated[Path, typer.Argument(help="Checkpoint file.")], as_json: JsonOption = False) -> None:
    """What a checkpoint is: preset, size, training steps and hours, validation loss, data hash."""
    require_file(checkpoint, "checkpoint")
    try:
        summary = checkpoint_summary(load_checkpoint(checkpoint))
    except CheckpointError as exc:
        fail(str(exc))
    if as_json:
        print_json(summary)
        return
    table = Table("field", "value", title=str(checkpoint))
    for key, value in summary.items():
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    stdout.print(table)


@model_app.command("export")
def export(
    source: Annotated[Path, typer.Argument(help="Training checkpoint.")],
    destination: Annotated[Path, typer.Argument(help="Inference checkpoint to write (EMA weights only).")],
) -> None:
    """Strip optimiser state and raw weights: the checkpoint to ship (it can still be resumed)."""
    require_file(source, "checkpoint")
    require_output_file(destination, "destination")
    try:
        payload = export_for_inference(source, destination)
    except CheckpointError as exc:
        fail(str(exc))
    stdout.print(f"wrote {destination} ({destination.stat().st_size / 1e6:.1f} MB, sha256 {payload['sha256'][:12]})")
