"""The three generators of `pccd benchmark`: PCCD, a PyXtal random structure search, and ion substitution.

- ``pccd``: the shipped checkpoint (or another), default sampler, conditioned on the system's elements; or, with
  ``--held-out N``, one crystal per drawn held-out crystal, conditioned on its elements (or exact composition).
- ``random_search``: PyXtal random symmetric crystals of exactly PCCD's cell compositions (a random space group
  among those whose Wyckoff positions fit the counts, a few tries each).
- ``substitution``: MP structures of *other* chemical systems with the target's anonymous formula, their ions
  replaced by the target's, ranked by pymatgen's data-mined substitution probabilities (Hautier et al., Inorg. Chem.
  2011; ``pymatgen.analysis.structure_prediction``), the volume rescaled by pymatgen's DLS predictor; duplicates
  (StructureMatcher) skipped, so the k-th crystal of a formula is the k-th most probable distinct one.

Yield levers of PCCD (issue 25 item 3), not run unless asked for: ``pccd_charge_balanced`` (keep charge-balanced
compositions), ``pccd_ranked`` (generate and rank: keep the novel, distinct samples lowest in single-point E_hull) and
``pccd_prerelaxed`` (the same, ranked after a short pre-relaxation).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
import time
import warnings
import zlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pymatgen.core import Composition, Element, Species, Structure

from pccd_flows.benchmark.schemas import BenchmarkCandidate
from pccd_flows.evaluation.metrics import fits, structure_matcher

if TYPE_CHECKING:  # torch-free import of this module: the model's types are only named here
    from pccd_flows.evaluation.generation import HeldOutCompositions
    from pccd_flows.schemas.provenance import GeneratedCrystal, GenerationConditions

logger = logging.getLogger(__name__)

# PyXtal: random space groups tried per composition, and PyXtal's own attempts per space group
RANDOM_SEARCH_SPACE_GROUPS = 10
RANDOM_SEARCH_ATTEMPTS = 10
# pccd_charge_balanced: samples drawn per crystal kept
CHARGE_BALANCE_OVERSAMPLE = 4
# pccd_ranked: samples drawn per crystal kept (the lowest quarter in single-point E_hull, as scripts/rank_lever.py
# picked on the tuning half of the 1,000 held-out samples)
RANK_OVERSAMPLE = 4
# pccd_prerelaxed: FIRE steps of the judge's force field before ranking (the single point ranks generated oxides
# badly: they sit 1-2 eV/atom above the hull before relaxing, tuning set of 2026-12-01)
PRERELAX_STEPS = 30
# substitution: ranked candidates (prototype structures) looked at per formula before giving up on distinct ones
SUBSTITUTION_MAX_PROTOTYPES = 200


def cell_composition(structure: Structure) -> dict[str, int]:
    """Element counts of a structure's cell.

    Parameters
    ----------
    structure : Structure
        Any ordered structure.

    Returns
    -------
    dict
        Element symbol -> atoms in the cell, e.g. ``{"Ca": 2, "Sn": 1, "O": 4}``.
    """
    return {element.symbol: round(amount) for element, amount in structure.composition.element_composition.items()}


def error_kind(message: str) -> str:
    """The kind of a failure, for counting.

    Parameters
    ----------
    message : str
        A recorded error; the benchmark's messages start with their kind (``"pyxtal: ..."``).

    Returns
    -------
    str
        The text up to the first colon.
    """
    return message.split(":", 1)[0].strip()[:80]


# --- PCCD -----------------------------------------------------------------------------------------------------


def sample_pccd(conditions: Sequence[GenerationConditions], seed: int = 0, checkpoint: str | Path | None = None,
                sampler=None, loaded=None) -> tuple[list[GeneratedCrystal], float]:
    """One PCCD crystal per entry of ``conditions``, sampled in one batched run and decoded.

    Parameters
    ----------
    conditions : sequence of GenerationConditions
        What each sample is asked for (the same conditions repeated, or one per held-out crystal).
    seed : int
        Sample i uses noise (seed, i), as `pccd generate`: any one is reproducible alone.
    checkpoint : path, optional
        Default: ``get_settings().checkpoint``.
    sampler : SamplerSettings, optional
        Default: the project's default sampler.
    loaded : tuple, optional
        ``load_model``'s (model, codec, payload), to load a checkpoint once for many calls.

    Returns
    -------
    (list of GeneratedCrystal, float)
        One crystal per condition (a sample that does not decode carries its error), and the CPU seconds of
        sampling and decoding them all.
    """
    from pccd_flows.model.checkpoint import load_model
    from pccd_flows.model.generate import generate_each
    from pccd_flows.settings import get_settings

    model, codec, payload = loaded or load_model(checkpoint or get_settings().checkpoint)
    started = time.process_time()
    crystals = generate_each(model, codec, payload, conditions, seed, sampler)
    return crystals, time.process_time() - started


def pccd_row(generator: str, chemsys: str, index: int, crystal: GeneratedCrystal, structure: Structure | None,
             origin: dict, cpu_seconds: float) -> BenchmarkCandidate:
    """The benchmark row of one PCCD sample.

    Parameters
    ----------
    generator, chemsys : str
        The row's generator name and chemical system.
    index : int
        Its position in the system's run.
    crystal : GeneratedCrystal
        The decoded sample (its error is recorded where it did not decode).
    structure : Structure or None
        ``crystal.to_structure()``, already made by the caller.
    origin : dict
        How it was made (checkpoint, seed, sample index...).
    cpu_seconds : float
        Its share of the sampling's CPU time.

    Returns
    -------
    BenchmarkCandidate
        With the structure, or with ``generation_error`` where the sample did not decode.
    """
    if structure is None:
        return BenchmarkCandidate(generator=generator, chemsys=chemsys, index=index, origin=origin,
                                  generation_error=f"decoding: {crystal.error}", generation_cpu_seconds=cpu_seconds)
    return BenchmarkCandidate(
        generator=generator, chemsys=chemsys, index=index, formula=structure.composition.reduced_formula,
        cell_composition=cell_composition(structure), structure=structure.as_dict(), origin=origin,
        generation_cpu_seconds=cpu_seconds)


def pccd_candidates(chemsys: str, n: int, seed: int = 0, checkpoint: str | Path | None = None,
                    sampler=None, loaded=None, charge_balanced: bool = False,
                    oversample: int = CHARGE_BALANCE_OVERSAMPLE, generator: str | None = None
                    ) -> list[BenchmarkCandidate]:
    """``n`` crystals of ``chemsys`` from a PCCD checkpoint (default: the shipped one) with the default sampler.

    Parameters
    ----------
    chemsys : str
        Elements joined by ``-``, e.g. ``"Ca-Sn-O"``.
    n, seed : int
        How many, and the seed of the run (candidate i uses noise (seed, i), as `pccd generate`).
    checkpoint : path, optional
        Default: ``get_settings().checkpoint``.
    sampler : SamplerSettings, optional
        Default: the project's default sampler.
    loaded : tuple, optional
        ``load_model``'s (model, codec, payload), to load a checkpoint once for many systems.
    charge_balanced : bool
        The ``pccd_charge_balanced`` generator: sample ``oversample * n`` and keep the first ``n`` that decode to a
        composition with charge-balanced ICSD oxidation states (``evaluation.metrics.icsd_charge_balanced``); the
        CPU time of all the samples is shared among the kept ones.
    oversample : int
        Samples drawn per crystal kept, with ``charge_balanced``.
    generator : str, optional
        The rows' generator name; default ``pccd_charge_balanced`` with ``charge_balanced``, else ``pccd``
        (``pccd benchmark --charge-balanced`` names charge-balanced rows ``pccd``: the baselines follow them).

    Returns
    -------
    list of BenchmarkCandidate
        One per sample; a sample that does not decode keeps its row with ``generation_error``. The sampling's CPU
        time is shared equally among the samples.
    """
    from pccd_flows.evaluation.metrics import icsd_charge_balanced
    from pccd_flows.model.generate import GenerationConditions

    conditions = GenerationConditions(elements=tuple(chemsys.split("-")))
    drawn = n * oversample if charge_balanced else n
    crystals, spent = sample_pccd([conditions] * drawn, seed, checkpoint, sampler, loaded)
    share = spent / max(n, 1)
    name = generator or ("pccd_charge_balanced" if charge_balanced else "pccd")
    candidates = []
    for sample, crystal in enumerate(crystals):
        structure = crystal.to_structure()
        origin = {"checkpoint_sha256": crystal.provenance.checkpoint_sha256, "seed": seed, "index": sample}
        if charge_balanced:
            if structure is None or not icsd_charge_balanced(structure.composition):
                continue
            if len(candidates) == n:
                break
        candidates.append(pccd_row(name, chemsys, len(candidates), crystal, structure, origin, share))
    for index in range(len(candidates), n):
        candidates.append(BenchmarkCandidate(
            generator=name, chemsys=chemsys, index=index, generation_cpu_seconds=share,
            generation_error=f"charge balance: fewer than {n} of {drawn} samples charge-balanced"))
    return candidates


def pccd_ranked_candidates(chemsys: str, n: int, novelty_index, engine: str, reference: str, seed: int = 0,
                           checkpoint: str | Path | None = None, sampler=None, loaded=None,
                           oversample: int = RANK_OVERSAMPLE, prerelax_steps: int = 0,
                           fmax: float = 0.05) -> list[BenchmarkCandidate]:
    """Generate and rank: ``oversample * n`` PCCD samples of ``chemsys``, the ``n`` best kept for relaxation.

    A sample is dropped where its generated structure already matches a known crystal (``novelty_index``: a
    rediscovery cannot be S.U.N.) or one kept before it (StructureMatcher). The rest are ranked by their E_hull on the
    judge's hull with the judge's force field (:func:`pccd_flows.stability.assess.energy_above_hull`):

    - ``prerelax_steps = 0`` (generator ``pccd_ranked``): a single point of the generated structure, unrelaxed
      (about 0.1-0.5 CPU s against several seconds for a relaxation);
    - ``prerelax_steps > 0`` (generator ``pccd_prerelaxed``): after that many FIRE steps, and a sample whose
      pre-relaxed structure matches a known crystal or one ranked above it is dropped too (it is on its way to a
      rediscovery or a repeat).

    The kept rows carry the *generated* structure: the judge relaxes them from there like every other generator's,
    so the verdict does not depend on the lever beyond its choice. Sample i uses the same noise as ``pccd``'s
    sample i, so the runs are paired: ``pccd``'s samples are the first ``n`` of these.

    Parameters
    ----------
    chemsys : str
        Elements joined by ``-``.
    n : int
        Crystals kept.
    novelty_index : KnownStructureIndex
        The benchmark's known crystals (``find_match``).
    engine, reference : str
        The judge's force field and hull reference.
    seed, checkpoint, sampler, loaded
        As :func:`pccd_candidates`.
    oversample : int
        Samples drawn per crystal kept.
    prerelax_steps : int
        FIRE steps before ranking (0: a single point).
    fmax : float
        Force criterion of the pre-relaxation, eV/A.

    Returns
    -------
    list of BenchmarkCandidate
        ``n`` rows in rank order, each with its sample index, rank and ranking E_hull (``single_point_e_above_hull`` or
        ``prerelaxed_e_above_hull``) in ``origin``; rows short of
        ``n`` (too few novel, distinct samples with an energy) carry ``generation_error``. The CPU time of all the
        samples, novelty checks and ranking energies is shared among the ``n`` rows.
    """
    from pccd_flows.model.generate import GenerationConditions
    from pccd_flows.stability.assess import energy_above_hull
    from pccd_flows.stability.engines import RelaxSettings

    name = "pccd_prerelaxed" if prerelax_steps else "pccd_ranked"
    conditions = GenerationConditions(elements=tuple(chemsys.split("-")))
    drawn = n * oversample
    crystals, spent = sample_pccd([conditions] * drawn, seed, checkpoint, sampler, loaded)
    started = time.process_time()
    matcher = structure_matcher()

    def known_or_repeated(structure: Structure, kept: dict[str, list[Structure]]) -> str | None:
        if novelty_index.find_match(structure) is not None:
            return "known"
        formula = structure.composition.reduced_formula
        if any(fits(matcher, other, structure) for other in kept[formula]):
            return "repeated"
        kept[formula].append(structure)
        return None

    samples, seen = [], defaultdict(list)
    dropped = Counter()
    for index, crystal in enumerate(crystals):
        structure = crystal.to_structure()
        if structure is None:
            dropped["not decoded"] += 1
            continue
        why = known_or_repeated(structure, seen)
        if why:
            dropped[f"{why} as generated"] += 1
            continue
        samples.append((index, crystal, structure))
    relax = RelaxSettings(relax=prerelax_steps > 0, steps=max(prerelax_steps, 1), fmax=fmax)
    report = energy_above_hull([(str(index), structure) for index, _, structure in samples], engine=engine,
                               reference=reference, relax=relax, confirm_with="none")
    ranked = sorted(((result.e_above_hull, index, crystal, structure, result.relaxed_structure)
                     for (index, crystal, structure), result in zip(samples, report.results, strict=True)
                     if result.e_above_hull is not None), key=lambda item: (item[0], item[1]))
    dropped["no energy"] = len(samples) - len(ranked)
    if prerelax_steps:
        seen_relaxed, kept = defaultdict(list), []
        for item in ranked:
            why = known_or_repeated(Structure.from_dict(item[4]), seen_relaxed)
            if why:
                dropped[f"{why} after {prerelax_steps} steps"] += 1
            else:
                kept.append(item)
            if len(kept) == n:
                break
        ranked = kept
    share = (spent + time.process_time() - started) / max(n, 1)
    ranked_by = (f"{engine} E_hull after {prerelax_steps} FIRE steps" if prerelax_steps
                 else f"{engine} single-point E_hull") + f", {reference} hull"
    ranking_key = "prerelaxed_e_above_hull" if prerelax_steps else "single_point_e_above_hull"
    candidates = []
    for rank, (e_rank, index, crystal, structure, _) in enumerate(ranked[:n]):
        origin = {"checkpoint_sha256": crystal.provenance.checkpoint_sha256, "seed": seed, "index": index,
                  "rank": rank, "drawn": drawn, ranking_key: round(float(e_rank), 4),
                  "ranked_by": ranked_by}
        candidates.append(pccd_row(name, chemsys, rank, crystal, structure, origin, share))
    reasons = ", ".join(f"{count} {why}" for why, count in dropped.items() if count)
    for rank in range(len(candidates), n):
        candidates.append(BenchmarkCandidate(
            generator=name, chemsys=chemsys, index=rank, generation_cpu_seconds=share,
            generation_error=f"ranking: only {len(candidates)} of {drawn} samples left ({reasons})"))
    return candidates


def held_out_positions(drawn: HeldOutCompositions) -> list[tuple[str, int]]:
    """Where each drawn held-out crystal's rows go: its chemical system and its position there.

    Parameters
    ----------
    drawn : HeldOutCompositions
        From :func:`pccd_flows.evaluation.generation.draw_compositions`.

    Returns
    -------
    list of (str, int)
        Per drawn crystal, in order: its chemical system (elements sorted by symbol, joined by ``-``) and its
        position among the drawn crystals of that system (0, 1, ...), so that the rows' keys
        ``generator:chemsys:index`` are those of a ``--chemsys`` run.
    """
    seen: Counter[str] = Counter()
    positions = []
    for conditions in drawn.conditions:
        chemsys = "-".join(sorted(conditions.elements))
        positions.append((chemsys, seen[chemsys]))
        seen[chemsys] += 1
    return positions


def held_out_pccd_candidates(drawn: HeldOutCompositions, seed: int = 0, checkpoint: str | Path | None = None,
                             sampler=None, loaded=None) -> list[BenchmarkCandidate]:
    """One PCCD crystal per drawn held-out crystal, conditioned on its elements (or its exact composition).

    Parameters
    ----------
    drawn : HeldOutCompositions
        From :func:`pccd_flows.evaluation.generation.draw_compositions` (with ``target_composition``, each condition
        carries the held-out crystal's exact composition).
    seed : int
        Sample i (the i-th drawn crystal) uses noise (seed, i).
    checkpoint : path, optional
        Default: ``get_settings().checkpoint``.
    sampler : SamplerSettings, optional
        Default: the project's default sampler.
    loaded : tuple, optional
        ``load_model``'s (model, codec, payload).

    Returns
    -------
    list of BenchmarkCandidate
        One ``pccd`` row per drawn crystal, in the order drawn, at :func:`held_out_positions`; ``origin`` records the
        checkpoint, seed, sample index, the held-out crystal's ``held_out_material_id`` and the requested
        ``composition`` where there was one. All samples are drawn in one batched run whose CPU time is shared
        equally; a sample that does not decode keeps its row with ``generation_error``.
    """
    crystals, spent = sample_pccd(drawn.conditions, seed, checkpoint, sampler, loaded)
    share = spent / max(len(crystals), 1)
    candidates = []
    for sample, (crystal, (chemsys, index), material_id) in enumerate(
            zip(crystals, held_out_positions(drawn), drawn.material_ids, strict=True)):
        origin = {"checkpoint_sha256": crystal.provenance.checkpoint_sha256, "seed": seed, "index": sample,
                  "held_out_material_id": material_id}
        if drawn.conditions[sample].composition is not None:
            origin["composition"] = drawn.conditions[sample].composition
        candidates.append(pccd_row("pccd", chemsys, index, crystal, crystal.to_structure(), origin, share))
    return candidates


# --- PyXtal random search -------------------------------------------------------------------------------------


@lru_cache(maxsize=256)
def compatible_space_groups(counts: tuple[int, ...]) -> tuple[int, ...]:
    """Space groups whose Wyckoff positions can hold these atom counts (PyXtal's check; P1 always can).

    Parameters
    ----------
    counts : tuple of int
        Atoms per element in the conventional cell.

    Returns
    -------
    tuple of int
        Space-group numbers, ascending.
    """
    from pyxtal.symmetry import Group

    return tuple(number for number in range(1, 231) if Group(number).check_compatible(list(counts))[0])


def random_symmetric_crystal(composition: dict[str, int], rng: np.random.Generator,
                             space_groups: int = RANDOM_SEARCH_SPACE_GROUPS,
                             attempts: int = RANDOM_SEARCH_ATTEMPTS) -> tuple[Structure | None, dict, str | None]:
    """A PyXtal random crystal with exactly these cell counts, in a random compatible space group.

    Parameters
    ----------
    composition : dict
        Element -> atoms in the (conventional) cell, e.g. ``{"Ca": 2, "Sn": 1, "O": 4}``.
    rng : numpy Generator
        Draws the space groups and is handed to PyXtal, so a seed reproduces the crystal.
    space_groups, attempts : int
        Space groups tried, and PyXtal's tries per space group.

    Returns
    -------
    (Structure or None, dict, str or None)
        The crystal, how it was made (space group, space groups tried), and the error where none could be placed.
    """
    from pyxtal import pyxtal

    species, counts = list(composition), [int(c) for c in composition.values()]
    if not species or min(counts) < 1:
        return None, {}, f"pyxtal: no atoms to place in {composition}"
    groups = compatible_space_groups(tuple(counts))
    if not groups:
        return None, {}, f"pyxtal: no space group fits the counts {composition}"
    tried, last_error = [], "no attempt"
    for group in rng.choice(groups, size=min(space_groups, len(groups)), replace=False):
        group = int(group)
        tried.append(group)
        crystal = pyxtal()
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                crystal.from_random(3, group, species, counts, max_count=attempts, random_state=rng)
                if not crystal.valid:
                    raise RuntimeError("no valid crystal")
                structure = crystal.to_pymatgen()
        except Exception as exc:  # noqa: BLE001 - PyXtal raises many types for a group it cannot fill
            last_error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            continue
        if cell_composition(structure) != {el: c for el, c in zip(species, counts)}:
            last_error = f"composition {structure.composition} instead of {composition}"
            continue
        return structure, {"space_group": group, "space_groups_tried": tried}, None
    return None, {"space_groups_tried": tried}, f"pyxtal: could not place {composition} ({last_error[:150]})"


def random_search_candidates(chemsys: str, compositions: Sequence[tuple[int, dict[str, int]]], seed: int = 0
                             ) -> list[BenchmarkCandidate]:
    """One PyXtal random crystal per (index, cell composition).

    Parameters
    ----------
    chemsys : str
        The system the compositions belong to (recorded, and part of the seed stream).
    compositions : sequence of (int, dict)
        Index and cell composition, e.g. PCCD's crystals'.
    seed : int
        Each crystal draws from the stream (seed, chemsys, index), so any one is reproducible alone.

    Returns
    -------
    list of BenchmarkCandidate
        One per composition; one PyXtal could not place keeps its row with ``generation_error``.
    """
    candidates = []
    for index, composition in compositions:
        rng = np.random.default_rng([seed, zlib.crc32(chemsys.encode()), index])
        started = time.process_time()
        structure, origin, error = random_symmetric_crystal(composition, rng)
        spent = time.process_time() - started
        candidates.append(BenchmarkCandidate(
            generator="random_search", chemsys=chemsys, index=index, cell_composition=dict(composition),
            formula=Composition(composition).reduced_formula, origin=origin, generation_error=error,
            structure=structure.as_dict() if structure is not None else None, generation_cpu_seconds=spent))
    return candidates


# --- ion substitution -----------------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def likely_oxidation_states(formula: str) -> dict[str, float] | None:
    """The most likely charge-balanced oxidation states of a formula.

    Parameters
    ----------
    formula : str
        E.g. ``"CaSnO3"``.

    Returns
    -------
    dict or None
        Element -> oxidation state of pymatgen's first ``oxi_state_guesses``, None where there is none.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            guesses = Composition(formula).oxi_state_guesses(max_sites=-20)
        except Exception:  # noqa: BLE001 - an exotic formula has no guess
            return None
    return dict(guesses[0]) if guesses else None


def element_mappings(source: Composition, target: Composition) -> list[dict[str, str]]:
    """The ways to map the source's elements onto the target's that keep the stoichiometry.

    Parameters
    ----------
    source, target : Composition
        Compositions of the same anonymous formula.

    Returns
    -------
    list of dict
        Source element -> target element; elements of equal amount in the reduced formulas can be exchanged, so
        there is one mapping per such permutation. Empty where the anonymous formulas differ.
    """
    source_amounts = source.reduced_composition.element_composition
    target_amounts = target.reduced_composition.element_composition
    by_amount_source, by_amount_target = defaultdict(list), defaultdict(list)
    for element, amount in source_amounts.items():
        by_amount_source[round(amount, 6)].append(element.symbol)
    for element, amount in target_amounts.items():
        by_amount_target[round(amount, 6)].append(element.symbol)
    if sorted((a, len(v)) for a, v in by_amount_source.items()) != \
            sorted((a, len(v)) for a, v in by_amount_target.items()):
        return []
    groups = [[dict(zip(by_amount_source[a], permutation))
               for permutation in itertools.permutations(by_amount_target[a])] for a in sorted(by_amount_source)]
    return [{k: v for part in choice for k, v in part.items()} for choice in itertools.product(*groups)]


@dataclass(order=True)
class RankedSubstitution:
    """A prototype formula and the element mapping onto the target, with its substitution probability."""

    probability: float
    source_formula: str = field(compare=False)
    mapping: dict[str, str] = field(compare=False)


def rank_substitutions(target_formula: str, source_formulas: Sequence[str]) -> list[RankedSubstitution]:
    """Source formulas (same anonymous formula, other chemical systems) ranked by the data-mined probability of
    substituting their ions by the target's, most probable first.

    Parameters
    ----------
    target_formula : str
        The formula wanted, e.g. ``"MgO"``; its oxidation states are pymatgen's most likely charge-balanced guess.
    source_formulas : sequence of str
        Candidate prototype formulas; those of another anonymous formula, of the target's own chemical system, or
        without a charge-balanced guess are left out.

    Returns
    -------
    list of RankedSubstitution
        Probability = product over the mapped ions of pymatgen's ``SubstitutionProbability.cond_prob(source ion,
        target ion)`` (conditional on the target ions, as pymatgen's ``SubstitutionPredictor`` ranks them); of the
        mappings of one source formula only the most probable is kept.

    Raises
    ------
    ValueError
        Where the target has no charge-balanced oxidation states, or ions the probability model does not know.
    """
    from pymatgen.analysis.structure_prediction.substitution_probability import SubstitutionProbability

    target = Composition(target_formula)
    target_states = likely_oxidation_states(target.reduced_formula)
    if target_states is None:
        raise ValueError(f"substitution: {target.reduced_formula} has no charge-balanced oxidation states")
    model = SubstitutionProbability()
    target_ions = {el: Species(el, target_states[el]) for el in target_states}
    unknown = [str(ion) for ion in target_ions.values() if ion not in model.species]
    if unknown:
        raise ValueError(f"substitution: no substitution data for {', '.join(unknown)}")
    target_elements = set(target_states)
    ranked = []
    for formula in source_formulas:
        source = Composition(formula)
        if source.anonymized_formula != target.anonymized_formula:
            continue
        if {el.symbol for el in source.elements} == target_elements:
            continue
        source_states = likely_oxidation_states(source.reduced_formula)
        if source_states is None:
            continue
        best = None
        for mapping in element_mappings(source, target):
            sources = [Species(el, source_states[el]) for el in mapping]
            targets = [target_ions[mapping[el]] for el in mapping]
            probability = model.cond_prob_list(sources, targets)
            if best is None or probability > best.probability:
                best = RankedSubstitution(probability, source.reduced_formula, mapping)
        if best is not None:
            ranked.append(best)
    return sorted(ranked, key=lambda r: (-r.probability, r.source_formula))


def substitute(prototype: Structure, mapping: dict[str, str], rescale_volume: bool = True) -> Structure:
    """A prototype with its elements replaced.

    Parameters
    ----------
    prototype : Structure
        The known crystal.
    mapping : dict
        Prototype element -> new element, applied to all sites at once.
    rescale_volume : bool
        Set the volume by pymatgen's DLS volume predictor (kept as it is where that predictor fails).

    Returns
    -------
    Structure
        A new structure; the prototype is not changed.
    """
    structure = prototype.copy()
    structure.remove_oxidation_states()
    structure.replace_species({Element(src): Element(dst) for src, dst in mapping.items()})
    if rescale_volume:
        from pymatgen.analysis.structure_prediction.volume_predictor import DLSVolumePredictor

        with contextlib.suppress(Exception), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            structure = DLSVolumePredictor().get_predicted_structure(structure)
    return structure


class PrototypeLibrary:
    """Known structures of a jsonl data file (by default the bundled MP set) by formula, as prototypes; the
    polymorphs of a formula lowest in formation energy first (MP's ground state is the prototype tried first).

    Parameters
    ----------
    path : path, optional
        Data file; default ``get_settings().data_file``.
    """

    def __init__(self, path: str | Path | None = None):
        from pccd_flows.data.io import read_records
        from pccd_flows.settings import get_settings

        self.source = Path(path) if path is not None else Path(get_settings().data_file)
        self._records: dict[str, list[tuple[float, str, str]]] = defaultdict(list)
        self.by_anonymous: dict[str, set[str]] = defaultdict(set)
        self._parsed: dict[str, list[tuple[str, Structure]]] = {}
        for record in read_records(self.source):
            composition = None
            with contextlib.suppress(Exception):  # an unreadable record is no prototype
                composition = Composition(record.formula) if record.formula else record.to_structure().composition
            if composition is None:
                continue
            formula = composition.reduced_formula
            energy = record.formation_energy_per_atom
            self._records[formula].append((energy if energy is not None else float("inf"), record.material_id,
                                           record.cif))
            self.by_anonymous[composition.anonymized_formula].add(formula)

    def formulas_like(self, formula: str) -> list[str]:
        """Formulas of the same anonymous formula (``"ABC3"`` for CaSnO3), sorted."""
        return sorted(self.by_anonymous.get(Composition(formula).anonymized_formula, ()))

    def structures(self, formula: str) -> list[tuple[str, Structure]]:
        """(material_id, structure) of a formula, lowest formation energy first (unreadable CIFs skipped)."""
        if formula not in self._parsed:
            parsed = []
            for _, material_id, cif in sorted(self._records.get(formula, ())):
                with contextlib.suppress(Exception), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    parsed.append((material_id, Structure.from_str(cif, fmt="cif")))
            self._parsed[formula] = parsed
        return self._parsed[formula]


def substitution_structures(target_formula: str, k: int, prototypes: PrototypeLibrary | Sequence[tuple[str, Structure]],
                            max_prototypes: int = SUBSTITUTION_MAX_PROTOTYPES) -> list[tuple[Structure, dict]]:
    """The ``k`` most probable distinct substituted crystals of ``target_formula``.

    Parameters
    ----------
    target_formula : str
        E.g. ``"CaSnO3"``.
    k : int
        How many distinct crystals.
    prototypes : PrototypeLibrary or sequence of (id, Structure)
        Where the prototypes come from (a list: any structures, e.g. hand-made ones in tests).
    max_prototypes : int
        Ranked prototypes looked at before stopping short of ``k``.

    Returns
    -------
    list of (Structure, dict)
        Most probable first, each with its origin (prototype id and formula, mapping, probability). Fewer than
        ``k`` where the prototypes run out.

    Raises
    ------
    ValueError
        From :func:`rank_substitutions` (no oxidation states or substitution data for the target).
    """
    if isinstance(prototypes, PrototypeLibrary):
        formulas = prototypes.formulas_like(target_formula)
        lookup = prototypes.structures
    else:
        pool: dict[str, list[tuple[str, Structure]]] = defaultdict(list)
        for material_id, structure in prototypes:
            pool[structure.composition.reduced_formula].append((material_id, structure))
        formulas = list(pool)

        def lookup(formula: str) -> list[tuple[str, Structure]]:
            return sorted(pool[formula], key=lambda item: item[0])

    matcher = structure_matcher()
    chosen: list[tuple[Structure, dict]] = []
    looked = 0
    for ranked in rank_substitutions(target_formula, formulas):
        for material_id, prototype in lookup(ranked.source_formula):
            if len(chosen) >= k or looked >= max_prototypes:
                return chosen
            looked += 1
            structure = substitute(prototype, ranked.mapping)
            if any(fits(matcher, structure, other) for other, _ in chosen):
                continue
            chosen.append((structure, {"prototype_id": material_id, "prototype_formula": ranked.source_formula,
                                       "mapping": ranked.mapping, "probability": ranked.probability}))
    return chosen


def substitution_candidates(chemsys: str, compositions: Sequence[tuple[int, dict[str, int]]],
                            prototypes: PrototypeLibrary | Sequence[tuple[str, Structure]]) -> list[BenchmarkCandidate]:
    """One substituted crystal per (index, cell composition).

    Parameters
    ----------
    chemsys : str
        The system the compositions belong to (recorded).
    compositions : sequence of (int, dict)
        Index and cell composition; the j-th index of a reduced formula gets the j-th most probable distinct
        substitution of that formula.
    prototypes : PrototypeLibrary or sequence of (id, Structure)
        Where the prototypes come from.

    Returns
    -------
    list of BenchmarkCandidate
        By index; a composition without a substitution keeps its row with ``generation_error``.
    """
    by_formula: dict[str, list[int]] = defaultdict(list)
    wanted = dict(compositions)
    for index, composition in compositions:
        by_formula[Composition(composition).reduced_formula].append(index)
    candidates = []
    for formula, indices in by_formula.items():
        started = time.process_time()
        try:
            made, error = substitution_structures(formula, len(indices), prototypes), None
        except ValueError as exc:
            made, error = [], str(exc)
        share = (time.process_time() - started) / len(indices)
        for rank, index in enumerate(indices):
            row = BenchmarkCandidate(generator="substitution", chemsys=chemsys, index=index, formula=formula,
                                     cell_composition=dict(wanted[index]), generation_cpu_seconds=share)
            if rank < len(made):
                structure, origin = made[rank]
                row = row.model_copy(update={"structure": structure.as_dict(), "cell_composition":
                                             cell_composition(structure), "origin": {**origin, "rank": rank}})
            else:
                row.generation_error = error or (f"substitution: only {len(made)} distinct prototypes of "
                                                 f"{Composition(formula).anonymized_formula} for {formula}")
            candidates.append(row)
    return sorted(candidates, key=lambda c: c.index)
