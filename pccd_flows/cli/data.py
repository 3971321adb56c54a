"""``pccd data``: inspect the bundled data and fetch the paper's selection from the Materials Project."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from pccd_flows.cli.common import (
    DataOption,
    JsonOption,
    LimitOption,
    fail,
    print_json,
    require_output_file,
    stdout,
)
from pccd_flows.data.io import DataFormatError, data_format, read_records
from pccd_flows.data.stats import compute_stats
from pccd_flows.settings import get_settings

data_app = typer.Typer(help="Crystal data sets: statistics and Materials Project downloads.", no_args_is_help=True)


def resolve_data(path: Path | None) -> Path:
    path = path or get_settings().data_file
    if not path.exists():
        fail(f"{path}: no such data file")
    if not path.is_file():
        fail(f"{path}: is a directory, not a data file")
    try:
        data_format(path)
    except DataFormatError as exc:
        fail(str(exc))
    return path


@data_app.command("stats")
def stats(data: DataOption = None, limit: LimitOption = None, as_json: JsonOption = False) -> None:
    """Counts by number of elements and of sites, and which properties are known."""
    path = resolve_data(data)
    try:
        result = compute_stats(read_records(path, limit=limit))
    except DataFormatError as exc:
        fail(str(exc))
    if result.n_records == 0:
        fail(f"{path}: no crystal records (an empty data file?)")
    if as_json:
        print_json(result)
        return
    stdout.print(f"[bold]{path.name}[/]: {result.n_records:,} crystals")
    table = Table("elements", "crystals", title="By number of elements")
    for key, value in result.by_nelements.items():
        table.add_row(str(key), f"{value:,}")
    stdout.print(table)
    table = Table("sites", "crystals", title="By number of sites")
    for key, value in result.by_nsites.items():
        table.add_row(str(key), f"{value:,}")
    stdout.print(table)
    table = Table("property", "known", "fraction", title="Property coverage")
    for key, value in result.property_coverage.items():
        table.add_row(key, f"{value.count:,}", f"{value.fraction:.1%}")
    stdout.print(table)


@data_app.command("fetch")
def fetch(
    out: Annotated[Path, typer.Option("--out", help="Where to write the jsonl.gz file.")] = Path(
        "mp_paper_selection.jsonl.gz"
    ),
    api_key: Annotated[
        str | None, typer.Option("--api-key", envvar="MP_API_KEY", help="Materials Project API key.")
    ] = None,
    limit: LimitOption = None,
) -> None:
    """Download the paper's selection (<=3 elements, <=16 sites, band gap, magnetic ordering) through mp-api."""
    from pccd_flows.data.fetch import MPFetchError, fetch_paper_selection

    require_output_file(out, "--out")
    try:
        count = fetch_paper_selection(out, api_key=api_key, limit=limit)
    except MPFetchError as exc:
        fail(str(exc))
    stdout.print(f"wrote {count:,} crystals to {out}")
