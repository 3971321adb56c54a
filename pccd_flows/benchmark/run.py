"""`pccd benchmark`: PCCD against a PyXtal random structure search and ion substitution, on one judge and hull.

Per chemical system: PCCD's N crystals; the random search and the substitution at PCCD's cell compositions (one
crystal per PCCD crystal that decoded); every crystal relaxed and placed on the hull by
:func:`pccd_flows.stability.assess.energy_above_hull` with the same engine, reference and relaxation settings. With
an output folder every row is appended to ``candidates.jsonl`` as it is made and judged, and a rerun with the same
settings reuses them (resumable).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from jobflow import Maker, job

from pccd_flows.benchmark.generators import (
    PrototypeLibrary,
    pccd_candidates,
    random_search_candidates,
    substitution_candidates,
)
from pccd_flows.benchmark.metrics import generator_metrics, mark_sun, rmsd_to_relaxed
from pccd_flows.benchmark.schemas import GENERATORS, OPTIONAL_GENERATORS, BenchmarkCandidate, BenchmarkReport
from pccd_flows.data.io import DataFormatError
from pccd_flows.settings import BENCHMARK_N, BENCHMARK_RELAX_FMAX, BENCHMARK_RELAX_STEPS
from pccd_flows.study.report import SUN_THRESHOLD

CANDIDATES_FILE = "candidates.jsonl"
REPORT_FILE = "benchmark.json"


class BenchmarkError(ValueError):
    """Input the benchmark cannot run on (an unknown generator, a chemical system the model cannot take...)."""


def normalise_chemsys(chemsys: str) -> str:
    """A chemical system in one spelling.

    Parameters
    ----------
    chemsys : str
        ``"Ca-Sn-O"``, ``"O-Ca-Sn"`` or ``"Ca,Sn,O"``.

    Returns
    -------
    str
        The elements sorted by symbol, joined by ``-`` (``"Ca-O-Sn"``).

    Raises
    ------
    BenchmarkError
        Unknown elements, repeated ones, or more than 3.
    """
    from pymatgen.core import Element

    parts = [p.strip() for p in chemsys.replace(",", "-").split("-") if p.strip()]
    bad = [p for p in parts if not Element.is_valid_symbol(p)]
    if bad or not parts:
        raise BenchmarkError(f"--chemsys {chemsys!r}: {'unknown element ' + bad[0] if bad else 'no elements'}")
    if len(set(parts)) != len(parts) or len(parts) > 3:
        raise BenchmarkError(f"--chemsys {chemsys!r}: give 1 to 3 different elements (PCCD's crystals have <= 3)")
    return "-".join(sorted(parts))


@dataclass
class BenchmarkSettings:
    """What decides a benchmark's numbers (rows made under other settings are not reused)."""

    n: int = BENCHMARK_N
    seed: int = 0
    engine: str = "chgnet"
    confirm_with: str = "none"  # the CLI passes the configured judge (PCCD_CONFIRM_WITH)
    reference: str = "mp-structures"
    relax_steps: int = BENCHMARK_RELAX_STEPS
    relax_fmax: float = BENCHMARK_RELAX_FMAX
    generators: tuple[str, ...] = GENERATORS
    checkpoint: str | None = None
    prototypes: str | None = None
    novelty_data: str | None = None

    def key(self, checkpoint_sha256: str | None) -> str:
        """Fingerprint of what a row depends on (not the generator list or novelty source, applied later)."""
        parts = [self.n, self.seed, self.engine, self.reference, self.relax_steps, self.relax_fmax,
                 checkpoint_sha256, str(self.prototypes)]
        if self.confirm_with != "none":  # rows judged by one force field keep the keys they were stored under
            parts.append(self.confirm_with)
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:12]


def read_rows(path: Path, run_key: str) -> dict[str, BenchmarkCandidate]:
    """Rows of an earlier run with the same settings.

    Parameters
    ----------
    path : Path
        ``candidates.jsonl`` (missing: no rows).
    run_key : str
        :meth:`BenchmarkSettings.key` of this run; rows of other settings and unreadable lines are skipped.

    Returns
    -------
    dict
        Candidate key -> row, the last row of each candidate winning.
    """
    rows: dict[str, BenchmarkCandidate] = {}
    if not path.is_file():
        return rows
    for line in path.read_text().splitlines():
        try:
            row = BenchmarkCandidate.model_validate_json(line)
        except ValueError:
            continue  # a line cut short by a killed run
        if row.run_key == run_key:
            rows[row.key] = row
    return rows


