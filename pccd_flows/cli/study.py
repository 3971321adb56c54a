"""``pccd study paper-746`` and ``pccd report study``: the paper's screening study, run and reported."""

from __future__ import annotations

import contextlib
import json
import re
import sys
import warnings
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
    check_store_location,
    confirm_engines,
    confirm_start,
    echo,
    fail,
    job_progress,
    print_json,
    progress_bar,
    require_file,
    require_output_dir,
    require_output_file,
    stderr,
    stdout,
)
from pccd_flows.schemas.candidate import STUDY_NAME
from pccd_flows.settings import DEFAULT_REPULSION_RATIO, DEFAULT_SAMPLER_ETA, DEFAULT_SAMPLER_STEPS


def study_name(value: str) -> str:
    if not re.fullmatch(STUDY_NAME, value):
        raise typer.BadParameter(f"{value!r}: a study's name names files in the store; use letters, digits, . _ - "
                                 "and start with a letter or digit")
    return value


study_app = typer.Typer(help="Screening studies, reproduced with one command.", no_args_is_help=True)
report_app = typer.Typer(help="Reports of finished (or partial) studies.", no_args_is_help=True)


@study_app.command("paper-746")
def paper_746_command(
    target: Annotated[int, typer.Option("--target", min=1, help="Structures that pass the screening.")] = 746,
    engine: Annotated[str, typer.Option("--engine", help="Force field: chgnet (default) or sevennet.")] = "chgnet",
    confirm_with: ConfirmWithOption = None,
    confirm_from: ConfirmFromOption = None,
    reference: Annotated[str | None, typer.Option("--reference", help="mp-structures, mp-formation, mp-api.")
                         ] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, max=SEED_MAX)] = 0,
    n_systems: Annotated[int, typer.Option("--n-systems", min=1, help="Chemical systems drawn from the pools.")
                         ] = 36,
    systems: Annotated[list[str] | None, typer.Option("--system", help="Explicit systems (repeat), e.g. Mg-O.")
                       ] = None,
    per_batch: Annotated[int, typer.Option("--per-batch", min=1)] = 16,
    relax_steps: Annotated[int, typer.Option("--relax-steps", min=1, help="Relaxation step cap.")] = 300,
    relax_fmax: Annotated[float, typer.Option("--relax-fmax", min=0.001, help="Force convergence, eV/A.")] = 0.1,
    workers: Annotated[int | None, typer.Option("--workers", min=1, help="Worker processes here (default: one per "
                                                                          "core; 1 runs in this process).")] = None,
    chunk_size: Annotated[int | None, typer.Option("--chunk-size", min=1, help="Candidates per relaxation job "
                                                                               "(default: PCCD_RELAX_CHUNK_SIZE).")
                          ] = None,
    sampler_steps: SamplerStepsOption = DEFAULT_SAMPLER_STEPS,
    sampler_eta: EtaOption = DEFAULT_SAMPLER_ETA,
    sampler_repulsion: RepulsionOption = DEFAULT_REPULSION_RATIO,
    min_covalent_ratio: MinCovalentRatioOption = 0.6,
    icsd_oxidation_states: IcsdOxidationStatesOption = True,
    checkpoint: Annotated[Path | None, typer.Option("--checkpoint", help="Default: the shipped checkpoint.")] = None,
    name: Annotated[str, typer.Option("--name", callback=study_name, help="The study's name in the store.")] = "paper-746",
    run_locally: Annotated[bool, typer.Option("--run-locally", help="Run the study's flow here, over --workers "
                                                                      "processes (the default).")] = False,
    launchpad: Annotated[Path | None, typer.Option("--launchpad", help="Add the study's flow to this LaunchPad "
                                                                       "for `rlaunch` (generation jobs in category "
                                                                       "generate, one relaxation per chunk in "
                                                                       "relax).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted study of the same settings.")
                      ] = False,
) -> None:
    """Generate oxides of alkaline-earth, rare-earth and transition metals, screen exactly --target of them,
    relax them and judge them against the hull; everything goes to the candidate store."""
    from pccd_flows.settings import get_settings
    from pccd_flows.stability.engines import FORCE_FIELDS, EngineError, check_engine
    from pccd_flows.stores.candidates import CandidateStore
    from pccd_flows.study.paper746 import StudySpec, run_study, submit_study

    if run_locally and launchpad is not None:
        fail("choose one of --run-locally and --launchpad FILE")
    if launchpad is not None:
        require_file(launchpad, "--launchpad")
    check_store_location()
    try:
        engine = check_engine(engine)
    except EngineError as exc:
        fail(str(exc))
    if engine not in FORCE_FIELDS:
        fail("the study runs here with a force field; VASP studies go through `pccd screen --write-workflow`")
    confirm_with, confirm_from = confirm_engines(confirm_with, engine), confirm_start(confirm_from)
    settings = get_settings()
    spec = StudySpec(name=name, target=target, seed=seed, n_systems=n_systems, systems=systems or None,
                     per_batch=per_batch, engine=engine, confirm_with=confirm_with, confirm_from=confirm_from,
                     reference=reference or settings.reference,
                     relax_steps=relax_steps, relax_fmax=relax_fmax, sampler_steps=sampler_steps, sampler_eta=sampler_eta,
                     sampler_repulsion=sampler_repulsion,
                     min_covalent_ratio=min_covalent_ratio or None, require_icsd_oxidation_states=icsd_oxidation_states,
                     **({"relax_workers": workers} if workers else {}),
                     **({"relax_chunk": chunk_size} if chunk_size else {}),
                     checkpoint=str(checkpoint.resolve()) if checkpoint else None)
    judge = engine if confirm_with == "none" else f"{engine} confirmed by {confirm_with} (from the {confirm_from} " \
                                                  "structure)"
    stderr.print(f"study {name}: {target} structures over {len(spec.chemical_systems())} systems, {judge}, "
                 f"reference {spec.reference}{' (resuming)' if resume else ''}")
    try:
        # force fields print banners on stdout; keep it for results
        with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
            warnings.simplefilter("ignore")
            candidates = CandidateStore()
            if launchpad is not None:
                from pccd_flows.pipeline.executors import open_launchpad

                added = submit_study(spec, candidates, settings.store_dir, open_launchpad(launchpad), resume)
            else:
                with job_progress():  # one line per job as it starts (in this process; workers print their own)
                    progress = run_study(spec, candidates, settings.store_dir, resume=resume, log=stderr.print)
    except (ValueError, RuntimeError) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail(f"interrupted; what finished is in the store: `pccd study paper-746 --name {name} --resume` goes on "
             "from there", code=130)
    if launchpad is not None:
        if added:
            stdout.print(f"added {added} fireworks to {launchpad}; run them with `rlaunch rapidfire`, then "
                         f"`pccd report study --name {name}`")
        else:
            stdout.print(f"added 0 fireworks to {launchpad}: the study's workflow added before is not finished "
                         "there (or nothing is left); run `rlaunch rapidfire` (`lpad rerun_fws -s FIZZLED` reruns "
                         "failed ones)")
        return
    stderr.print(f"{progress.executor}, {progress.wall_seconds:.0f} s in all: {progress.screened} screened, "
                 f"{progress.relaxed} relaxed ({progress.relax_failed} failed), {progress.judged} judged; "
                 f"`pccd report study --name {name}`")
    if progress.failed_jobs:
        fail(f"{len(progress.failed_jobs)} job(s) failed: {', '.join(progress.failed_jobs)}; rerun with --resume",
             code=1)
    if progress.unjudged:
        fail("no hull for " + "; ".join(f"{system}: {why}" for system, why in progress.unjudged.items()), code=1)


