"""``pccd codec``: the crystal <-> point-cloud translation, checked over whole data sets."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from pccd_flows.cli.common import (
    DataOption,
    JsonOption,
    LimitOption,
    emit_report,
    fail,
    progress_bar,
    require_output_file,
    stdout,
)
from pccd_flows.cli.data import resolve_data
from pccd_flows.codec.check import check_codec
from pccd_flows.data.io import DataFormatError, count_records, read_records
from pccd_flows.settings import get_settings

codec_app = typer.Typer(help="Encode crystals as point clouds and decode them back.", no_args_is_help=True)


@codec_app.command("check")
def check(
    data: DataOption = None,
    limit: LimitOption = None,
    workers: Annotated[int | None, typer.Option("--workers", min=1, help="Worker processes.")] = None,
    noise: Annotated[
        float, typer.Option("--noise", min=0.0, help="Perturb tensors before decoding (robustness to sampling noise).")
    ] = 0.0,
    out: Annotated[Path | None, typer.Option("--out", help="Also write the full JSON report here.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Encode then decode every structure and compare with the original (StructureMatcher)."""
    path = resolve_data(data)
    if out is not None:
        require_output_file(out, "--out")
    try:
        records = read_records(path, limit=limit)
        first = list(itertools.islice(records, 1))  # surface a wrong file format before the pool starts
        if not first:
            fail(f"{path}: no crystal records (an empty data file?)")
        total = count_records(path)
        if limit is not None:
            total = min(limit, total) if total is not None else limit
        with progress_bar(f"round-tripping {path.name}", total) as advance:
            report = check_codec(
                itertools.chain(first, records),
                workers=workers or get_settings().workers,
                on_result=lambda _: advance(),
                noise=noise,
            )
    except DataFormatError as exc:
        fail(str(exc))
    if emit_report(report, out, as_json):
        return
    table = Table("metric", "value", title=f"Codec round trip: {path.name}")
    for key in ("n", "n_skipped", "atom_count_exact_rate", "composition_exact_rate", "structure_match_rate"):
        table.add_row(key, f"{getattr(report, key):.6g}")
    table.add_row("max_lattice_length_rel_error", f"{report.max_lattice_length_rel_error:.2e}")
    table.add_row("seconds", f"{report.seconds:.1f}")
    stdout.print(table)
    for reason, count in report.skipped_by_reason.items():
        stdout.print(f"skipped ({reason}): {count}")
    for failure in report.failures[:20]:
        stdout.print(f"mismatch {failure.material_id} {failure.formula} -> {failure.decoded_formula}")