def judge(candidates: list[BenchmarkCandidate], engine: str, reference: str, steps: int, fmax: float,
          confirm_with: str = "none") -> tuple[list[BenchmarkCandidate], dict[str, str]]:
    """Relax and place on the hull every generated candidate, in one :func:`energy_above_hull` call.

    Parameters
    ----------
    candidates : list of BenchmarkCandidate
        Rows to judge; those without a structure are returned as they are.
    engine, reference : str
        The judge's engine and hull reference.
    steps, fmax : int, float
        Relaxation settings.
    confirm_with : str
        Force fields that must agree with ``engine`` (see :func:`energy_above_hull`).

    Returns
    -------
    (list of BenchmarkCandidate, dict)
        The rows with E_hull, relaxed structure, RMSD to relaxed, CPU seconds and the hull's fingerprint (or the
        error), and the hull references' fingerprints by chemical system.
    """
    from pccd_flows.stability.assess import energy_above_hull, hull_calculators
    from pccd_flows.stability.engines import RelaxSettings

    todo = [c for c in candidates if c.structure is not None]
    if not todo:
        return candidates, {}
    systems = sorted({"-".join(sorted(set(c.cell_composition))) for c in todo})
    # references first: their cost is not the generators'; a failure here meets energy_above_hull again below
    with contextlib.suppress(Exception):
        hull_calculators(systems, reference, engine)
    ticks = [time.process_time()]
    try:
        report = energy_above_hull([(c.key, c.generated_structure()) for c in todo], engine=engine,
                                   reference=reference, relax=RelaxSettings(steps=steps, fmax=fmax),
                                   progress=lambda _: ticks.append(time.process_time()), confirm_with=confirm_with)
    except Exception as exc:  # noqa: BLE001 - no references, no engine: every candidate carries the reason
        from pccd_flows.stability.engines import error_line

        message = f"judge: {error_line(exc)}"
        return [c.model_copy(update={"judged": True, "relax_error": message}) if c.structure is not None else c
                for c in candidates], {}
    by_key = {}
    for position, (candidate, result) in enumerate(zip(todo, report.results, strict=True)):
        spent = ticks[position + 1] - ticks[position] if position + 1 < len(ticks) else 0.0
        chemsys = "-".join(sorted(set(candidate.cell_composition)))
        update = {"judged": True, "relax_cpu_seconds": round(spent, 2),
                  "reference_fingerprint": report.reference_fingerprints.get(chemsys)}
        if result.error or result.e_above_hull is None:
            update["relax_error"] = f"relaxation: {result.error}"
        else:
            update.update(e_above_hull=result.e_above_hull, energy_per_atom=result.energy_per_atom,
                          relaxed_structure=result.relaxed_structure)
            relaxed = BenchmarkCandidate(generator="", chemsys="", index=0,
                                         relaxed_structure=result.relaxed_structure).final_structure()
            update["rmsd_to_relaxed"] = round(rmsd_to_relaxed(candidate.generated_structure(), relaxed), 4)
        by_key[candidate.key] = candidate.model_copy(update=update)
    return [by_key.get(c.key, c) for c in candidates], report.reference_fingerprints


def reference_fingerprints(candidates: Sequence[BenchmarkCandidate], reference: str, engine: str,
                           known: dict[str, str] | None = None) -> dict[str, str]:
    """The hull references of every judged system.

    Parameters
    ----------
    candidates : sequence of BenchmarkCandidate
        Judged rows (each stores the fingerprint it was judged against).
    reference, engine : str
        The judge, for systems whose rows do not say (cached reference energies make this cheap).
    known : dict, optional
        Fingerprints already at hand (this run's judging).

    Returns
    -------
    dict
        Chemical system -> fingerprint, ``"<current> (rows: <stored>)"`` where rows were judged against another set.
    """
    from pccd_flows.stability.assess import hull_calculators

    stored: dict[str, set[str]] = {}
    for candidate in candidates:
        if candidate.e_above_hull is not None and candidate.cell_composition:
            chemsys = "-".join(sorted(set(candidate.cell_composition)))
            stored.setdefault(chemsys, set())
            if candidate.reference_fingerprint:
                stored[chemsys].add(candidate.reference_fingerprint)
    found = dict(known or {})
    missing = [c for c, prints in stored.items() if c not in found and len(prints) != 1]
    if missing:
        with contextlib.suppress(Exception):
            found.update({c: calc.references.fingerprint
                          for c, calc in hull_calculators(missing, reference, engine).items()})
    for chemsys, prints in stored.items():
        if chemsys not in found and len(prints) == 1:
            found[chemsys] = next(iter(prints))
        elif chemsys in found and prints - {found[chemsys]}:
            found[chemsys] = f"{found[chemsys]} (rows: {', '.join(sorted(prints))})"
    return dict(sorted(found.items()))


