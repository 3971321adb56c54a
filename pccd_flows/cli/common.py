"""Shared pieces of the command line: consoles, one-line errors, progress bars, options."""

from __future__ import annotations

import contextlib
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Annotated, NoReturn

import typer
from pydantic import BaseModel
from rich.markup import escape

from pccd_flows.progress import PipeFriendlyConsole, progress_bar, stderr  # noqa: F401 - commands take them from here

# Results go to stdout (so `--json` output can be piped), everything for the eye goes to stderr. While a command
# runs, sys.stdout points at stderr (libraries print banners: CHGNet's "CHGNet v0.3.0 initialized..."); results
# are written to the real stdout, kept here.
_results: list[IO[str]] = []


def results_stream() -> IO[str]:
    """Where results go: the real stdout of the running command (sys.stdout outside a command)."""
    return _results[-1] if _results else sys.stdout


@contextlib.contextmanager
def chatter_on_stderr() -> Iterator[None]:
    """Run a command with anything printed on sys.stdout sent to stderr; results still reach stdout."""
    _results.append(sys.stdout)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        _results.pop()


class _ResultsConsole(PipeFriendlyConsole):
    @property
    def file(self) -> IO[str]:
        return results_stream()

    @file.setter
    def file(self, new_file: IO[str]) -> None:  # rich sets it only for consoles made with file=...
        self._file = new_file


stdout = _ResultsConsole()


def echo(text: str) -> None:
    """A plain result line (JSON, CSV) on stdout, never wrapped or marked up."""
    print(text, file=results_stream())


