"""``pccd query``: find candidates (stable ones first) in the candidate store."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from pccd_flows.cli.common import (
    JsonOption,
    check_store_location,
    echo,
    fail,
    require_output_dir,
    results_stream,
    stderr,
    stdout,
    validation_message,
)

CSV_COLUMNS = ("candidate_id", "formula", "chemsys", "e_above_hull", "formation_energy_per_atom", "energy_per_atom",
               "engine", "judge", "reference", "novel", "matched_mp_id", "checkpoint_sha256", "seed", "index")


def _csv_row(doc) -> dict:
    stability, relaxation = doc.stability, doc.relaxation
    return {
        "candidate_id": doc.candidate_id, "formula": doc.formula, "chemsys": doc.chemsys,
        "e_above_hull": doc.e_above_hull,
        "formation_energy_per_atom": stability.formation_energy_per_atom if stability else None,
        "energy_per_atom": relaxation.energy_per_atom if relaxation else None,
        "engine": relaxation.engine if relaxation else None, "judge": stability.engine if stability else None,
        "reference": stability.reference if stability else None,
        "novel": doc.novel, "matched_mp_id": doc.matched_mp_id,
        "checkpoint_sha256": doc.provenance.checkpoint_sha256, "seed": doc.provenance.seed,
        "index": doc.provenance.index,
    }


def query_command(
    ctx: typer.Context,
    chemsys: Annotated[list[str] | None, typer.Option("--chemsys", help="Chemical systems, e.g. Ca-Sn-O Mg-O.")] = None,
    max_ehull: Annotated[float | None, typer.Option("--max-ehull", help="eV/atom above hull, at most.")] = None,
    stable_only: Annotated[bool, typer.Option("--stable-only", help="On or below the hull (E_hull <= 0).")] = False,
    novel_only: Annotated[bool, typer.Option("--novel-only", help="Only crystals no MP structure matches.")] = False,
    confirmed_by: Annotated[list[str] | None, typer.Option(
        "--confirmed-by", help="Also require this force field's verdict (`pccd validate judges`; repeatable): its "
                               "E_hull within --max-ehull, or 0.1 eV/atom.")] = None,
    sort: Annotated[str, typer.Option("--sort", help="Sort by (ascending; candidates without a value last): "
                                      "e_above_hull, formation_energy_per_atom, energy_per_atom, formula, chemsys, "
                                      "candidate_id, seed, index, last_updated.")] = "e_above_hull",
    limit: Annotated[int | None, typer.Option("--limit", min=1)] = None,
    as_json: JsonOption = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV on stdout.")] = False,
    cif_dir: Annotated[Path | None, typer.Option("--cif-dir", help="Write each candidate's (relaxed) CIF here.")] = None,
) -> None:
    """Candidates from the store (embedded by default; PCCD_STORE_FILE for MongoDB), filtered and sorted."""
    from pydantic import ValidationError

    from pccd_flows.stores.candidates import CandidateQuery, CandidateStore
    from pccd_flows.stores.config import StoreError

    if sum([as_json, as_csv]) > 1:
        fail("choose one of --json and --csv")
    try:
        query = CandidateQuery(chemsys=_systems(chemsys, ctx), max_ehull=max_ehull, stable_only=stable_only,
                               novel_only=novel_only, confirmed_by=confirmed_by or [], sort=sort, limit=limit)
    except ValidationError as exc:
        fail(validation_message(exc))
    if cif_dir is not None:
        require_output_dir(cif_dir, "--cif-dir")
    check_store_location()
    try:
        docs = CandidateStore().search(query)
    except StoreError as exc:
        fail(str(exc))
    if cif_dir is not None:
        cif_dir.mkdir(parents=True, exist_ok=True)
        for doc in docs:
            structure = doc.final_structure()
            if structure is not None:
                structure.to(filename=str(cif_dir / f"{doc.candidate_id}_{structure.composition.reduced_formula}.cif"))
        stderr.print(f"wrote {len(docs)} CIFs to {cif_dir}")
    if as_json:
        echo(json.dumps({"n": len(docs), "candidates": [d.model_dump(mode="json") for d in docs]}, indent=2))
    elif as_csv:
        writer = csv.DictWriter(results_stream(), fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(_csv_row(d) for d in docs)
    elif cif_dir is None:
        table = Table(title=f"{len(docs)} candidates")
        for column in ("candidate", "formula", "E_hull (eV/atom)", "judge", "decomposition", "novel", "seed/index"):
            table.add_column(column)
        for doc in docs:
            decomposition = " + ".join(doc.stability.decomposition) if doc.stability else ""
            ehull = f"{doc.e_above_hull:.3f}" if doc.e_above_hull is not None else "-"
            if ehull == "-" and doc.prefilter.passed is False:
                ehull = "rejected"
            judge = doc.stability.engine if doc.stability else ""
            table.add_row(doc.candidate_id, doc.formula or "-", ehull, judge, decomposition, str(doc.novel),
                          f"{doc.provenance.seed}/{doc.provenance.index}")
        stdout.print(table)


def _systems(chemsys: list[str] | None, ctx: typer.Context) -> list[str]:
    """`--chemsys Ca-Sn-O Mg-O` (systems separated by spaces); elements within a system by '-' or ','."""
    return [value.replace(",", "-") for value in [*(chemsys or []), *ctx.args]]
