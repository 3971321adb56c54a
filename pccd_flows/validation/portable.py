"""Force-field relaxations computed on another machine (a GPU node with only ASE and the potential installed).

SevenNet on 2 CPU cores needs 10-30 minutes per chemical system for its hull references alone; on a GPU node it is
minutes for a whole study. This module moves that work out and back without moving the project:

1. :func:`export_bundle` writes one JSON file: the candidates' generated structures, the MP reference structures of
   their chemical systems (as :mod:`pccd_flows.stability.references` selects them) and the relaxation settings.
2. ``scripts/portable_relax.py`` (ASE + the potential's package, nothing of pccd-flows) runs it: the relaxation of
   atomate2's ``AseRelaxer`` (FIRE on a ``FrechetCellFilter``, ``fmax``, ``steps``), single points of every reference
   polymorph, then relaxations of the lowest ``relax_top`` polymorphs of each formula. It writes JSON lines as results
   come in, so a run cut short keeps what it finished.
3. :func:`import_results` puts the reference energies into the reference-energy cache under the keys
   :func:`pccd_flows.stability.references.lowest_engine_energies` reads (MP2020 scale, the same
   :func:`~pccd_flows.stability.entries.force_field_entry`), and judges the candidates on those hulls
   (``CandidateDoc.judgements``), exactly as :func:`pccd_flows.validation.judges.rejudge` would have.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

from pymatgen.core import Lattice, Structure

from pccd_flows.stability.engines import FORCE_FIELD_MODELS, FORCE_FIELDS, RelaxSettings, check_engine

logger = logging.getLogger(__name__)

# relaxed per formula on the far side: one more than the hull's RELAXED_POLYMORPHS, in case the MP2020 corrections
# (which can differ between polymorphs, e.g. oxide vs peroxide) reorder the raw single points
RELAX_TOP = 3
REFERENCE_RELAX = RelaxSettings(steps=300, fmax=0.05)  # the hull's (references.lowest_engine_energies)


CANDIDATE_SETS = ("checked", "sample", "all")


def bundle_candidate_ids(which: str, n: int = 60, seed: int = 0, store=None, study: str | None = None
                         ) -> tuple[list[str], set[str]]:
    """The candidates of a bundle and those to relax first: ``checked`` (with a DFT check), ``sample`` (the DFT
    validation's stratified sample, :func:`pccd_flows.validation.dft.select_candidates`) or ``all`` judged ones
    (the sample first)."""
    from pccd_flows.stores.candidates import CandidateStore
    from pccd_flows.validation.dft import select_candidates

    if which not in CANDIDATE_SETS:
        raise ValueError(f"unknown candidate set {which!r}: choose one of {', '.join(CANDIDATE_SETS)}")
    candidates = CandidateStore(store)
    if which == "checked":
        ids = sorted(candidates.ids({"dft_check": {"$ne": None}}))
        return ids, set(ids)
    sample = select_candidates(n, seed, store=store, study=study)
    if which == "sample":
        return sample, set(sample)
    rest = sorted(set(candidates.ids({"e_above_hull": {"$ne": None}})) - set(sample))
    return sample + rest, set(sample)


def structure_row(structure: Structure) -> dict:
    """A structure as plain numbers an ASE-only script can read (cell, Cartesian positions, atomic numbers)."""
    return {"cell": structure.lattice.matrix.round(8).tolist(), "positions": structure.cart_coords.round(8).tolist(),
            "numbers": [site.specie.Z for site in structure]}


def row_structure(row: dict) -> Structure:
    return Structure(Lattice(row["cell"]), row["numbers"], row["positions"], coords_are_cartesian=True)


def export_bundle(candidate_ids: Sequence[str], engines: Sequence[str], relax: RelaxSettings, path: Path,
                  store=None, extra: Iterable[tuple[str, Structure]] = (), first: Iterable[str] = ()) -> dict:
    """Write the work of judging ``candidate_ids`` (and ``extra`` (name, structure) pairs) with ``engines``;
    the far side relaxes the names in ``first`` before the others.

    Returns counts (candidates, chemical systems, reference structures).
    """
    from pccd_flows.settings import get_settings
    from pccd_flows.stability.references import REFERENCE_MAX_SITES, structures_in_chemsys
    from pccd_flows.stores.candidates import CandidateStore

    engines = [check_engine(e) for e in engines]
    unknown = [e for e in engines if e not in FORCE_FIELDS]
    if unknown:
        raise ValueError(f"{unknown[0]} is not a force field")
    settings = get_settings()
    first = set(first)
    candidates = CandidateStore(store)
    # one query: a get per candidate costs a second each on an embedded store
    docs = {doc.candidate_id: doc for doc in candidates.find({"candidate_id": {"$in": list(candidate_ids)}})}
    items = [(c, docs[c].chemsys, docs[c].generated_structure()) for c in candidate_ids
             if c in docs and docs[c].structure]
    for name, structure in extra:
        items.append((name, "-".join(sorted({e.symbol for e in structure.composition.elements})), structure))
    systems = sorted({chemsys for _, chemsys, _ in items})
    source = settings.reference_structures_file or settings.data_file
    references: dict[str, dict] = {}
    for chemsys in systems:
        elements = chemsys.split("-")
        # the compounds (<= REFERENCE_MAX_SITES) and every elemental structure, as the two reference paths take them
        found = structures_in_chemsys(elements, source, REFERENCE_MAX_SITES)
        for element in elements:
            found.update(structures_in_chemsys([element], settings.data_file, 10**6, 1))
        for formula, polymorphs in found.items():
            for material_id, structure in polymorphs:
                references[material_id] = {"id": material_id, "formula": formula, **structure_row(structure)}
    bundle = {
        "engines": {engine: FORCE_FIELD_MODELS[engine] for engine in engines},
        "candidate_relax": {"steps": relax.steps, "fmax": relax.fmax},
        "reference_relax": {"steps": REFERENCE_RELAX.steps, "fmax": REFERENCE_RELAX.fmax, "top": RELAX_TOP},
        "candidates": [{"id": name, "chemsys": chemsys, "first": name in first, **structure_row(s)}
                       for name, chemsys, s in items],
        "references": list(references.values()),
    }
    with gzip.open(path, "wt") as handle:
        json.dump(bundle, handle)
    return {"candidates": len(items), "systems": len(systems), "references": len(references)}


def read_results(paths: Sequence[Path]) -> list[dict]:
    rows = []
    for path in paths:
        opener = gzip.open if str(path).endswith(".gz") else open
        with opener(path, "rt") as handle:
            rows += [json.loads(line) for line in handle if line.strip()]
    for row in rows:
        missing = [key for key in ("engine", "role", "kind", "id") if key not in row]
        if missing:
            raise ValueError(f"a row without {', '.join(missing)}")
    return rows


def import_reference_energies(rows: Sequence[dict], source: str) -> int:
    """Cache the far side's reference energies (static and relaxed) under the hull's keys; returns how many."""
    from pccd_flows.settings import get_settings
    from pccd_flows.stability.entries import CORRECTED_BY_TRAINING, force_field_entry
    from pccd_flows.stores.config import open_store, reference_energy_store

    cached = []
    for row in rows:
        if row.get("role") != "reference" or row.get("error"):
            continue
        engine = row["engine"]
        scale = "" if engine in CORRECTED_BY_TRAINING else ":mp2020"
        structure = row_structure(row["structure"])
        if row["kind"] == "static":
            key = f"static:{row['id']}:{engine}{scale}"
        else:
            key = f"relaxed:{row['id']}:{engine}:{row['steps']}:{row['fmax']}{scale}"
        energy = force_field_entry(structure, row["energy"], engine).energy_per_atom
        cached.append({"key": key, "material_id": row["id"], "engine": engine,
                       "formula": structure.composition.reduced_formula, "energy_per_atom": energy,
                       "computed_by": source})
    if cached:
        with open_store(reference_energy_store(get_settings())) as cache:
            cache.update(cached, key="key")
    return len(cached)


def candidate_outcomes(rows: Sequence[dict], engine: str) -> dict[str, dict]:
    """The far side's candidate relaxations of one engine, by candidate id (the last row wins)."""
    return {row["id"]: row for row in rows if row.get("role") == "candidate" and row["engine"] == engine}


def import_results(paths: Sequence[Path], source: str, reference: str = "mp-structures", store=None) -> dict:
    """Cache the reference energies of the result files, then judge each stored candidate they relaxed.

    Candidates get ``judgements[engine]`` (as :func:`pccd_flows.validation.judges.rejudge`); names that are not
    candidates of the store are returned with their verdicts (e.g. known phases). Returns per engine
    ``{"judged": n, "failed": n, "others": {name: stability or error}}``.
    """
    from pccd_flows.stability.assess import hull_calculators
    from pccd_flows.stability.entries import EntryError, force_field_entry
    from pccd_flows.stability.references import ReferenceError
    from pccd_flows.stores.candidates import CandidateStore

    rows = read_results(paths)
    n_cached = import_reference_energies(rows, source)
    candidates = CandidateStore(store)
    summary = {}
    logger.info("cached %d reference energies", n_cached)
    for engine in sorted({row["engine"] for row in rows if row.get("role") == "candidate"}):
        outcomes = candidate_outcomes(rows, engine)
        chemsys_of = {name: row["chemsys"] for name, row in outcomes.items()}
        calculators, judged, failed, others = {}, 0, 0, {}
        for chemsys in sorted(set(chemsys_of.values())):
            try:
                calculators.update(hull_calculators([chemsys], reference, engine))
            except ReferenceError as exc:
                calculators[chemsys] = exc
            logger.info("%s hull of %s ready", engine, chemsys)
        for name, row in outcomes.items():
            calculator = calculators[row["chemsys"]]
            verdict: object
            if row.get("error"):
                verdict = f"relaxation failed: {row['error']}"
            elif isinstance(calculator, Exception):
                verdict = f"no hull: {calculator}"
            else:
                try:
                    entry = force_field_entry(row_structure(row["structure"]), row["energy"], engine, entry_id=name)
                    verdict = calculator.stability(entry)
                except (EntryError, ReferenceError) as exc:
                    verdict = str(exc)
            doc = candidates.get(name)
            if doc is None:
                others[name] = verdict if isinstance(verdict, str) else verdict.model_dump()
                continue
            if isinstance(verdict, str):
                failed += 1
                continue
            candidates.patch({name: {"judgements": {**doc.judgements, engine: verdict}}})
            judged += 1
        summary[engine] = {"judged": judged, "failed": failed, "others": others}
    return summary