def run_benchmark(systems: Sequence[str], settings: BenchmarkSettings | None = None, out_dir: Path | None = None,
                  log: Callable[[str], None] | None = None) -> tuple[BenchmarkReport, list[BenchmarkCandidate]]:
    """Generate with each generator, judge all alike, and measure.

    Parameters
    ----------
    systems : sequence of str
        Chemical systems, e.g. ``["Ca-Sn-O", "Sr-Zr-O"]``.
    settings : BenchmarkSettings, optional
        N, seed, judge and generators; default: the project's defaults.
    out_dir : Path, optional
        Where ``candidates.jsonl`` grows row by row (a rerun with the same settings resumes from it) and
        ``benchmark.json`` is written at the end.
    log : callable, optional
        Receives one line per step (for a progress display).

    Returns
    -------
    (BenchmarkReport, list of BenchmarkCandidate)
    """
    from pccd_flows.evaluation.novelty import default_novelty_source, known_structure_index
    from pccd_flows.makers.relax import relaxation_settings
    from pccd_flows.model.checkpoint import load_model
    from pccd_flows.settings import get_settings
    from pccd_flows.stability.engines import FORCE_FIELD_MODELS

    settings = settings or BenchmarkSettings()
    log = log or (lambda line: None)
    unknown = [g for g in settings.generators if g not in GENERATORS + OPTIONAL_GENERATORS]
    if unknown:
        raise BenchmarkError(f"unknown generator {unknown[0]!r}: choose from "
                             f"{', '.join(GENERATORS + OPTIONAL_GENERATORS)}")
    if "pccd" not in settings.generators:
        raise BenchmarkError("random_search and substitution take PCCD's cell compositions: keep the pccd generator")
    systems = list(dict.fromkeys(normalise_chemsys(s) for s in systems))
    started = time.monotonic()
    # read before any relaxation: an unreadable novelty file must not fail the run after an hour's work
    try:
        novelty_index = known_structure_index(Path(settings.novelty_data) if settings.novelty_data
                                              else default_novelty_source())
    except (OSError, DataFormatError) as exc:
        raise BenchmarkError(f"novelty data: {exc}") from exc
    checkpoint = Path(settings.checkpoint) if settings.checkpoint else get_settings().checkpoint
    loaded = load_model(checkpoint)
    run_key = settings.key(loaded[2].get("sha256"))
    rows_path = out_dir / CANDIDATES_FILE if out_dir is not None else None
    rows = read_rows(rows_path, run_key) if rows_path is not None else {}
    library = None

    def keep(new_rows: list[BenchmarkCandidate]) -> None:
        for row in new_rows:
            row.run_key = run_key
            rows[row.key] = row
        if rows_path is not None and new_rows:
            rows_path.parent.mkdir(parents=True, exist_ok=True)
            with rows_path.open("a") as handle:
                handle.writelines(row.model_dump_json() + "\n" for row in new_rows)

    fingerprints: dict[str, str] = {}
    for system in systems:
        pccd = [rows.get(f"pccd:{system}:{i}") for i in range(settings.n)]
        if any(row is None for row in pccd):
            log(f"{system}: sampling {settings.n} PCCD crystals")
            try:
                made = pccd_candidates(system, settings.n, settings.seed, loaded=loaded)
            except ValueError as exc:  # pydantic: elements the model does not know
                raise BenchmarkError(f"--chemsys {system}: {str(exc).splitlines()[-1].strip()}") from exc
            keep(made)
            pccd = made
        compositions = [(row.index, row.cell_composition) for row in pccd if row.cell_composition]
        if "random_search" in settings.generators:
            missing = [(i, c) for i, c in compositions if f"random_search:{system}:{i}" not in rows]
            if missing:
                log(f"{system}: {len(missing)} PyXtal random crystals")
                keep(random_search_candidates(system, missing, settings.seed))
        if "substitution" in settings.generators and any(f"substitution:{system}:{i}" not in rows
                                                         for i, _ in compositions):
            log(f"{system}: ion substitution for {len(compositions)} compositions")
            library = library or PrototypeLibrary(settings.prototypes)
            keep(substitution_candidates(system, compositions, library))
        if "pccd_charge_balanced" in settings.generators and any(
                f"pccd_charge_balanced:{system}:{i}" not in rows for i in range(settings.n)):
            log(f"{system}: sampling PCCD crystals until {settings.n} are charge-balanced")
            keep(pccd_candidates(system, settings.n, settings.seed, loaded=loaded, charge_balanced=True))
        for generator in settings.generators:
            batch = [row for key, row in rows.items() if key.startswith(f"{generator}:{system}:")]
            todo = [row for row in batch if row.structure is not None and not row.judged]
            if todo:
                log(f"{system}: relaxing {len(todo)} {generator} crystals ({settings.engine}, "
                    f"{settings.relax_steps} steps)")
                judged, found = judge(todo, settings.engine, settings.reference, settings.relax_steps,
                                      settings.relax_fmax, settings.confirm_with)
                fingerprints.update(found)
                keep(judged)

    log("novelty and uniqueness")
    marked: list[BenchmarkCandidate] = []
    generators, per_system = {}, {}
    for generator in settings.generators:
        mine = sorted((row for row in rows.values() if row.generator == generator and row.chemsys in systems),
                      key=lambda r: (systems.index(r.chemsys), r.index))
        mine = mark_sun(mine, novelty_index)
        marked += mine
        generators[generator] = generator_metrics(mine)
        for system in systems:
            per_system.setdefault(system, {})[generator] = generator_metrics([r for r in mine if r.chemsys == system])
    relax = relaxation_settings(settings.engine, settings.relax_steps, settings.relax_fmax)
    fingerprints = reference_fingerprints(marked, settings.reference, settings.engine, fingerprints)
    report = BenchmarkReport(
        systems=systems,
        judge={"engine": settings.engine, "model": FORCE_FIELD_MODELS.get(settings.engine, settings.engine),
               "confirm_with": settings.confirm_with,
               "reference": settings.reference, "relaxation": relax, "stable_threshold_eV_per_atom": SUN_THRESHOLD,
               "reference_fingerprints": fingerprints, "novelty_source": novelty_index.source.name,
               "novelty_records": len(novelty_index),
               "note": "the judge's numbers, not DFT's"},
        generators=generators, per_system=per_system,
        settings={"n": settings.n, "seed": settings.seed, "checkpoint_sha256": loaded[2].get("sha256"),
                  "checkpoint": checkpoint.name,
                  "prototypes": Path(settings.prototypes or get_settings().data_file).name,
                  "run_key": run_key},
        wall_seconds=round(time.monotonic() - started, 1))
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / REPORT_FILE).write_text(report.model_dump_json(indent=2))
    return report, marked


