"""Shared pieces of the command line: consoles, one-line errors, progress bars, options."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import BaseModel
from rich.console import Console

from pccd_flows.progress import progress_bar, stderr  # noqa: F401 - the CLI's commands take both from here

# Results go to stdout (so `--json` output can be piped), everything for the eye goes to stderr.
stdout = Console()

DataOption = Annotated[
    Path | None,
    typer.Option("--data", help="Data set: jsonl(.gz) like the bundled one, or MP-20-style CSV. Default: bundled MP data."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
SamplerStepsOption = Annotated[int, typer.Option("--steps", min=1, help="DDIM denoising steps.")]
EtaOption = Annotated[float, typer.Option(
    "--eta", min=0.0, help="DDIM noise: 1 adds the ancestral sampler's noise at each step (default), 0 is deterministic.")]
RepulsionOption = Annotated[float, typer.Option(
    "--repulsion", min=0.0, help="Overlap repulsion: in the last sampler steps, points of different elements closer "
    "than this fraction of the sum of their covalent radii are pushed apart (0: off).")]
MinCovalentRatioOption = Annotated[float, typer.Option(
    "--min-covalent-ratio", min=0.0, help="Screening: reject atoms closer than this fraction of the sum of their "
    "covalent radii (0: only the 0.5 A validity test).")]
IcsdOxidationStatesOption = Annotated[bool, typer.Option(
    "--icsd-oxidation-states/--smact-only", help="Screening: also require a charge balance with oxidation states "
    "seen in the ICSD.")]
LimitOption = Annotated[int | None, typer.Option("--limit", min=1, help="Use only the first N records.")]


# Click options take one value each; scientists write `--elements Ca Sn O`. Commands that take such lists allow
# extra arguments and collect them here (also accepting `Ca-Sn-O` and `Ca,Sn,O`).
MULTI_VALUE = {"allow_extra_args": True, "ignore_unknown_options": False}


def gather_values(first: list[str] | None, ctx: typer.Context) -> list[str]:
    values = [*(first or []), *ctx.args]
    return [part for value in values for part in value.replace(",", "-").split("-") if part]


def fail(message: str, code: int = 2) -> NoReturn:
    """Stop with a one-line error, the way a scientist wants to read it in a job log."""
    stderr.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def print_json(document: BaseModel | dict) -> None:
    text = document.model_dump_json(indent=2) if isinstance(document, BaseModel) else json.dumps(document, indent=2)
    print(text)


def emit_report(report: BaseModel, out: Path | None, as_json: bool) -> bool:
    """Write the report to ``out`` if asked, print it as JSON if asked; True when nothing is left to show."""
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report.model_dump_json(indent=2))
    if as_json:
        print_json(report)
    return as_json


def write_workflow_file(workflow, path: Path) -> None:
    """A FireWorks workflow file for `lpad add`; numpy scalars in input sets (VASP's EDIFF...) made plain first,
    which FireWorks' own YAML writer refuses."""
    from monty.json import jsanitize
    from monty.serialization import dumpfn

    dumpfn(jsanitize(workflow.to_dict(), strict=False, enum_values=True), str(path))


def add_to_launchpad(workflow, launchpad: Path) -> None:
    """``lpad add`` from Python; the embedded (mongomock) LaunchPad takes one process at a time, so this holds the
    same lock as env.sh's rlaunch. An unreachable MongoDB or a bad file is a one-line error."""
    from filelock import FileLock, Timeout
    from fireworks import LaunchPad

    from pccd_flows.cli.launchpad import LOCK_NAME

    lock = launchpad.resolve().parent / LOCK_NAME
    try:
        with FileLock(str(lock), timeout=600):
            LaunchPad.from_file(str(launchpad)).add_wf(workflow)
    except Timeout:
        fail(f"another process holds {lock} (an rlaunch?); try again later")
    except Exception as exc:  # noqa: BLE001 - unreachable MongoDB, bad file...
        fail(f"cannot add the workflow to {launchpad}: {str(exc).splitlines()[0][:200]}")
