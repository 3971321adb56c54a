"""Novelty of generated crystals: does any known (Materials Project) crystal of the same formula match?

Parsing all 153,342 CIFs of the full MP file would take ~8 minutes (3 ms each), so :class:`NoveltyIndex`
indexes the records by reduced formula and keeps their raw CIF text; only the crystals of a formula that is
asked about are parsed, once, and cached.
"""

from __future__ import annotations

import contextlib
import re
import time
import warnings
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

from pymatgen.core import Composition, Structure

import pccd_flows
from pccd_flows.data.io import read_records
from pccd_flows.evaluation.metrics import fits, reduced_formula, structure_matcher
from pccd_flows.settings import get_settings

# ../shared/data beside the repository root (pccd_flows/__init__.py -> parents[2] is the root's parent)
SHARED_MP_FILE = Path(pccd_flows.__file__).parents[2] / "shared" / "data" / "mp_all_structures.jsonl.gz"

_ELEMENT_SYMBOL = re.compile(r"[A-Z][a-z]?")
_CIF_FORMULA = re.compile(r"^_chemical_formula_sum\s+['\"]?([^'\"\n]+)", re.MULTILINE)


def default_novelty_source() -> Path:
    """All of MP (``../shared/data/mp_all_structures.jsonl.gz`` beside the repository) where present, else the
    bundled training set (``get_settings().data_file``)."""
    if SHARED_MP_FILE.is_file():
        return SHARED_MP_FILE
    return Path(get_settings().data_file)


class NoveltyIndex:
    """Known crystals by reduced formula, for novelty checks of generated structures.

    Built from a jsonl(.gz) (or MP-20-style CSV) data file, by default :func:`default_novelty_source`.
    Building reads every line but parses no CIF: the reduced formula comes from the record's ``formula`` field
    (pymatgen ``Composition(formula).reduced_formula``; a record without one falls back to the CIF's
    ``_chemical_formula_sum`` and, failing that, to parsing the CIF). The raw CIF strings are kept (~375 MB of
    text for the full MP file); the structures of a formula are parsed the first time a structure of that
    formula is checked, and cached.

    Measured build time (2-core machine, busy with a training run): full MP file, 153,342 records / 104,108
    reduced formulas, ~15 s; bundled training set (50,788 records), ~4 s. See :attr:`build_seconds`.
    """

    def __init__(self, path: str | Path | None = None, limit: int | None = None):
        self.source = Path(path) if path is not None else default_novelty_source()
        self.matcher = structure_matcher()
        self._cifs: dict[str, list[tuple[str, str]]] = defaultdict(list)
        self._parsed: dict[str, list[tuple[str, Structure]]] = {}
        self.n_records = 0
        started = time.perf_counter()
        formula_cache: dict[str, str] = {}
        for record in read_records(self.source, limit=limit):
            formula = record.formula
            if not formula:
                found = _CIF_FORMULA.search(record.cif)
                formula = found.group(1).strip() if found else None
            key = formula_cache.get(formula) if formula else None
            if key is None:
                key = self._reduced_formula(formula, record)
                if key is None:
                    continue
                if formula:
                    formula_cache[formula] = key
            self._cifs[key].append((record.material_id, record.cif))
            self.n_records += 1
        self._cifs = dict(self._cifs)
        self.build_seconds = time.perf_counter() - started

    @staticmethod
    def _reduced_formula(formula: str | None, record) -> str | None:
        try:
            if formula:
                return Composition(formula).element_composition.reduced_formula
            return reduced_formula(record.to_structure())
        except Exception:  # noqa: BLE001 - an unreadable record cannot make anything non-novel: skip it
            return None

    def __len__(self) -> int:
        return self.n_records

    def __contains__(self, formula: str) -> bool:
        """Whether any known crystal has this (reduced) formula."""
        return reduced_formula(formula) in self._cifs

    @property
    def formulas(self) -> int:
        return len(self._cifs)

    def formulas_within(self, elements) -> list[str]:
        """Reduced formulas of known crystals made only of ``elements`` (a chemical system and its subsystems)."""
        allowed = set(elements)
        within = []
        for formula in self._cifs:
            symbols = set(_ELEMENT_SYMBOL.findall(formula))
            if symbols <= allowed:
                within.append(formula)
        return within

    def known_structures(self, formula: str) -> list[tuple[str, Structure]]:
        """(material_id, structure) of the known crystals with this reduced formula, parsed on first use."""
        key = reduced_formula(formula)
        if key not in self._parsed:
            parsed = []
            for material_id, cif in self._cifs.get(key, ()):
                # a malformed CIF is no known crystal: skipped
                with contextlib.suppress(Exception), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    parsed.append((material_id, Structure.from_str(cif, fmt="cif")))
            self._parsed[key] = parsed
        return self._parsed[key]

    def find_match(self, structure: Structure) -> str | None:
        """The material_id of a known crystal that matches ``structure`` (StructureMatcher), or None."""
        for material_id, known in self.known_structures(reduced_formula(structure)):
            if fits(self.matcher, known, structure):
                return material_id
        return None

    def is_novel(self, structure: Structure) -> bool:
        """True when no known crystal with the same reduced formula matches ``structure``."""
        return self.find_match(structure) is None

    def __repr__(self) -> str:
        return f"NoveltyIndex({str(self.source)!r}, {self.n_records} records, {self.formulas} formulas)"


@lru_cache(maxsize=2)
def known_structure_index(path: Path | None = None) -> NoveltyIndex:
    """One index per file and process: building it reads the whole file."""
    return NoveltyIndex(path)


def relaxed_novelty(doc, novelty_index: NoveltyIndex):
    """The candidate's relaxed structure judged against ``novelty_index`` (a verdict stored against the same source
    is kept); uniqueness, which needs the whole run, is left as stored. None for an unrelaxed candidate."""
    from pccd_flows.schemas.candidate import RelaxedNoveltyResult

    if doc.relaxation is None or not doc.relaxation.structure:
        return None
    source, known = str(novelty_index.source), doc.relaxed_novelty
    if known is not None and known.source == source and known.novel is not None:
        return known
    matched = novelty_index.find_match(doc.final_structure())
    return RelaxedNoveltyResult(novel=matched is None, matched_mp_id=matched, source=source)