@study_app.command("case-studies")
def case_studies_command(
    name: Annotated[str, typer.Option("--name", callback=study_name, help="The study whose candidates are followed up.")] = "paper-746",
    out: Annotated[Path, typer.Option("--out", help="JSON summaries and figures go here.")
                   ] = Path("docs/study/current/case_studies"),
    formulas: Annotated[list[str] | None, typer.Option("--formula", help="Default: Ca2SnO4 Mg3CdO4 MgSc2O4.")
                        ] = None,
    extra_samples: Annotated[int, typer.Option(
        "--extra-samples", min=0, help="Crystals generated for each composition (element channel fixed to it), "
        "compared with the study's candidates of that formula; 0: the study's only.")] = 64,
    relax_with: Annotated[str, typer.Option(
        "--relax-with", help="chgnet (default: minutes) or gpaw (PBE at 800 eV: hours for a 14-atom P1 cell on 2 "
                             "cores; adds the DFT stability check against the decomposition products).")] = "chgnet",
    ecut: Annotated[float | None, typer.Option(
        "--ecut", min=100, help="GPAW cutoff (eV); default 800 for a GPAW relaxation, 500 for bands at a fixed "
                                "geometry.")] = None,
    kpoint_density: Annotated[float, typer.Option("--kpoint-density", min=0.5)] = 2.0,
) -> None:
    """The paper's Fig. 4: relaxation, GPAW PBE bands, CHGNet phonons of the best candidate of each composition."""
    from pccd_flows.cli.followup import checked_engines
    from pccd_flows.followup.gpaw import GpawSettings
    from pccd_flows.makers.followup import FollowUpFlowMaker
    from pccd_flows.settings import get_settings
    from pccd_flows.stores.candidates import CandidateStore
    from pccd_flows.study.case_studies import run_case_studies
    from pccd_flows.study.paper746 import CASE_STUDY_SYSTEMS, StudySpec, recorded_spec

    unknown = [f for f in formulas or [] if f not in CASE_STUDY_SYSTEMS]
    if unknown:
        fail(f"not a case study: {', '.join(unknown)} (choose from {', '.join(CASE_STUDY_SYSTEMS)})")
    if relax_with not in ("chgnet", "sevennet", "gpaw"):
        fail(f"--relax-with {relax_with!r}: choose chgnet, sevennet or gpaw")
    checked_engines("gpaw", "chgnet", runs_here=True)
    candidates = CandidateStore()
    # 800 eV only where GPAW changes the cell (Pulay stress); bands at a fixed geometry are converged at 500
    ecut = ecut or (800.0 if relax_with == "gpaw" else 500.0)
    maker = FollowUpFlowMaker(category=None, store=candidates.store, relax_with=relax_with,
                              gpaw_settings=GpawSettings(ecut=ecut, kpoint_density=kpoint_density))
    with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
        warnings.simplefilter("ignore")
        # the study's own relaxation and hull settings where it recorded them: its candidates are not relaxed again
        spec = recorded_spec(name, get_settings().store_dir) or StudySpec(name=name,
                                                                          reference=get_settings().reference)
        rows = run_case_studies(candidates, spec, out, maker, extra_samples, formulas, log=stderr.print)
    echo(json.dumps(rows, indent=2))
    missing_hulls = [row["error"] for row in rows if str(row.get("error", "")).startswith("no hull for")]
    if missing_hulls:
        fail("; ".join(missing_hulls), code=1)


