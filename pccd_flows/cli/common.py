"""Shared pieces of the command line: consoles, one-line errors, progress bars, options."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

# Results go to stdout (so `--json` output can be piped), everything for the eye goes to stderr.
stdout = Console()
stderr = Console(stderr=True)

DataOption = Annotated[
    Path | None,
    typer.Option("--data", help="Data set: jsonl(.gz) like the bundled one, or MP-20-style CSV. Default: bundled MP data."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
LimitOption = Annotated[int | None, typer.Option("--limit", min=1, help="Use only the first N records.")]


def fail(message: str, code: int = 2) -> NoReturn:
    """Stop with a one-line error, the way a scientist wants to read it in a job log."""
    stderr.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def print_json(document: BaseModel | dict) -> None:
    text = document.model_dump_json(indent=2) if isinstance(document, BaseModel) else json.dumps(document, indent=2)
    print(text)


@contextmanager
def progress_bar(description: str, total: int | None):
    columns = [
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=stderr, transient=False) as progress:
        task = progress.add_task(description, total=total)
        yield lambda advance=1: progress.advance(task, advance)