def finite(value: float | None) -> float | None:
    """Option callback: click's ranges let `nan` through (every comparison with it is false), and `inf` is never
    meant."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value


DataOption = Annotated[
    Path | None,
    typer.Option("--data", help="Data set: jsonl(.gz) like the bundled one, or MP-20-style CSV. Default: bundled MP data."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
SamplerStepsOption = Annotated[int, typer.Option("--steps", min=1, help="DDIM denoising steps.")]
EtaOption = Annotated[float, typer.Option(
    "--eta", min=0.0, callback=finite,
    help="DDIM noise: 1 adds the ancestral sampler's noise at each step (default), 0 is deterministic.")]
RepulsionOption = Annotated[float, typer.Option(
    "--repulsion", min=0.0, callback=finite,
    help="Overlap repulsion: in the last sampler steps, points of different elements closer than this fraction of "
    "the sum of their covalent radii are pushed apart (0: off).")]
MinCovalentRatioOption = Annotated[float, typer.Option(
    "--min-covalent-ratio", min=0.0, callback=finite,
    help="Screening: reject atoms closer than this fraction of the sum of their covalent radii (0: only the 0.5 A "
    "validity test).")]
IcsdOxidationStatesOption = Annotated[bool, typer.Option(
    "--icsd-oxidation-states/--smact-only", help="Screening: also require a charge balance with oxidation states "
    "seen in the ICSD.")]
ConfirmWithOption = Annotated[str | None, typer.Option(
    "--confirm-with", help="Force fields that must agree with --engine (comma-separated; 'none' for none; default: "
                           "PCCD_CONFIRM_WITH, sevennet): each relaxes the candidates the engine puts within "
                           "PCCD_CONFIRM_BELOW (0.25 eV/atom) of the hull, and the higher E_hull counts.")]


ConfirmFromOption = Annotated[str | None, typer.Option(
    "--confirm-from",
    help="What the confirming force fields relax (default: PCCD_CONFIRM_FROM, generated): the generated structure "
         "(an independent judge: the higher precision against DFT) or the engine's relaxed one (higher recall, 4x "
         "cheaper); measured in docs/stability.md.")]


def confirm_start(value: str | None) -> str:
    """``--confirm-from`` checked (exit 2 unless generated or relaxed); the configured one when not given."""
    from pccd_flows.settings import get_settings

    value = get_settings().confirm_from if value is None else value
    if value not in ("generated", "relaxed"):
        fail(f"--confirm-from {value!r}: choose generated or relaxed")
    return value


def confirm_engines(value: str | None, engine: str) -> str:
    """``--confirm-with`` checked (exit 2 on an unknown force field), as the comma-separated string settings hold;
    none where the engine is not a force field (VASP is its own check)."""
    from pccd_flows.settings import get_settings, parse_engines
    from pccd_flows.stability.engines import FORCE_FIELDS

    engines = parse_engines(get_settings().confirm_with if value is None else value)
    unknown = [e for e in engines if e not in FORCE_FIELDS]
    if unknown:
        fail(f"--confirm-with {unknown[0]!r}: choose force fields from {', '.join(FORCE_FIELDS)}, or none")
    if engine not in FORCE_FIELDS:
        return "none"
    return ",".join(e for e in engines if e != engine) or "none"


LimitOption = Annotated[int | None, typer.Option("--limit", min=1, help="Use only the first N records.")]


# Click options take one value each; scientists write `--elements Ca Sn O`. Commands that take such lists allow
# extra arguments and collect them here (also accepting `Ca-Sn-O` and `Ca,Sn,O`).
# numpy refuses negative seeds and torch seeds above 2**64 - 1: the option range says so before either is reached
SEED_MAX = 2**63 - 1
MULTI_VALUE = {"allow_extra_args": True, "ignore_unknown_options": False}


def shard_of(value: str | None) -> tuple[int, int] | None:
    """``--shard I/N`` as (I, N); a one-line error (exit 2) for anything else."""
    if value is None:
        return None
    try:
        index, count = (int(part) for part in value.split("/"))
    except ValueError:
        fail(f"--shard takes I/N (e.g. 0/2), not {value!r}")
    if not 0 <= index < count:
        fail(f"--shard {value}: I must be in 0..N-1")
    return index, count


def gather_values(first: list[str] | None, ctx: typer.Context) -> list[str]:
    values = [*(first or []), *ctx.args]
    return [part for value in values for part in value.replace(",", "-").split("-") if part]


def one_line(message: object) -> str:
    """Messages (ours and libraries') as one line: job logs and `grep` read errors line by line."""
    return " ".join(line.strip() for line in str(message).splitlines() if line.strip())


def fail(message: str, code: int = 2) -> NoReturn:
    """Stop with a one-line error, the way a scientist wants to read it in a job log."""
    # escaped: messages are plain text, and rich would swallow `[dft]` in `pip install 'pccd-flows[dft]'`
    stderr.print(f"[bold red]error:[/] {escape(one_line(message))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def validation_message(exc) -> str:
    """The first problem of a pydantic ValidationError, one line: our validators' messages name the option already;
    pydantic's own ("Input should be 'ddim' or 'ddpm'") get the field's name in front."""
    error = exc.errors()[0]
    if error["type"] == "value_error":
        return error["msg"].removeprefix("Value error, ")
    field = ".".join(str(part) for part in error["loc"])
    return f"{field}: {error['msg']}" if field else error["msg"]


def warn(message: str) -> None:
    stderr.print(f"[yellow]warning:[/] {escape(one_line(message))}", highlight=False, soft_wrap=True)


@contextlib.contextmanager
def job_progress() -> Iterator[list[str]]:
    """Progress of a jobflow run on stderr, one line per job as it starts, and each failed job as a warning
    (jobflow logs them at INFO and carries on; without this a screening is silent for minutes and fails unseen).
    Yields the names of the jobs that failed."""
    import logging
    import time

    failed: list[str] = []
    start = time.monotonic()

    class _Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage()
            if message.startswith("Starting job - "):
                name = message.removeprefix("Starting job - ").rsplit(" (", 1)[0]
                stderr.print(f"[{time.monotonic() - start:6.0f} s] {escape(name)}", highlight=False, soft_wrap=True)
            elif " failed with exception:" in message:
                name, _, trace = message.partition(" failed with exception:")
                failed.append(name)
                last = trace.strip().splitlines()[-1] if trace.strip() else ""
                warn(f"job {name} failed: {last}")

    logger = logging.getLogger("jobflow")
    handler, level, propagate = _Handler(), logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # these INFO lines are shown once, here
    try:
        yield failed
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def print_json(document: BaseModel | dict) -> None:
    text = document.model_dump_json(indent=2) if isinstance(document, BaseModel) else json.dumps(document, indent=2)
    echo(text)


def require_file(path: Path, option: str) -> Path:
    """An input file that must exist and be a file (not a folder)."""
    if not path.exists():
        fail(f"{option} {path}: no such file")
    if not path.is_file():
        fail(f"{option} {path}: is a directory, not a file")
    return path


def require_output_file(path: Path, option: str) -> Path:
    """A file to write: not a folder, and its folder creatable (made here)."""
    if path.is_dir():
        fail(f"{option} {path}: is a directory; name a file to write")
    _make_parent(path, option)
    return path


def require_output_dir(path: Path, option: str) -> Path:
    """A folder to write into: made here when missing; an existing file is an error."""
    if path.exists() and not path.is_dir():
        fail(f"{option} {path}: is a file; name a directory")
    _make_parent(path, option)
    return path


def _make_parent(path: Path, option: str) -> None:
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                fail(f"{option} {path}: {parent} is a file, not a directory")
            break
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"{option} {path}: cannot create {path.parent} ({exc.strerror})")


def check_store_location() -> None:
    """The embedded store's folder (PCCD_STORE_DIR) must be a folder: checked before any work is done."""
    from pccd_flows.settings import get_settings

    settings = get_settings()
    if settings.store_file is not None:
        if not settings.store_file.is_file():
            fail(f"PCCD_STORE_FILE={settings.store_file}: no such file")
        return
    directory = settings.store_dir.expanduser()
    if directory.exists() and not directory.is_dir():
        fail(f"PCCD_STORE_DIR={settings.store_dir}: is a file; the embedded store needs a directory")
    for parent in directory.resolve().parents:
        if parent.exists():
            if not parent.is_dir():
                fail(f"PCCD_STORE_DIR={settings.store_dir}: {parent} is a file, not a directory")
            break


def emit_report(report: BaseModel, out: Path | None, as_json: bool) -> bool:
    """Write the report to ``out`` if asked, print it as JSON if asked; True when nothing is left to show."""
    if out is not None:
        require_output_file(out, "--out")
        out.write_text(report.model_dump_json(indent=2))
    if as_json:
        print_json(report)
    return as_json


def write_workflow_file(workflow, path: Path) -> None:
    """A FireWorks workflow file for `lpad add`; numpy scalars in input sets (VASP's EDIFF...) made plain first,
    which FireWorks' own YAML writer refuses."""
    from monty.json import jsanitize
    from monty.serialization import dumpfn

    require_output_file(path, "--write-workflow")
    dumpfn(jsanitize(workflow.to_dict(), strict=False, enum_values=True), str(path))


def add_to_launchpad(workflow, launchpad: Path) -> None:
    """``lpad add`` from Python. The embedded (mongomock) LaunchPad is guarded inside every process
    (pccd_flows.launchpad_guard: each LaunchPad operation holds the file's lock), so this waits at most for one
    operation of a running rlaunch. An unreachable MongoDB or a bad file is a one-line error."""
    from pccd_flows.launchpad_guard import register

    register()  # also where this environment has no startup hook yet (no `pccd launchpad init` ran in it)
    from fireworks import LaunchPad

    stderr.print(f"adding {len(workflow.fws)} fireworks to {launchpad}", highlight=False, soft_wrap=True)
    try:
        LaunchPad.from_file(str(launchpad)).add_wf(workflow)
    except Exception as exc:  # noqa: BLE001 - unreachable MongoDB, bad file...
        fail(f"cannot add the workflow to {launchpad}: {str(exc).splitlines()[0][:200]}")


def read_structure(path: Path):
    """A structure file as an ordered pymatgen Structure, or a one-line error (exit 2) saying why not."""
    from pymatgen.core import Structure

    require_file(path, "structure file")
    try:
        structure = Structure.from_file(path)
    except Exception as exc:  # noqa: BLE001 - pymatgen raises many types for unreadable files
        fail(f"{path}: cannot read a structure ({str(exc).splitlines()[0][:150] if str(exc) else type(exc).__name__})")
    if not structure.is_ordered:
        fail(f"{path}: has partial occupancies (a disordered structure); the hull needs an ordered one "
             "(order it first, e.g. pymatgen's OrderDisorderedStructureTransformation)")
    if len(structure) == 0:
        fail(f"{path}: holds no atoms")
    return structure