@report_app.command("study")
def report_study_command(
    name: Annotated[str, typer.Option("--name", callback=study_name)] = "paper-746",
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    plots: Annotated[Path | None, typer.Option("--plots", help="Write the E_hull distribution PNG here.")] = None,
    stable_csv: Annotated[Path | None, typer.Option("--csv", help="Write the candidates <= 0.08 eV/atom here.")
                          ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Also write the JSON summary to this file.")] = None,
) -> None:
    """The E_hull distribution, fractions under 0.25/0.08/0 eV/atom, S.U.N. counts, and the paper's numbers."""
    from pccd_flows.settings import get_settings
    from pccd_flows.stores.candidates import CandidateStore
    from pccd_flows.study.paper746 import StudyProgress, StudySpec, progress_path, study_candidates
    from pccd_flows.study.report import study_report, write_figures, write_stable_csv

    for path, option in ((stable_csv, "--csv"), (out, "--out")):
        if path is not None:
            require_output_file(path, option)
    if plots is not None:
        require_output_dir(plots, "--plots")
    check_store_location()
    docs = study_candidates(CandidateStore(), name)
    if not docs:
        fail(f"no candidates of study {name!r} in the store (run `pccd study paper-746` first)")
    record = progress_path(StudySpec(name=name), get_settings().store_dir)
    wall = StudyProgress.model_validate_json(record.read_text()).wall_seconds if record.is_file() else None
    from pccd_flows.evaluation.novelty import known_structure_index
    from pccd_flows.study.report import refresh_relaxed_novelty

    index = known_structure_index()
    stderr.print("judging novelty and uniqueness of the relaxed structures (against MP and one another)")
    with progress_bar("relaxed novelty", sum(d.relaxation is not None for d in docs)) as advance:
        docs = refresh_relaxed_novelty(docs, index, CandidateStore(), advance)
    report = study_report(docs, name, wall, novelty_index=index)
    if plots is not None:
        write_figures(docs, report, plots)
    if stable_csv is not None:
        write_stable_csv(docs, stable_csv, sun_candidate_ids=report.sun_candidate_ids)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report.model_dump_json(indent=2))
    if as_json:
        print_json(report)
    else:  # the report is the result: stdout, plain lines
        for key, value in report.model_dump(exclude={"comparison", "sun_candidate_ids"}).items():
            echo(f"{key}: {value}")
        echo(json.dumps(report.comparison, indent=1))
