"""``pccd ehull``: energy above the convex hull of any structures (CIF, POSCAR...)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from pccd_flows.cli.common import (
    ConfirmWithOption,
    JsonOption,
    confirm_engines,
    fail,
    print_json,
    progress_bar,
    read_structure,
    stdout,
)


def ehull_command(
    files: Annotated[list[Path], typer.Argument(help="Structure files (CIF, POSCAR, anything pymatgen reads).")],
    relax: Annotated[bool, typer.Option("--relax/--no-relax", help="Relax with the engine first.")] = True,
    engine: Annotated[str, typer.Option("--engine", help="chgnet (default) or sevennet.")] = "chgnet",
    confirm_with: ConfirmWithOption = None,
    reference: Annotated[str | None, typer.Option(
        "--reference", help="mp-structures (default: PCCD_REFERENCE), mp-formation (offline), mp-api (needs MP_API_KEY).")] = None,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Maximum relaxation steps.")] = 500,
    as_json: JsonOption = False,
) -> None:
    """Energy above hull (eV/atom), decomposition and stability flags of each structure."""

    from pccd_flows.settings import get_settings
    from pccd_flows.stability.assess import energy_above_hull
    from pccd_flows.stability.engines import EngineError, RelaxSettings, check_engine
    from pccd_flows.stability.references import REFERENCES, ReferenceError
    from pccd_flows.stores.config import StoreError

    structures = [(str(path), read_structure(path)) for path in files]
    reference = reference or get_settings().reference
    if reference not in REFERENCES:
        fail(f"unknown --reference {reference!r}: choose one of {', '.join(REFERENCES)}")
    try:
        engine = check_engine(engine)
    except EngineError as exc:
        fail(str(exc))
    confirm_with = confirm_engines(confirm_with, engine)
    try:
        with progress_bar(f"{'relax + ' if relax else ''}hull ({engine}, {reference})", len(structures)) as advance:
            report = energy_above_hull(structures, engine=engine, reference=reference,
                                       relax=RelaxSettings(relax=relax, steps=steps), progress=advance,
                                       confirm_with=confirm_with)
    except (EngineError, ReferenceError, StoreError) as exc:
        fail(str(exc))
    if as_json:
        print_json(report.model_dump(mode="json", exclude={"results": {"__all__": {"relaxed_structure"}}}))
    else:
        print_table(report, "+".join([engine, *report.confirm_with]), reference)
    if report.reference_errors:  # the rows are shown; the missing hulls still fail the command
        fail("no hull for " + "; ".join(f"{chemsys}: {error}" for chemsys, error in report.reference_errors.items()),
             code=1)


def print_table(report, engine: str, reference: str) -> None:
    table = Table(title=f"energy above hull ({engine}, reference {reference})")
    for column in ("source", "formula", "E (eV/atom)", "E_hull (eV/atom)", "judges' E_hull", "decomposition"):
        table.add_column(column)
    for row in report.results:
        if row.error:
            table.add_row(row.source, row.formula, "-", "-", "-", f"[red]{escape(row.error)}")
            continue
        decomposition = " + ".join(f"{f:.2f} {k}" for k, f in row.decomposition.items())
        judges = ", ".join(f"{name} {value:.3f}" for name, value in row.judgements.items())
        table.add_row(row.source, row.formula, f"{row.energy_per_atom:.4f}", f"{row.e_above_hull:.4f}", judges,
                      decomposition)
    stdout.print(table)
