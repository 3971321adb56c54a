"""``pccd followup``: DFT relaxation, band structure and phonons of one candidate or CIF (the paper's Fig. 4)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from pccd_flows.cli.common import (
    check_store_location,
    echo,
    fail,
    require_output_dir,
    require_output_file,
    stderr,
    stdout,
    warn,
    write_workflow_file,
)


def _engine(value: str | None) -> str | None:
    return None if value is None or value.lower() in ("none", "no", "") else value.lower()


def checked_engines(dft: str | None, phonons: str | None, runs_here: bool) -> tuple[str | None, str | None]:
    """The follow-up engines, or a one-line error for a name that does not exist or cannot run here."""
    from pccd_flows.followup.gpaw import GpawMissingError, require_gpaw
    from pccd_flows.followup.phonons import PHONON_ENGINES
    from pccd_flows.makers.followup import DFT_ENGINES

    dft, phonons = _engine(dft), _engine(phonons)
    if dft not in (None, *DFT_ENGINES):
        fail(f"unknown --dft {dft!r}: choose gpaw, vasp or none")
    if phonons not in (None, *PHONON_ENGINES):
        fail(f"unknown --phonons {phonons!r}: choose {', '.join(PHONON_ENGINES)} or none")
    if dft is None and phonons is None:
        fail("nothing to do: --dft none and --phonons none")
    if "vasp" in (dft, phonons) and runs_here:
        fail("VASP does not run here: add --write-workflow wf.yaml and `lpad add` it on your HPC LaunchPad")
    if "gpaw" in (dft, phonons) and runs_here:
        try:
            require_gpaw()
        except GpawMissingError as exc:
            fail(str(exc))
    return dft, phonons


def followup_command(
    candidate_id: Annotated[str | None, typer.Option("--candidate-id", help="A candidate in the store.")] = None,
    cif: Annotated[Path | None, typer.Option("--cif", exists=True, dir_okay=False, help="Any structure file.")] = None,
    dft: Annotated[str, typer.Option("--dft", help="gpaw (runs here), vasp (HPC: use --write-workflow) or none.")
                   ] = "gpaw",
    phonons: Annotated[str, typer.Option("--phonons", help="chgnet (default), sevennet, gpaw, vasp or none.")
                       ] = "chgnet",
    stability_check: Annotated[bool, typer.Option(
        "--stability-check/--no-stability-check",
        help="Recompute the decomposition products with GPAW at the same settings (store candidates only).")] = True,
    relax_with: Annotated[str | None, typer.Option(
        "--relax-with", help="chgnet or sevennet: the force field relaxes and GPAW computes only the bands at that "
                             "geometry (no DFT stability check). Default: the DFT engine relaxes.")] = None,
    ecut: Annotated[float, typer.Option("--ecut", min=100, help="GPAW plane-wave cutoff (eV).")] = 800.0,
    kpoint_density: Annotated[float, typer.Option("--kpoint-density", min=0.5, help="GPAW k-points per 1/A.")] = 2.5,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
    plots: Annotated[Path | None, typer.Option("--plots", help="Write band structure and phonon PNGs here.")] = None,
    write_workflow: Annotated[Path | None, typer.Option("--write-workflow", help="Write a FireWorks workflow file "
                                                                                  "instead of running here.")] = None,
) -> None:
    """Relaxation, band structure and phonons; a store candidate's document is updated with the results."""
    from pymatgen.core import Structure

    from pccd_flows.followup.gpaw import GpawSettings
    from pccd_flows.makers.followup import FollowUpFlowMaker

    if (candidate_id is None) == (cif is None):
        fail("give exactly one of --candidate-id ID or --cif FILE")
    if write_workflow is not None:
        require_output_file(write_workflow, "--write-workflow")
    if plots is not None:
        require_output_dir(plots, "--plots")
    if candidate_id is not None:
        check_store_location()
    dft, phonons = checked_engines(dft, phonons, runs_here=write_workflow is None)
    maker = FollowUpFlowMaker(dft=dft, phonons=phonons, category=None, relax_with=_engine(relax_with),
                              gpaw_settings=GpawSettings(ecut=ecut, kpoint_density=kpoint_density))
    try:
        dft_relaxes = not maker.relaxes_with_force_field
    except ValueError as exc:
        fail(str(exc))

    products, doc = None, None
    if candidate_id is not None:
        from pccd_flows.stores.candidates import CandidateStore

        doc = CandidateStore().get(candidate_id)
        if doc is None:
            fail(f"no candidate {candidate_id} in the store (see `pccd query`)")
        structure = doc.final_structure()
        if structure is None:
            fail(f"candidate {candidate_id} has no structure ({doc.decode_error or doc.prefilter.reject_reason})")
        if stability_check and dft == "gpaw" and dft_relaxes and doc.stability is not None:
            from pccd_flows.stability.products import decomposition_products
            from pccd_flows.stability.references import ReferenceError

            try:
                products = decomposition_products(doc)
            except ReferenceError as exc:
                warn(f"no DFT stability check: {exc}")
    else:
        try:
            structure = Structure.from_file(cif)
        except Exception as exc:  # noqa: BLE001 - any unreadable file
            fail(f"cannot read {cif}: {str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}")
        if not structure.is_ordered:
            fail(f"{cif}: has partial occupancies (a disordered structure); DFT and phonons need an ordered one")
    try:
        flow = maker.make(structure, candidate_id, products)
    except ValueError as exc:
        fail(str(exc))
    if write_workflow is not None:
        from jobflow.managers.fireworks import flow_to_workflow

        workflow = flow_to_workflow(flow)
        write_workflow_file(workflow, write_workflow)
        stdout.print(f"wrote {write_workflow}: {len(workflow.fws)} fireworks; add it with `lpad add {write_workflow}`",
                     highlight=False)
        return
    stderr.print(f"follow-up of {structure.composition.reduced_formula}: {dft or 'no'} DFT, "
                 f"{phonons or 'no'} phonons")
    from pccd_flows.followup.local import run_follow_up_here

    summary = run_follow_up_here(flow, structure, candidate_id, plots)
    if summary is None:
        fail("the follow-up did not finish (see the job folders under the scratch directory)")
    if as_json:
        echo(json.dumps(summary, indent=2))
    else:  # results: on stdout, as plain lines (a value can hold brackets that rich would read as markup)
        for key, value in summary.items():
            echo(f"{key}: {value}")
