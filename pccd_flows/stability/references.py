"""Reference phases of a chemical system, on the same energy scale as the candidates.

- ``mp-formation`` (offline default): MP formation energies by formula (bundled, 2019) placed on the engine's own
  scale with elemental reference energies computed by the same engine (lowest relaxed energy among the element's MP
  structures in the bundled data; cached). Using MP's elemental energies instead puts CHGNet's Si 0.11 eV/atom above
  its own hull; the engine's own elements cancel such offsets.
- ``mp-api``: ``MPRester.get_entries_in_chemsys`` (MP2020-corrected GGA/GGA+U entries; online, needs a key).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from pymatgen.analysis.phase_diagram import PDEntry
from pymatgen.core import Composition, Element, Structure

from pccd_flows.settings import PccdSettings, get_settings
from pccd_flows.stability.engines import FORCE_FIELDS, RelaxSettings, check_engine, run_force_field
from pccd_flows.stability.entries import CORRECTED_BY_TRAINING, force_field_entry

logger = logging.getLogger(__name__)

REFERENCES = ("mp-structures", "mp-formation", "mp-api")
# reference cells larger than this are left to the formation-energy placement (relaxing them costs minutes each)
REFERENCE_MAX_SITES = 40
RELAXED_POLYMORPHS = 2


class ReferenceError(RuntimeError):
    """Reference phases that cannot be had (unknown source, no key, unreachable server, missing data)."""


@dataclass
class ReferenceSet:
    name: str
    engine: str
    chemsys: str
    entries: list = field(default_factory=list)
    notes: dict = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        rows = sorted((e.composition.reduced_formula, round(e.energy_per_atom, 5)) for e in self.entries)
        return hashlib.sha256(json.dumps([self.name, self.engine, rows]).encode()).hexdigest()[:16]


def normalise_chemsys(elements: str | Iterable[str]) -> list[str]:
    names = elements.split("-") if isinstance(elements, str) else list(elements)
    symbols = []
    for name in names:
        if not Element.is_valid_symbol(name.strip()):
            raise ReferenceError(f"unknown element {name!r}")
        symbols.append(name.strip())
    return sorted(set(symbols))


@lru_cache(maxsize=4)
def formation_energy_table(path: Path) -> dict[str, float]:
    """Lowest MP formation energy (eV/atom) per reduced formula."""
    table: dict[str, float] = {}
    with gzip.open(path, "rt") as handle:
        for row in csv.DictReader(handle):
            try:
                formula = Composition(row["formula"]).reduced_formula
            except ValueError:
                continue
            value = float(row["target"])
            table[formula] = min(value, table.get(formula, value))
    return table


def structures_in_chemsys(elements: Sequence[str], path: Path, max_sites: int, max_elements: int = 3
                           ) -> dict[str, list[tuple[str, Structure]]]:
    """MP structures whose elements lie inside ``elements``, by reduced formula (cells over ``max_sites`` skipped)."""
    from pccd_flows.evaluation.novelty import known_structure_index

    index = known_structure_index(Path(path))
    found: dict[str, list[tuple[str, Structure]]] = {}
    for formula in index.formulas_within(elements):
        if len(Composition(formula).elements) > max_elements:
            continue
        items = [(mid, s) for mid, s in index.known_structures(formula) if len(s) <= max_sites]
        if items:
            found[formula] = items
    return found


@lru_cache(maxsize=2)
def bundled_reference_energies(path: Path | None) -> dict[str, float]:
    """Reference energies shipped with the package (the demo's systems), read before the per-machine cache."""
    if path is None or not Path(path).is_file():
        return {}
    with gzip.open(path, "rt") as handle:
        return {row["key"]: row["energy_per_atom"] for row in map(json.loads, handle)}


def lowest_engine_energies(polymorphs: dict[str, list[tuple[str, Structure]]], engine: str,
                           settings: PccdSettings | None = None, relax: RelaxSettings | None = None
                           ) -> dict[str, dict]:
    """Per formula: the engine's lowest relaxed energy per atom over its MP polymorphs (cached per material).

    Single points rank the polymorphs (they are DFT-relaxed already, so this is cheap and close); only the
    ``RELAXED_POLYMORPHS`` lowest of each formula are relaxed.
    """
    from pccd_flows.stores.config import open_store, reference_energy_store

    settings = settings or get_settings()
    relax = relax or RelaxSettings(steps=300, fmax=0.05)
    engine = check_engine(engine)
    if engine not in FORCE_FIELDS:
        raise ReferenceError("engine reference energies need a force field; use --reference mp-api with VASP")
    store = reference_energy_store(settings)

    # energies are cached on the MP2020 scale (force_field_entry); engines corrected here carry the scale in the key
    scale = "" if engine in CORRECTED_BY_TRAINING else ":mp2020"

    def static_key(material_id: str) -> str:
        return f"static:{material_id}:{engine}{scale}"

    def relaxed_key(material_id: str) -> str:
        return f"relaxed:{material_id}:{engine}:{relax.steps}:{relax.fmax}{scale}"

    def cached(keys: list[str]) -> dict[str, float]:
        seed = bundled_reference_energies(settings.reference_energy_seed_file)
        found = {key: seed[key] for key in keys if key in seed}
        missing = [key for key in keys if key not in found]
        if missing:
            with open_store(store) as cache:
                found.update({doc["key"]: doc["energy_per_atom"] for doc in cache.query({"key": {"$in": missing}})})
        return found

    def compute(items: list[tuple[str, Structure]], settings_: RelaxSettings, key) -> dict[str, float]:
        outcomes = run_force_field([structure for _, structure in items], engine, settings_)
        rows = [{"key": key(mid), "material_id": mid, "engine": engine,
                 "formula": structure.composition.reduced_formula,
                 "energy_per_atom": force_field_entry(o.task_doc.output.structure, o.task_doc.output.energy,
                                                      engine).energy_per_atom}
                for (mid, structure), o in zip(items, outcomes) if o.ok]
        if rows:
            with open_store(store) as cache:
                cache.update(rows, key="key")
        return {row["key"]: row["energy_per_atom"] for row in rows}

    everything = [item for items in polymorphs.values() for item in items]
    static = cached([static_key(mid) for mid, _ in everything])
    todo = [(mid, s) for mid, s in everything if static_key(mid) not in static]
    if todo:
        logger.info("%s single points of %d reference structures", engine, len(todo))
        static.update(compute(todo, RelaxSettings(relax=False), static_key))
    shortlist = []
    for items in polymorphs.values():
        ranked = sorted((static[static_key(mid)], mid, s) for mid, s in items if static_key(mid) in static)
        shortlist += [(mid, s) for _, mid, s in ranked[:RELAXED_POLYMORPHS]]
    relaxed = cached([relaxed_key(mid) for mid, _ in shortlist])
    todo = [(mid, s) for mid, s in shortlist if relaxed_key(mid) not in relaxed]
    if todo:
        logger.info("%s relaxations of %d reference structures", engine, len(todo))
        relaxed.update(compute(todo, relax, relaxed_key))
    lowest: dict[str, dict] = {}
    for formula, items in polymorphs.items():
        options = [(relaxed[relaxed_key(mid)], mid) for mid, _ in items if relaxed_key(mid) in relaxed]
        if options:
            energy, material_id = min(options)
            lowest[formula] = {"energy_per_atom": energy, "material_id": material_id, "n_polymorphs": len(items)}
    return lowest


def elemental_energies(elements: Sequence[str], engine: str, settings: PccdSettings | None = None
                       ) -> dict[str, dict]:
    """Per element: the engine's lowest relaxed energy per atom over the element's bundled MP structures."""
    settings = settings or get_settings()
    # keyed by element: the reduced formula of an element can be a molecule's ("O2")
    unary = {Composition(formula).elements[0].symbol: items
             for formula, items in structures_in_chemsys(elements, settings.data_file, 10**6, 1).items()}
    energies = lowest_engine_energies(unary, engine, settings)
    missing = [el for el in elements if el not in energies]
    if missing:
        raise ReferenceError(f"no {engine} reference energy for {', '.join(missing)} "
                             f"(no structure in {settings.data_file.name}, or every one failed)")
    return energies


def formation_energy_entries(elements: Sequence[str], elemental: dict[str, float], table: dict[str, float]
                             ) -> list[PDEntry]:
    """Phases of the system placed at their formation energy above the given elemental energies (eV/atom)."""
    entries = [PDEntry(Composition({el: 1}), elemental[el], name=el) for el in elements]
    allowed = set(elements)
    for formula, e_form in table.items():
        composition = Composition(formula)
        if len(composition) < 2 or not {el.symbol for el in composition.elements} <= allowed:
            continue
        energy = composition.num_atoms * e_form + sum(
            amount * elemental[el.symbol] for el, amount in composition.items())
        entries.append(PDEntry(composition, energy, name=formula))
    return entries


def mp_formation_references(elements: Sequence[str], engine: str, settings: PccdSettings | None = None
                            ) -> ReferenceSet:
    settings = settings or get_settings()
    elements = normalise_chemsys(elements)
    mu = elemental_energies(elements, engine, settings)
    table = formation_energy_table(settings.formation_energy_file)
    entries = formation_energy_entries(elements, {el: mu[el]["energy_per_atom"] for el in elements}, table)
    return ReferenceSet("mp-formation", engine, "-".join(elements), entries,
                        notes={"elemental_references": mu, "formation_energies": settings.formation_energy_file.name})


def mp_structure_references(elements: Sequence[str], engine: str, settings: PccdSettings | None = None
                            ) -> ReferenceSet:
    """Engine energies of the MP structures of the system and its subsystems (lowest polymorph per formula).

    Formulas MP knows only in cells over ``REFERENCE_MAX_SITES`` sites (or not in the structure file) still bound
    the hull, placed by their MP formation energy on the engine's elemental scale as in ``mp-formation``.
    """
    settings = settings or get_settings()
    elements = normalise_chemsys(elements)
    source = settings.reference_structures_file or settings.data_file
    polymorphs = structures_in_chemsys(elements, source, REFERENCE_MAX_SITES)
    computed = lowest_engine_energies(polymorphs, engine, settings)
    placed = mp_formation_references(elements, engine, settings)
    entries = [PDEntry(Composition(formula), info["energy_per_atom"] * Composition(formula).num_atoms, name=formula)
               for formula, info in computed.items()]
    entries += [entry for entry in placed.entries if entry.composition.reduced_formula not in computed]
    return ReferenceSet("mp-structures", engine, "-".join(elements), entries, notes={
        "structures": source.name, "computed": {f: info["material_id"] for f, info in computed.items()},
        "placed_by_formation_energy": sorted(e.composition.reduced_formula for e in entries
                                            if e.composition.reduced_formula not in computed)})


def mp_api_references(elements: Sequence[str], engine: str, settings: PccdSettings | None = None) -> ReferenceSet:
    settings = settings or get_settings()
    elements = normalise_chemsys(elements)
    if not settings.mp_api_key:
        raise ReferenceError("--reference mp-api needs a Materials Project API key: set MP_API_KEY")
    from pccd_flows.data.fetch import (
        DEFAULT_ENDPOINT,
        MPFetchError,
        check_reachable,
        failure_message,
        no_retry_session,
    )

    # mp-api appends paths to the endpoint ("materials/thermo/"): without its trailing slash every URL is wrong
    endpoint = (os.environ.get("MP_API_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/") + "/"
    session = no_retry_session()
    try:
        check_reachable(session, endpoint)  # seconds, where MPRester would retry for minutes
        from mp_api.client import MPRester

        with MPRester(settings.mp_api_key, endpoint=endpoint, session=session, mute_progress_bars=True) as rester:
            entries = rester.get_entries_in_chemsys(
                elements, additional_criteria={"thermo_types": ["GGA_GGA+U"]})
    except MPFetchError as exc:
        raise ReferenceError(f"mp-api reference for {'-'.join(elements)}: {exc}") from exc
    except Exception as exc:
        raise ReferenceError(f"mp-api reference for {'-'.join(elements)}: {failure_message(exc)}") from exc
    if not entries:
        raise ReferenceError(f"mp-api returned no entries for {'-'.join(elements)}")
    return ReferenceSet("mp-api", engine, "-".join(elements), list(entries), notes={"source": "MPRester"})


def reference_set(name: str, elements: Sequence[str], engine: str, settings: PccdSettings | None = None
                  ) -> ReferenceSet:
    if name == "mp-structures":
        return mp_structure_references(elements, engine, settings)
    if name == "mp-formation":
        return mp_formation_references(elements, engine, settings)
    if name == "mp-api":
        return mp_api_references(elements, engine, settings)
    raise ReferenceError(f"unknown reference {name!r}: choose one of {', '.join(REFERENCES)}")

