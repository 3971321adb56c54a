"""``pccd validate``: the judge's stability verdicts checked by DFT (GPAW PBE), and the report of that check."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pccd_flows.cli.common import (
    SEED_MAX,
    fail,
    print_json,
    progress_bar,
    read_structure,
    shard_of,
    stderr,
    stdout,
)

validate_app = typer.Typer(help="Check stability verdicts against DFT and compare judges.", no_args_is_help=True)


StudyOption = Annotated[str | None, typer.Option(
    "--study", help="Draw the sample from this study's candidates only (e.g. paper-746): candidates added to the "
                    "store later (a case study's) then leave it unchanged.")]


@validate_app.command("dft")
def validate_dft_command(
    n: Annotated[int, typer.Option("--n", min=1, help="Sample size: half judged stable at 0.1 eV/atom, half with "
                                                      "0.1 < E_hull <= 0.3 (plain-PBE chemistries only).")] = 60,
    seed: Annotated[int, typer.Option("--seed", min=0, max=SEED_MAX, help="Seed of the stratified sample.")] = 0,
    protocol: Annotated[str, typer.Option(
        "--protocol", help="single-point (at the force-field geometry), relax-positions, or relax-cell.")
    ] = "single-point",
    ecut: Annotated[float | None, typer.Option("--ecut", min=100.0, help="Plane-wave cutoff (eV).")] = None,
    kpoint_density: Annotated[float | None, typer.Option("--kpoint-density", min=0.5,
                                                         help="k-points per reciprocal A.")] = None,
    candidate_ids: Annotated[list[str] | None, typer.Option(
        "--candidate-id", help="Check these candidates instead of a sample (repeatable).")] = None,
    judge: Annotated[str | None, typer.Option("--judge", help="Sample only candidates judged by this engine.")] = None,
    study: StudyOption = None,
    shard: Annotated[str, typer.Option("--shard", help="I/N: this process takes every N-th candidate from the "
                                                       "I-th (two processes on two cores: 0/2 and 1/2).")] = "0/1",
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Recompute candidates whose check failed.")
                            ] = False,
    launchpad: Annotated[Path | None, typer.Option("--launchpad", help="Add one FireWork per candidate to this "
                                                                       "LaunchPad instead of running here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON on stdout.")] = False,
) -> None:
    """GPAW PBE energy above hull of judged candidates from the store (resumable: results are stored per candidate)."""
    from pccd_flows.validation.dft import (
        PROTOCOLS,
        DftValidationError,
        DftValidationSettings,
        select_candidates,
        validate_candidates,
    )

    if protocol not in PROTOCOLS:
        fail(f"unknown protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)}")
    shard_range = shard_of(shard)
    overrides = {k: v for k, v in {"ecut": ecut, "kpoint_density": kpoint_density}.items() if v is not None}
    settings = DftValidationSettings(protocol=protocol, **overrides)
    try:
        from pccd_flows.followup.gpaw import require_gpaw

        require_gpaw()
        ids = select_candidates(n, seed, judge, candidate_ids=candidate_ids, shard=shard_range, study=study)
    except (DftValidationError, RuntimeError) as exc:
        fail(str(exc))
    if launchpad is not None:
        from pccd_flows.cli.common import add_to_launchpad
        from pccd_flows.makers.validation import DftValidationMaker
        from pccd_flows.stores.config import fireworks_workflow

        workflow = fireworks_workflow(DftValidationMaker(settings=settings, retry_failed=retry_failed).make(ids))
        add_to_launchpad(workflow, launchpad)
        stdout.print(f"added {len(workflow.fws)} fireworks to {launchpad}; run them with `rlaunch rapidfire`")
        return

    def report(doc) -> None:
        check = doc.dft_check
        verdict = f"error: {check.error}" if check.error else (
            f"DFT {check.e_above_hull:+.3f} vs {check.judge_engine} {check.judge_e_above_hull:+.3f} eV/atom "
            f"({check.seconds:.0f} s)")
        stderr.print(f"{doc.candidate_id} {doc.formula}: {verdict}", highlight=False, soft_wrap=True)

    stderr.print(f"{len(ids)} candidates, protocol {protocol} (settings {settings.fingerprint()})")
    with progress_bar("DFT check", len(ids)) as advance:
        docs = validate_candidates(ids, settings, retry_failed=retry_failed, progress=advance, on_result=report)
    rows = [{"candidate_id": d.candidate_id, "formula": d.formula, "chemsys": d.chemsys, "nsites": d.nsites,
             "judge_engine": d.dft_check.judge_engine, "judge_e_above_hull": d.dft_check.judge_e_above_hull,
             "dft_e_above_hull": d.dft_check.e_above_hull, "error": d.dft_check.error} for d in docs]
    failed = [r for r in rows if r["error"]]
    if as_json:
        print_json({"protocol": protocol, "settings": settings.model_dump(mode="json"), "results": rows})
    else:
        for r in rows:
            value = "failed" if r["error"] else f"{r['dft_e_above_hull']:+.3f}"
            stdout.print(f"{r['candidate_id']}\t{r['formula']}\t{r['judge_e_above_hull']:+.3f}\t{value}",
                         highlight=False, soft_wrap=True)
    if failed:
        stderr.print(f"{len(failed)} of {len(rows)} checks failed (recorded on the candidates; --retry-failed "
                     f"recomputes them)")
        raise typer.Exit(1)


@validate_app.command("judges")
def validate_judges_command(
    engines: Annotated[list[str], typer.Option("--engine", help="Force field to judge with (repeatable): "
                                                                "sevennet (7net-0), sevennet-l3i5, chgnet.")],
    checked_only: Annotated[bool, typer.Option("--checked-only/--sample",
                                               help="Judge the candidates with a DFT check (default), or the "
                                                    "whole stratified sample.")] = True,
    n: Annotated[int, typer.Option("--n", min=1, help="Sample size, as for `pccd validate dft`.")] = 60,
    seed: Annotated[int, typer.Option("--seed", min=0, max=SEED_MAX)] = 0,
    study: StudyOption = None,
    relax_steps: Annotated[int, typer.Option("--relax-steps", min=1, help="As the study's relaxation.")] = 300,
    relax_fmax: Annotated[float, typer.Option("--relax-fmax", min=0.001, help="As the study's relaxation.")] = 0.1,
) -> None:
    """Relax and judge the sampled candidates with other force fields (stored beside the first verdict)."""
    from pccd_flows.stability.engines import FORCE_FIELDS, RelaxSettings
    from pccd_flows.stores.candidates import CandidateStore
    from pccd_flows.validation.dft import DftValidationError, select_candidates
    from pccd_flows.validation.judges import judge_label, rejudge

    unknown = [e for e in engines if e not in FORCE_FIELDS]
    if unknown:
        fail(f"unknown force field {unknown[0]!r}: choose from {', '.join(FORCE_FIELDS)}")
    if checked_only:
        ids = sorted(CandidateStore().ids({"dft_check": {"$ne": None}}))
        if not ids:
            fail("no candidate has a DFT check yet: run `pccd validate dft` first, or pass --sample")
    else:
        try:
            ids = select_candidates(n, seed, study=study)
        except DftValidationError as exc:
            fail(str(exc))
    relax = RelaxSettings(steps=relax_steps, fmax=relax_fmax)
    for engine in engines:
        with progress_bar(f"judging with {judge_label(engine)}", len(ids)) as advance:
            docs = rejudge(ids, engine, relax, progress=advance)
        judged = sum(engine in d.judgements for d in docs)
        stdout.print(f"{engine}: {judged} of {len(ids)} candidates judged", highlight=False)


@validate_app.command("export-relaxations")
def export_relaxations_command(
    out: Annotated[Path, typer.Argument(help="Bundle to write (.json.gz), for scripts/portable_relax.py.")],
    engines: Annotated[list[str], typer.Option("--engine", help="Force field (repeatable): sevennet, "
                                                                "sevennet-l3i5, chgnet.")],
    candidates: Annotated[str, typer.Option("--candidates", help="checked (with a DFT check), sample (the DFT "
                                                                 "validation's sample) or all (sample first).")
                          ] = "sample",
    n: Annotated[int, typer.Option("--n", min=1, help="Sample size, as for `pccd validate dft`.")] = 60,
    seed: Annotated[int, typer.Option("--seed", min=0, max=SEED_MAX)] = 0,
    study: StudyOption = None,
    structures: Annotated[list[Path] | None, typer.Option("--structure", help="Also judge this structure file "
                                                                              "(e.g. a known phase; repeatable).")
                          ] = None,
    relax_steps: Annotated[int, typer.Option("--relax-steps", min=1, help="As the study's relaxation.")] = 300,
    relax_fmax: Annotated[float, typer.Option("--relax-fmax", min=0.001, help="As the study's relaxation.")] = 0.1,
) -> None:
    """Write the relaxations of judging candidates with other force fields, to run on a GPU node with only ASE and
    the potential installed (`python scripts/portable_relax.py BUNDLE RESULTS.jsonl --device cuda`)."""
    from pccd_flows.stability.engines import FORCE_FIELDS, RelaxSettings
    from pccd_flows.validation.dft import DftValidationError
    from pccd_flows.validation.portable import CANDIDATE_SETS, bundle_candidate_ids, export_bundle

    unknown = [e for e in engines if e not in FORCE_FIELDS]
    if unknown:
        fail(f"unknown force field {unknown[0]!r}: choose from {', '.join(FORCE_FIELDS)}")
    if candidates not in CANDIDATE_SETS:
        fail(f"--candidates {candidates!r}: choose one of {', '.join(CANDIDATE_SETS)}")
    extra = [(f"structure:{path.name}", read_structure(path)) for path in structures or []]
    try:
        ids, first = bundle_candidate_ids(candidates, n, seed, study=study)
    except DftValidationError as exc:
        fail(str(exc))
    counts = export_bundle(ids, engines, RelaxSettings(steps=relax_steps, fmax=relax_fmax), out, extra=extra,
                           first=first | {name for name, _ in extra})
    stdout.print(f"{out}: {counts['candidates']} structures, {counts['references']} reference structures of "
                 f"{counts['systems']} chemical systems, {len(engines)} force field(s)", highlight=False)


@validate_app.command("import-relaxations")
def import_relaxations_command(
    results: Annotated[list[Path], typer.Argument(help="Result files of scripts/portable_relax.py (JSON lines).")],
    source: Annotated[str, typer.Option("--source", help="Where they were computed (kept with the cached "
                                                         "reference energies).")] = "scripts/portable_relax.py",
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
) -> None:
    """Cache the reference energies of portable relaxations and judge the candidates they relaxed."""
    from pccd_flows.validation.portable import import_results

    missing = [p for p in results if not p.is_file()]
    if missing:
        fail(f"no such file: {missing[0]}")
    try:
        summary = import_results(results, source)
    except (ValueError, KeyError) as exc:
        fail(f"{results[0]}: not a portable_relax.py result file ({exc})")
    if as_json:
        print_json(summary)
        return
    for engine, counts in summary.items():
        stdout.print(f"{engine}: {counts['judged']} candidates judged, {counts['failed']} failed", highlight=False)
        for name, verdict in counts["others"].items():
            text = verdict if isinstance(verdict, str) else f"E_hull {verdict['e_above_hull']:+.3f} eV/atom"
            stdout.print(f"  {name}: {text}", highlight=False)


@validate_app.command("report")
def validate_report_command(
    out: Annotated[Path | None, typer.Option("--out", help="Write the report JSON here "
                                                           "(e.g. docs/stability/dft_validation.json).")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write the parity plot PNG here.")] = None,
    default_judge: Annotated[str | None, typer.Option(
        "--default-judge", help="The judge the project uses by default (default: the configured engine and "
                                "confirming force fields, e.g. chgnet+sevennet).")] = None,
    study: Annotated[str | None, typer.Option("--study", help="Estimate the DFT fractions of this study's "
                                                              "candidates (default: all in the store).")] = None,
    n: Annotated[int, typer.Option("--n", min=1, help="The sample's size, as for `pccd validate dft`: checks of "
                                                      "other candidates (a case study's) are not in the metrics.")
                 ] = 60,
    seed: Annotated[int, typer.Option("--seed", min=0, max=SEED_MAX, help="The sample's seed.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON on stdout.")] = False,
) -> None:
    """Parity, MAE, precision and recall of each judge against the stored DFT checks, and DFT-estimated study rates."""
    from pccd_flows.evaluation.novelty import known_structure_index
    from pccd_flows.settings import get_settings
    from pccd_flows.stores.candidates import CandidateStore
    from pccd_flows.study.report import refresh_relaxed_novelty
    from pccd_flows.validation.report import build_report, eligible_population, parity_plot

    if default_judge is None:
        settings = get_settings()
        default_judge = "+".join([settings.engine, *(e for e in settings.confirm_engines if e != settings.engine)])
    store = CandidateStore()
    everything = list(store.find({"study": study} if study else {}))
    from pccd_flows.validation.dft import DftValidationError, select_candidates

    checked = [d for d in everything if d.dft_check is not None]
    if not checked:
        fail("no candidate has a DFT check: run `pccd validate dft` first")
    try:  # the weights are the sample's: a check outside it (a case study's pick) would bias them
        sample = set(select_candidates(n, seed, study=study))
    except DftValidationError as exc:
        fail(str(exc))
    outside = [d for d in checked if d.candidate_id not in sample]
    checked = [d for d in checked if d.candidate_id in sample]
    if outside:
        stderr.print(f"{len(outside)} checked candidate(s) outside the sample (--n {n} --seed {seed}) are left out "
                     f"of the metrics: {', '.join(d.candidate_id for d in outside)}", highlight=False)
    if not checked:
        fail("no candidate of the sample has a DFT check: run `pccd validate dft` with the same --n and --seed")
    judged = [d for d in everything if d.e_above_hull is not None]
    stderr.print("judging novelty and uniqueness of the relaxed structures (for the S.U.N. estimate)")
    with progress_bar("relaxed novelty", len(judged)) as advance:
        judged = refresh_relaxed_novelty(judged, known_structure_index(), store, advance)
    by_id = {d.candidate_id: d for d in judged}
    checked = [by_id.get(d.candidate_id, d) for d in checked]
    report = build_report(checked, eligible_population(judged, checked[0].dft_check.judge_engine), judged,
                          default_judge=default_judge,
                          sun=lambda d: bool(d.relaxed_novelty and d.relaxed_novelty.novel
                                             and d.relaxed_novelty.unique))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report.model_dump_json(indent=2))
    if plot is not None:
        parity_plot(report, plot)
    if as_json:
        print_json(report)
        return
    stdout.print(f"{report.n} candidates with a DFT E_hull ({report.n_failed} failed), protocol {report.protocol}",
                 highlight=False)
    for name, m in report.judges.items():
        def f(v):
            return "n/a" if v is None else f"{v:.2f}"
        stdout.print(f"{name:28s} n={m.n:3d} MAE {m.mae:.3f}  precision@0.1 {f(m.precision_at_100meV)}  "
                     f"recall@0.1 {f(m.recall_at_100meV)}  precision@0.08 {f(m.precision_at_80meV)}  "
                     f"recall@0.08 {f(m.recall_at_80meV)}", highlight=False)
    for name, interval in report.dft_estimated.items():
        stdout.print(f"{name}: {interval.value:.3f} (95% {interval.ci95[0]:.3f}-{interval.ci95[1]:.3f})",
                     highlight=False)