def plot_benchmark(report: BenchmarkReport, candidates: Sequence[BenchmarkCandidate], path: Path) -> Path:
    """Rates per generator (bars) and the E_hull of every judged crystal (points), one PNG.

    Parameters
    ----------
    report : BenchmarkReport
        The metrics.
    candidates : sequence of BenchmarkCandidate
        The rows behind them.
    path : Path
        PNG to write (its folder is made).

    Returns
    -------
    Path
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(report.generators)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    width = 0.25
    for offset, (label, attribute) in enumerate((("stable (<= 0.1)", "stable_rate"),
                                                 ("on hull", "on_hull_rate"), ("S.U.N.", "sun_rate"))):
        values = [getattr(report.generators[g], attribute) or 0.0 for g in names]
        left.bar(np.arange(len(names)) + (offset - 1) * width, values, width, label=label)
    left.set_xticks(np.arange(len(names)), [f"{g}\n(n={report.generators[g].n})" for g in names])
    left.set_ylabel("fraction of n")
    left.set_ylim(0, 1)
    left.legend()
    left.set_title(f"{', '.join(report.systems)}")
    rng = np.random.default_rng(0)
    for position, generator in enumerate(names):
        values = np.array([c.e_above_hull for c in candidates if c.generator == generator
                           and c.e_above_hull is not None])
        if len(values):
            right.scatter(position + rng.uniform(-0.15, 0.15, len(values)), np.clip(values, -0.1, 1.5), s=14,
                          alpha=0.7)
    right.axhline(SUN_THRESHOLD, color="tab:red", linestyle="--", label=f"{SUN_THRESHOLD} eV/atom")
    right.axhline(0, color="black", linewidth=0.8)
    right.set_xticks(range(len(names)), names)
    right.set_ylabel("E above hull (eV/atom, clipped to 1.5)")
    right.set_title(f"judge: {report.judge['model']}, {report.judge['reference']} hull")
    right.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return path


@dataclass
class BenchmarkMaker(Maker):
    """A jobflow job running :func:`run_benchmark` on a list of chemical systems (report and rows as output)."""

    name: str = "pccd benchmark"
    settings: BenchmarkSettings = field(default_factory=BenchmarkSettings)

    @job
    def make(self, systems: list[str]):
        report, candidates = run_benchmark(systems, self.settings)
        return {"report": report.model_dump(mode="json"),
                "candidates": [c.model_dump(mode="json") for c in candidates]}
