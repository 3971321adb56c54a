"""The candidate store: idempotent upserts of ``CandidateDoc`` and the queries users run."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

from maggma.core import Store
from pydantic import BaseModel, Field, field_validator
from pymatgen.core import Element

from pccd_flows.schemas.candidate import CandidateDoc
from pccd_flows.stores.config import candidate_store, open_store

KEY = "candidate_id"

# What `pccd query --sort` can sort by: short names and the stored fields they stand for.
SORT_FIELDS = {
    "e_above_hull": "e_above_hull",
    "formation_energy_per_atom": "stability.formation_energy_per_atom",
    "energy_per_atom": "relaxation.energy_per_atom",
    "formula": "formula",
    "chemsys": "chemsys",
    "candidate_id": "candidate_id",
    "seed": "provenance.seed",
    "index": "provenance.index",
    "last_updated": "last_updated",
}


def _chemsys_elements(system: str) -> list[str]:
    parts = [part.strip() for part in system.replace(",", "-").split("-")]
    if not any(parts):
        raise ValueError(f"empty chemical system {system!r}: give elements, e.g. Ca-Sn-O")
    for part in parts:
        if not Element.is_valid_symbol(part):
            hint = f" (element symbols are case-sensitive: {part.capitalize()})" if Element.is_valid_symbol(
                part.capitalize()) else ""
            raise ValueError(f"unknown element {part!r} in chemical system {system!r}{hint}")
    return sorted(set(parts))


CONFIRM_BELOW = 0.1  # eV/atom: "stable" as the DFT check measures it


class CandidateQuery(BaseModel):
    """Filters of `pccd query`, turned into one MongoDB query (the same for MongoStore and MontyStore)."""

    chemsys: list[str] = Field(default_factory=list, description="e.g. ['Ca-Sn-O'] (any element order).")
    max_ehull: float | None = None
    stable_only: bool = Field(False, description="Only candidates on or below the hull (e_above_hull <= 0).")
    novel_only: bool = False
    confirmed_by: list[str] = Field(default_factory=list, description=(
        "Force fields whose verdict (CandidateDoc.judgements, `pccd validate judges`) must agree: their E_hull "
        "within the same bound (CONFIRM_BELOW without one)."))
    sort: str = Field("e_above_hull", description=f"One of {', '.join(SORT_FIELDS)} (or the stored field name).")
    limit: int | None = Field(None, ge=1)

    @field_validator("chemsys")
    @classmethod
    def _known_elements(cls, systems: list[str]) -> list[str]:
        for system in systems:
            _chemsys_elements(system)
        return systems

    @field_validator("confirmed_by")
    @classmethod
    def _force_fields(cls, engines: list[str]) -> list[str]:
        from pccd_flows.stability.engines import FORCE_FIELDS

        unknown = [e for e in engines if e not in FORCE_FIELDS]
        if unknown:
            raise ValueError(f"--confirmed-by {unknown[0]!r}: choose from {', '.join(FORCE_FIELDS)}")
        return engines

    @field_validator("max_ehull")
    @classmethod
    def _sensible_bound(cls, value: float | None) -> float | None:
        # E_hull is >= 0 up to the reference's own scatter: a negative bound is a typo, not a query (use
        # --stable-only for "on or below the hull")
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise ValueError(f"--max-ehull {value}: must be a number >= 0 (eV/atom above the hull)")
        return value

    @field_validator("sort")
    @classmethod
    def _known_sort(cls, value: str) -> str:
        if value not in SORT_FIELDS and value not in SORT_FIELDS.values():
            raise ValueError(f"cannot sort by {value!r}: choose one of {', '.join(SORT_FIELDS)}")
        return value

    @property
    def sort_field(self) -> str:
        return SORT_FIELDS.get(self.sort, self.sort)

    def criteria(self) -> dict:
        criteria: dict = {}
        if self.chemsys:
            criteria["chemsys"] = {"$in": ["-".join(_chemsys_elements(c)) for c in self.chemsys]}
        bound = 0.0 if self.stable_only else self.max_ehull
        if self.stable_only and self.max_ehull is not None:
            bound = min(0.0, self.max_ehull)
        if bound is not None:
            criteria["e_above_hull"] = {"$lte": bound}
        for engine in self.confirmed_by:
            # the DFT check of run 3: "stable at 0.1" by CHGNet and SevenNet-0 together held for 0.88 of the
            # candidates (CHGNet alone 0.62), docs/stability.md
            criteria[f"judgements.{engine}.e_above_hull"] = {"$lte": CONFIRM_BELOW if bound is None else bound}
        if self.novel_only:
            # the verdict on the relaxed structure where there is one (a new generated crystal can relax onto a
            # known one), else the prefilter's on the generated structure
            criteria["$or"] = [{"relaxed_novelty.novel": True},
                               {"relaxed_novelty": None, "prefilter.novel": True}]
        return criteria


class CandidateStore:
    """A maggma store of candidates keyed by ``candidate_id``: writing the same candidate twice updates it."""

    def __init__(self, store: Store | None = None):
        self.store = store if store is not None else candidate_store()

    def upsert(self, docs: Iterable[CandidateDoc]) -> int:
        rows = [candidate_row(doc) for doc in docs]
        if rows:
            with open_store(self.store) as store:
                store.update(rows, key=KEY)
        return len(rows)

    def patch(self, updates: dict[str, dict]) -> int:
        """Set some fields of stored candidates (candidate_id -> {field: value}), read and written under one lock:
        two processes that each set their own field (a DFT check, a novelty verdict) lose nothing of the other's."""
        if not updates:
            return 0
        with open_store(self.store) as store:
            rows = {row[KEY]: row for row in store.query({KEY: {"$in": list(updates)}})}
            docs = [CandidateDoc.model_validate(_strip(rows[cid])).model_copy(update=fields)
                    for cid, fields in updates.items() if cid in rows]
            if docs:
                store.update([candidate_row(doc) for doc in docs], key=KEY)
        return len(docs)

    def get(self, candidate_id: str) -> CandidateDoc | None:
        with open_store(self.store) as store:
            row = store.query_one({KEY: candidate_id})
        return CandidateDoc.model_validate(_strip(row)) if row else None

    def ids(self, criteria: dict | None = None) -> set[str]:
        with open_store(self.store) as store:
            return set(store.distinct(KEY, criteria or {}))

    def count(self, criteria: dict | None = None) -> int:
        with open_store(self.store) as store:
            return store.count(criteria or {})

    def find(self, criteria: dict | None = None, sort: str | None = None, limit: int | None = None
             ) -> Iterator[CandidateDoc]:
        with open_store(self.store) as store:
            rows = list(store.query(criteria or {}, sort={sort: 1} if sort else None, limit=limit or 0))
        for row in rows:
            yield CandidateDoc.model_validate(_strip(row))

    def search(self, query: CandidateQuery) -> list[CandidateDoc]:
        """Candidates with a value of the sort field first, in order; then those without it: the ones not judged
        yet, then the prefilter's rejects (MongoDB would list the missing values first: a `--limit 3` of rejects)."""
        field, criteria, remaining = query.sort_field, query.criteria(), query.limit
        groups = [
            ({field: {"$ne": None}}, field),
            ({field: None, "prefilter.passed": {"$ne": False}}, KEY),
            ({field: None, "prefilter.passed": False}, KEY),
        ]
        docs: list[CandidateDoc] = []
        for extra, sort in groups:
            if remaining is not None and remaining <= 0:
                break
            found = list(self.find({"$and": [criteria, extra]} if criteria else extra, sort=sort, limit=remaining))
            docs += found
            if remaining is not None:
                remaining -= len(found)
        return docs


def _strip(row: dict) -> dict:
    return {k: v for k, v in row.items() if k != "_id"}


def candidate_row(doc: CandidateDoc) -> dict:
    """The stored form: JSON types, except ``last_updated`` kept a datetime (maggma's convention)."""
    row = doc.model_dump(mode="json")
    row["last_updated"] = doc.last_updated
    return row
