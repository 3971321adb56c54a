"""`pccd benchmark`: PCCD against a PyXtal random structure search and ion substitution, on one judge and hull.

What PCCD is asked for: N crystals per given chemical system (``--chemsys``), or one crystal per crystal of N drawn
from the held-out (validation) split of the training data (``--held-out N``, MatterGen's "samples of the data
distribution"), conditioned on its elements (or exact composition). The random search and the substitution work at
PCCD's cell compositions (one crystal per PCCD crystal that decoded, per system); every crystal is relaxed and placed
on the hull by :func:`pccd_flows.stability.assess.energy_above_hull` with the same engine, reference and relaxation
settings, ``JUDGE_CHUNK`` rows at a time across systems. With an output folder every row is appended to
``candidates.jsonl`` as it is made and judged, and a rerun with the same settings reuses them (resumable).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock
from jobflow import Maker, job

from pccd_flows.benchmark.generators import (
    PRERELAX_STEPS,
    RANK_OVERSAMPLE,
    PrototypeLibrary,
    held_out_pccd_candidates,
    held_out_positions,
    pccd_candidates,
    pccd_ranked_candidates,
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
# rows per judge() call: each chunk is appended to candidates.jsonl as soon as it is judged, so an interrupted run
# loses at most this many relaxations, while one call per chunk (not per system: --held-out runs span hundreds of
# systems of a few crystals each) keeps the engine set-up and the hull references' look-up to one per chunk
JUDGE_CHUNK = 32


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
    """What decides a benchmark's numbers (rows made under other settings are not reused).

    ``n`` is PCCD's crystals per chemical system of a ``--chemsys`` run; ``held_out`` (instead of chemical systems)
    draws that many crystals of the data set's held-out split and asks PCCD for one per drawn crystal, conditioned
    on its elements, or on its exact composition with ``target_composition``. ``charge_balanced`` chooses PCCD's
    compositions by charge balance (the yield lever of issue 25 that ``pccd study``'s prefilter applies by default):
    the ``pccd`` generator keeps the first ``n`` of ``4 n`` samples whose composition has charge-balanced ICSD
    oxidation states, and the baselines take those compositions, so that all three are compared where PCCD chose.
    """

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
    held_out: int | None = None
    target_composition: bool = False
    charge_balanced: bool = False

    def key(self, checkpoint_sha256: str | None, held_out_ids: Sequence[str] = ()) -> str:
        """Fingerprint of what a row depends on (not the generator list or novelty source, applied later).

        Parameters
        ----------
        checkpoint_sha256 : str or None
            The PCCD checkpoint's.
        held_out_ids : sequence of str
            With ``held_out``: the material ids drawn, so that rows drawn from another data file are not reused.

        Returns
        -------
        str
            12 hex digits.
        """
        # n says nothing about a held-out run (one crystal per drawn one): left out, so that BENCHMARK_N may change
        parts = [self.n if self.held_out is None else None, self.seed, self.engine, self.reference, self.relax_steps,
                 self.relax_fmax, checkpoint_sha256, str(self.prototypes)]
        if self.confirm_with != "none":  # rows judged by one force field keep the keys they were stored under
            parts.append(self.confirm_with)
        # the held-out options enter only when set, so the rows of --chemsys runs keep their keys
        if self.held_out is not None:
            parts += ["held_out", self.held_out, hashlib.sha256(json.dumps(list(held_out_ids)).encode()).hexdigest()]
        if self.target_composition:
            parts.append("target_composition")
        if self.charge_balanced:
            parts.append("charge_balanced")
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
        Candidate key -> row, the last row of each candidate winning, except that an unjudged row never replaces a
        judged one.
    """
    rows: dict[str, BenchmarkCandidate] = {}
    if not path.is_file():
        return rows
    for line in path.read_text().splitlines():
        try:
            row = BenchmarkCandidate.model_validate_json(line)
        except ValueError:
            continue  # a line cut short by a killed run
        earlier = rows.get(row.key)
        # a judged row stands: a process of another --shard that sampled the same crystal again appends it unjudged
        if row.run_key == run_key and not (earlier is not None and earlier.judged and not row.judged):
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


def draw_held_out(data_path: Path, n: int, seed: int, target_composition: bool = False):
    """N crystals of the data set's held-out split, as :func:`pccd_flows.evaluation.generation.draw_compositions`
    draws them, with its failures as :class:`BenchmarkError`.

    Parameters
    ----------
    data_path : Path
        The training data set (``get_settings().data_file``).
    n, seed : int
        How many (drawn with replacement where the split has fewer), and the draw's seed.
    target_composition : bool
        Condition on each crystal's exact composition, not only its elements.

    Returns
    -------
    HeldOutCompositions
        The conditions and material ids of the drawn crystals, in order.

    Raises
    ------
    BenchmarkError
        An unreadable data set, one without held-out crystals, or a held-out crystal PCCD cannot be asked for.
    """
    from pydantic import ValidationError

    from pccd_flows.evaluation.generation import HeldOutError, draw_compositions

    try:
        drawn, _ = draw_compositions(data_path, n, seed, target_composition)
    except (OSError, DataFormatError) as exc:
        raise BenchmarkError(f"--held-out: {exc}") from exc
    except ValidationError as exc:  # a record of the split outside what the model takes (more than 3 elements...)
        raise BenchmarkError(f"--held-out: a held-out crystal of {Path(data_path).name} cannot be asked for: "
                             f"{exc.errors()[0]['msg']}") from exc
    except HeldOutError as exc:
        raise BenchmarkError(f"--held-out: {exc}") from exc
    return drawn


def run_benchmark(systems: Sequence[str] = (), settings: BenchmarkSettings | None = None, out_dir: Path | None = None,
                  log: Callable[[str], None] | None = None, judge_chunk: int = JUDGE_CHUNK,
                  shard: tuple[int, int] | None = None) -> tuple[BenchmarkReport, list[BenchmarkCandidate]]:
    """Generate with each generator, judge all alike, and measure.

    Parameters
    ----------
    systems : sequence of str
        Chemical systems, e.g. ``["Ca-Sn-O", "Sr-Zr-O"]``; none where ``settings.held_out`` draws the crystals.
    settings : BenchmarkSettings, optional
        N (or ``held_out``), seed, judge and generators; default: the project's defaults.
    out_dir : Path, optional
        Where ``candidates.jsonl`` grows row by row (a rerun with the same settings resumes from it) and
        ``benchmark.json`` is written at the end.
    log : callable, optional
        Receives one line per step (for a progress display).
    judge_chunk : int
        Rows per :func:`judge` call, each chunk appended to ``candidates.jsonl`` when judged (not a setting: the
        numbers do not depend on it).
    shard : (int, int), optional
        ``(i, n)``: judge only the blocks of ``judge_chunk`` crystals (in the order of the drawn positions, the same in
        every process) whose number is ``i`` modulo ``n``, so that ``n`` processes sharing ``out_dir`` split the
        relaxations. Each appends under a file lock and, before measuring, reads the rows the others have judged.

    Returns
    -------
    (BenchmarkReport, list of BenchmarkCandidate)
        With ``held_out``, the report's ``systems`` are the drawn crystals' distinct systems and its ``per_system``
        is left empty (hundreds of systems of a few crystals each).

    Raises
    ------
    BenchmarkError
        Unknown generators or elements, both or neither of systems and ``held_out``, no held-out crystals.
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
    held_out = settings.held_out
    if held_out is not None and systems:
        raise BenchmarkError("--chemsys and --held-out N both choose what PCCD generates: give one of them")
    if held_out is None and not systems:
        raise BenchmarkError("nothing to generate: give --chemsys SYSTEM (repeat for more) or --held-out N")
    for lever in OPTIONAL_GENERATORS:  # the yield levers oversample per --chemsys system
        if held_out is not None and lever in settings.generators:
            raise BenchmarkError(f"{lever} samples N crystals per --chemsys system; it does not run with --held-out")
    if settings.charge_balanced and held_out is not None:
        raise BenchmarkError("--charge-balanced chooses PCCD's compositions per --chemsys system; a held-out run asks "
                             "for each drawn crystal's")
    if settings.charge_balanced and "pccd_charge_balanced" in settings.generators:
        raise BenchmarkError("with --charge-balanced the pccd generator is pccd_charge_balanced: leave that one out")
    if settings.target_composition and held_out is None:
        raise BenchmarkError("--target-composition asks for held-out crystals' compositions: it needs --held-out")
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
    drawn = None
    if held_out is not None:
        drawn = draw_held_out(get_settings().data_file, held_out, settings.seed, settings.target_composition)
        # (chemical system, index) of each drawn crystal: the same keys as a --chemsys run's rows; sorted, so that
        # a judging chunk holds few systems (each system's hull references are looked up once per chunk)
        positions = sorted(held_out_positions(drawn))
        systems = sorted({chemsys for chemsys, _ in positions})
    else:
        positions = [(system, index) for system in systems for index in range(settings.n)]
    run_key = settings.key(loaded[2].get("sha256"), drawn.material_ids if drawn is not None else ())
    rows_path = out_dir / CANDIDATES_FILE if out_dir is not None else None
    rows = read_rows(rows_path, run_key) if rows_path is not None else {}
    library = None

    def keep(new_rows: list[BenchmarkCandidate]) -> None:
        for row in new_rows:
            row.run_key = run_key
            rows[row.key] = row
        if rows_path is not None and new_rows:
            rows_path.parent.mkdir(parents=True, exist_ok=True)
            # processes of other --shard append to the same file: one writer at a time, whole lines
            with FileLock(f"{rows_path}.lock"), rows_path.open("a") as handle:
                handle.writelines(row.model_dump_json() + "\n" for row in new_rows)

    def keep_missing(made: list[BenchmarkCandidate]) -> None:
        # a regenerated row must not replace a stored one: that one may be judged already
        keep([row for row in made if row.key not in rows])

    def run_rows(generator: str) -> list[BenchmarkCandidate]:
        """This run's rows of a generator, in the order of ``positions``."""
        return [rows[key] for key in (f"{generator}:{chemsys}:{index}" for chemsys, index in positions) if key in rows]

    def systems_done(label: str, done: int) -> None:
        # a --chemsys run logs each of its few systems as it goes; a held-out run's hundreds get a line per tenth
        if held_out is None:
            return
        if done == len(systems) or done % max(1, len(systems) // 10) == 0:
            log(f"{label}: {done}/{len(systems)} systems")

    # PCCD first: the baselines take its cell compositions
    if drawn is not None:
        if any(f"pccd:{chemsys}:{index}" not in rows for chemsys, index in positions):
            what = "compositions" if settings.target_composition else "elements"
            log(f"sampling {held_out} PCCD crystals, one per held-out crystal's {what} ({len(systems)} systems, "
                f"{get_settings().data_file.name})")
            keep_missing(held_out_pccd_candidates(drawn, settings.seed, loaded=loaded))
    else:
        for system in systems:
            if any(f"pccd:{system}:{i}" not in rows for i in range(settings.n)):
                log(f"{system}: sampling {settings.n} PCCD crystals"
                    + (", charge-balanced" if settings.charge_balanced else ""))
                try:
                    made = pccd_candidates(system, settings.n, settings.seed, loaded=loaded,
                                           charge_balanced=settings.charge_balanced, generator="pccd")
                except ValueError as exc:  # pydantic: elements the model does not know
                    raise BenchmarkError(f"--chemsys {system}: {str(exc).splitlines()[-1].strip()}") from exc
                keep_missing(made)
            if "pccd_charge_balanced" in settings.generators and any(
                    f"pccd_charge_balanced:{system}:{i}" not in rows for i in range(settings.n)):
                log(f"{system}: sampling PCCD crystals until {settings.n} are charge-balanced")
                keep_missing(pccd_candidates(system, settings.n, settings.seed, loaded=loaded, charge_balanced=True))
            for lever, steps in (("pccd_ranked", 0), ("pccd_prerelaxed", PRERELAX_STEPS)):
                if lever in settings.generators and any(
                        f"{lever}:{system}:{i}" not in rows for i in range(settings.n)):
                    ranked_by = f"E_hull after {steps} FIRE steps" if steps else "single-point E_hull"
                    log(f"{system}: sampling {RANK_OVERSAMPLE * settings.n} PCCD crystals, keeping the {settings.n} "
                        f"novel ones lowest in {ranked_by}")
                    keep_missing(pccd_ranked_candidates(system, settings.n, novelty_index, settings.engine,
                                                        settings.reference, settings.seed, loaded=loaded,
                                                        prerelax_steps=steps, fmax=settings.relax_fmax))

    compositions: dict[str, list[tuple[int, dict[str, int]]]] = {system: [] for system in systems}
    for row in run_rows("pccd"):
        if row.cell_composition:
            compositions[row.chemsys].append((row.index, row.cell_composition))
    if "random_search" in settings.generators:
        for done, system in enumerate(systems, start=1):
            missing = [(i, c) for i, c in compositions[system] if f"random_search:{system}:{i}" not in rows]
            if missing:
                if held_out is None:
                    log(f"{system}: {len(missing)} PyXtal random crystals")
                keep(random_search_candidates(system, missing, settings.seed))
            systems_done("random_search", done)
    if "substitution" in settings.generators:
        for done, system in enumerate(systems, start=1):
            wanted = compositions[system]
            if any(f"substitution:{system}:{i}" not in rows for i, _ in wanted):
                if held_out is None:
                    log(f"{system}: ion substitution for {len(wanted)} compositions")
                library = library or PrototypeLibrary(settings.prototypes)
                # all of the system's compositions: the k-th crystal of a formula is its k-th distinct substitution
                keep_missing(substitution_candidates(system, wanted, library))
            systems_done("substitution", done)

    fingerprints: dict[str, str] = {}
    block = {key: position // judge_chunk for position, key in enumerate(positions)}
    for generator in settings.generators:
        made = [row for row in run_rows(generator) if row.structure is not None]
        todo = [row for row in made if not row.judged]
        if shard is not None:
            todo = [row for row in todo if block[row.chemsys, row.index] % shard[1] == shard[0]]
        if not todo:
            continue
        log(f"relaxing {len(todo)} {generator} crystals ({settings.engine}, {settings.relax_steps} steps)")
        done = len(made) - len(todo)
        for start in range(0, len(todo), judge_chunk):
            chunk = todo[start:start + judge_chunk]
            judged, found = judge(chunk, settings.engine, settings.reference, settings.relax_steps,
                                  settings.relax_fmax, settings.confirm_with)
            fingerprints.update(found)
            keep(judged)
            done += len(chunk)
            log(f"judging {generator}: {done}/{len(made)}")

    if shard is not None and rows_path is not None:
        rows.update(read_rows(rows_path, run_key))  # what the other shards have judged by now
    log("novelty and uniqueness")
    marked: list[BenchmarkCandidate] = []
    generators, per_system = {}, {}
    for generator in settings.generators:
        mine = mark_sun(run_rows(generator), novelty_index)
        marked += mine
        generators[generator] = generator_metrics(mine)
        if held_out is None:  # per system only for a few chosen systems, not the hundreds of a held-out draw
            for system in systems:
                per_system.setdefault(system, {})[generator] = generator_metrics(
                    [r for r in mine if r.chemsys == system])
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
        settings={"n": settings.n if held_out is None else None, "held_out": held_out,
                  "target_composition": settings.target_composition,
                  "charge_balanced": settings.charge_balanced,
                  "held_out_data": get_settings().data_file.name if held_out is not None else None,
                  "seed": settings.seed, "checkpoint_sha256": loaded[2].get("sha256"),
                  "checkpoint": checkpoint.name,
                  "prototypes": Path(settings.prototypes or get_settings().data_file).name,
                  "run_key": run_key},
        wall_seconds=round(time.monotonic() - started, 1))
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / REPORT_FILE).write_text(report.model_dump_json(indent=2))
    return report, marked


def systems_title(report: BenchmarkReport) -> str:
    """What a report's crystals were asked for, short enough for a title.

    Parameters
    ----------
    report : BenchmarkReport
        A benchmark's report.

    Returns
    -------
    str
        The systems (their number beyond four, which would run into the next panel's title), or for a held-out run
        the number of drawn crystals and of their systems; ", charge-balanced" where PCCD chose its compositions so.
    """
    if report.settings.get("held_out") is not None:
        composition = ", exact compositions" if report.settings.get("target_composition") else ""
        return f"{report.settings['held_out']} held-out crystals ({len(report.systems)} systems{composition})"
    balanced = ", charge-balanced" if report.settings.get("charge_balanced") else ""
    if len(report.systems) > 4:
        return f"{len(report.systems)} systems, {report.settings.get('n')} crystals each{balanced}"
    return ", ".join(report.systems) + balanced


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
    left.set_title(systems_title(report))
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
    confirm = report.judge.get("confirm_with") or "none"
    judge_name = report.judge["model"] + (f" confirmed by {confirm}" if confirm != "none" else "")
    right.set_title(f"judge: {judge_name}, {report.judge['reference']} hull")
    right.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return path


@dataclass
class BenchmarkMaker(Maker):
    """A jobflow job running :func:`run_benchmark` on a list of chemical systems, or on the held-out crystals its
    settings draw (report and rows as output)."""

    name: str = "pccd benchmark"
    settings: BenchmarkSettings = field(default_factory=BenchmarkSettings)

    @job
    def make(self, systems: list[str] | None = None):
        report, candidates = run_benchmark(systems or (), self.settings)
        return {"report": report.model_dump(mode="json"),
                "candidates": [c.model_dump(mode="json") for c in candidates]}
