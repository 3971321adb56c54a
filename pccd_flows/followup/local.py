"""Running a follow-up flow here: job folders in a scratch directory, an in-memory job store, a summary."""

from __future__ import annotations

import contextlib
import sys
import warnings
from pathlib import Path


def run_follow_up_here(flow, structure, candidate_id: str | None, plots: Path | None) -> dict | None:
    """Run a follow-up flow locally (job folders in a scratch directory); its summary, with plots if asked."""
    import tempfile

    from jobflow import JobStore, run_locally
    from maggma.stores import MemoryStore

    store = JobStore(MemoryStore(), additional_stores={"data": MemoryStore()})
    # force fields print banners on stdout, which must stay clean for --json
    with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
        warnings.simplefilter("ignore")
        responses = run_locally(flow, store=store, log=False, create_folders=True,
                                root_dir=tempfile.mkdtemp(prefix="pccd-followup-"), ensure_success=False)
    record = responses.get(flow.jobs[-1].uuid, {})
    if not record:
        return None
    result = record[1].output
    formula = structure.composition.reduced_formula
    summary = {"formula": formula, "candidate_id": candidate_id, **result.summary(), "errors": result.errors}
    if plots is not None:
        from pccd_flows.followup.plots import follow_up_plots

        summary["plots"] = [str(p) for p in follow_up_plots(store, flow, plots, formula)]
    return summary
