"""``pccd screen``: the screening flow, run here, added to a LaunchPad, or written as a FireWorks workflow file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pccd_flows.cli.common import (
    SEED_MAX,
    ConfirmFromOption,
    ConfirmWithOption,
    EtaOption,
    IcsdOxidationStatesOption,
    MinCovalentRatioOption,
    RepulsionOption,
    SamplerStepsOption,
    add_to_launchpad,
    check_store_location,
    confirm_engines,
    confirm_start,
    fail,
    finite,
    job_progress,
    require_file,
    require_output_file,
    stderr,
    stdout,
    write_workflow_file,
)
from pccd_flows.settings import DEFAULT_REPULSION_RATIO, DEFAULT_SAMPLER_ETA, DEFAULT_SAMPLER_STEPS


def screen_command(
    ctx: typer.Context,
    chemsys: Annotated[list[str], typer.Option("--chemsys", help="Chemical systems, e.g. --chemsys Ca-Sn-O Mg-O.")],
    n: Annotated[int, typer.Option("--n", min=1, help="Candidates per chemical system.")] = 16,
    engine: Annotated[str, typer.Option("--engine", help="chgnet (default), sevennet, or vasp (HPC).")] = "chgnet",
    reference: Annotated[str | None, typer.Option("--reference", help="mp-structures, mp-formation, mp-api.")] = None,
    confirm_with: ConfirmWithOption = None,
    confirm_from: ConfirmFromOption = None,
    seed: Annotated[int, typer.Option("--seed", min=0, max=SEED_MAX)] = 0,
    steps: SamplerStepsOption = DEFAULT_SAMPLER_STEPS,
    eta: EtaOption = DEFAULT_SAMPLER_ETA,
    repulsion: RepulsionOption = DEFAULT_REPULSION_RATIO,
    min_covalent_ratio: MinCovalentRatioOption = 0.0,
    icsd_oxidation_states: IcsdOxidationStatesOption = False,
    relax_steps: Annotated[int, typer.Option("--relax-steps", min=1, help="Force-field relaxation steps.")] = 500,
    relax_fmax: Annotated[float, typer.Option("--relax-fmax", min=0.001, help="Force convergence, eV/A.")] = 0.05,
    checkpoint: Annotated[Path | None, typer.Option("--checkpoint", help="Default: the shipped checkpoint.")] = None,
    follow_up_below: Annotated[float | None, typer.Option(
        "--follow-up-below", callback=finite, help="Follow up (DFT relaxation, bands, phonons) every candidate at or under this "
                                  "E_hull (eV/atom).")] = None,
    dft: Annotated[str, typer.Option("--dft", help="Follow-up DFT: gpaw (runs here), vasp (HPC) or none.")] = "gpaw",
    phonons: Annotated[str, typer.Option("--phonons", help="Follow-up phonons: chgnet, sevennet, gpaw, vasp, none.")
                       ] = "chgnet",
    run_locally: Annotated[bool, typer.Option("--run-locally", help="Run here (see --workers).")] = False,
    workers: Annotated[int, typer.Option("--workers", min=1, help="With --run-locally: 1 runs the flow in this "
                                                                   "process (jobflow); more run it over that many "
                                                                   "processes on a private embedded LaunchPad.")
                       ] = 1,
    chunk_size: Annotated[int | None, typer.Option("--chunk-size", min=1, help="Candidates per relaxation job "
                                                                               "(default: PCCD_RELAX_CHUNK_SIZE).")
                          ] = None,
    launchpad: Annotated[Path | None, typer.Option("--launchpad", help="Add the workflow to this LaunchPad.")] = None,
    write_workflow: Annotated[Path | None, typer.Option("--write-workflow", help="Write a FireWorks workflow file "
                                                                                  "for `lpad add`.")] = None,
) -> None:
    """Generate, prefilter, relax and judge candidates of each chemical system; results go to the candidate store."""
    from pccd_flows.makers import (
        GenerateCandidatesMaker,
        PrefilterMaker,
        RelaxCandidatesMaker,
        ScreeningFlowMaker,
        StabilityMaker,
    )
    from pccd_flows.settings import get_settings
    from pccd_flows.stability.engines import EngineError, check_engine
    from pccd_flows.stability.references import REFERENCES, ReferenceError, normalise_chemsys

    if sum([run_locally, launchpad is not None, write_workflow is not None]) != 1:
        fail("choose one of --run-locally, --launchpad FILE, --write-workflow FILE")
    # every argument is checked here, before the first candidate is generated
    systems = [value.replace(",", "-") for value in [*chemsys, *ctx.args]]
    try:
        systems = ["-".join(normalise_chemsys(s)) for s in systems]
        engine = check_engine(engine)
    except (ReferenceError, EngineError) as exc:
        fail(str(exc))
    confirm_with, confirm_from = confirm_engines(confirm_with, engine), confirm_start(confirm_from)
    if any(len(s.split("-")) > 3 for s in systems):
        fail("PCCD generates crystals of 1 to 3 elements")
    reference = reference or get_settings().reference
    if reference not in REFERENCES:
        fail(f"unknown --reference {reference!r}: choose one of {', '.join(REFERENCES)}")
    if checkpoint is not None:
        from pccd_flows.model.checkpoint import CheckpointError, load_checkpoint

        require_file(checkpoint, "--checkpoint")
        try:
            load_checkpoint(checkpoint)
        except CheckpointError as exc:
            fail(str(exc))
    if launchpad is not None:
        require_file(launchpad, "--launchpad")
    if write_workflow is not None:
        require_output_file(write_workflow, "--write-workflow")
    check_store_location()
    if run_locally and reference == "mp-api":
        # the judging runs here at the end: an absent key or an unreachable server is found now, in seconds
        from pccd_flows.stability.references import reference_set

        try:
            for system in systems:
                reference_set("mp-api", system.split("-"), engine)
        except ReferenceError as exc:
            fail(str(exc))
    settings = get_settings()
    follow_up = None
    if follow_up_below is not None:
        from pccd_flows.cli.followup import checked_engines
        from pccd_flows.makers import FollowUpCandidatesMaker, FollowUpFlowMaker

        dft_engine, phonon_engine = checked_engines(dft, phonons, runs_here=run_locally)
        follow_up = FollowUpCandidatesMaker(follow_up=FollowUpFlowMaker(dft=dft_engine, phonons=phonon_engine),
                                            max_e_above_hull=follow_up_below)
    maker = ScreeningFlowMaker(
        follow_up=follow_up,
        generate=GenerateCandidatesMaker(checkpoint=str(checkpoint.resolve()) if checkpoint else None, n=n, seed=seed,
                                         steps=steps, eta=eta, repulsion=repulsion),
        prefilter=PrefilterMaker(min_covalent_ratio=min_covalent_ratio or None,
                                 require_icsd_oxidation_states=icsd_oxidation_states),
        relax=RelaxCandidatesMaker(engine=engine, steps=relax_steps, fmax=relax_fmax, chunk_size=chunk_size),
        stability=StabilityMaker(reference=reference, engine=engine, confirm_with=confirm_with,
                                 confirm_from=confirm_from),
    )
    flow = maker.make(systems)
    if write_workflow is not None or launchpad is not None:
        from pccd_flows.stores.config import fireworks_workflow

        workflow = fireworks_workflow(flow, settings)
        if write_workflow is not None:
            write_workflow_file(workflow, write_workflow)
            stdout.print(f"wrote {write_workflow}: {len(workflow.fws)} fireworks; add it with `lpad add {write_workflow}`")
            return
        add_to_launchpad(workflow, launchpad)
        stdout.print(f"added {len(workflow.fws)} fireworks to {launchpad}; run them with `rlaunch rapidfire`")
        return

    from pccd_flows.pipeline import unjudged_reasons
    from pccd_flows.pipeline.executors import run_flow
    from pccd_flows.stores.candidates import CandidateQuery, CandidateStore

    judge = engine if confirm_with == "none" else f"{engine} confirmed by {confirm_with} (from the {confirm_from} " \
                                                  "structure)"
    stderr.print(f"screening {', '.join(systems)}: {n} candidates each, {judge}, reference {reference}")
    with job_progress():
        run = run_flow(flow, workers, settings.store_dir / "fireworks")
    if run.interrupted:
        fail("interrupted; what finished is in the store (run the same command again: nothing done is redone)",
             code=130)
    docs = CandidateStore().search(CandidateQuery(chemsys=systems))
    passed = sum(bool(d.prefilter.passed) for d in docs)
    judged = sum(d.stability is not None for d in docs)
    stdout.print(f"{len(docs)} candidates stored, {passed} passed the prefilter, {judged} judged; the stable ones: "
                 f"`pccd query --chemsys {' '.join(systems)} --max-ehull 0.08`")
    # a relaxation that fails costs only its candidate (recorded in the store); a job that fails fails the command,
    # and so does a system without a hull (its candidates are relaxed and stored, not judged)
    stages = {job.name for job in flow.jobs} | {"collect_relaxations", "gather_chunks"}
    failed = [name for name in run.failed if name in stages or name.startswith("relax chunk")]
    if failed:
        fail(f"{len(failed)} job(s) failed: {', '.join(failed)}", code=1)
    missing = unjudged_reasons([d for d in docs if d.prefilter.passed], reference, engine)
    if missing:
        fail("no hull for " + "; ".join(f"{system}: {why}" for system, why in missing.items()), code=1)
