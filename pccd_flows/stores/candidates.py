"""The candidate store: idempotent upserts of ``CandidateDoc`` and the queries users run."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from maggma.core import Store
from pydantic import BaseModel, Field

from pccd_flows.schemas.candidate import CandidateDoc
from pccd_flows.stores.config import candidate_store, open_store

KEY = "candidate_id"


class CandidateQuery(BaseModel):
    """Filters of `pccd query`, turned into one MongoDB query (the same for MongoStore and MontyStore)."""

    chemsys: list[str] = Field(default_factory=list, description="e.g. ['Ca-Sn-O'] (any element order).")
    max_ehull: float | None = None
    stable_only: bool = Field(False, description="Only candidates on or below the hull (e_above_hull <= 0).")
    novel_only: bool = False
    sort: str = "e_above_hull"
    limit: int | None = None

    def criteria(self) -> dict:
        criteria: dict = {}
        if self.chemsys:
            criteria["chemsys"] = {"$in": ["-".join(sorted(c.replace(",", "-").split("-"))) for c in self.chemsys]}
        bound = 0.0 if self.stable_only else self.max_ehull
        if self.stable_only and self.max_ehull is not None:
            bound = min(0.0, self.max_ehull)
        if bound is not None:
            criteria["e_above_hull"] = {"$lte": bound}
        if self.novel_only:
            criteria["prefilter.novel"] = True
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
        return list(self.find(query.criteria(), sort=query.sort or None, limit=query.limit))


def _strip(row: dict) -> dict:
    return {k: v for k, v in row.items() if k != "_id"}


def candidate_row(doc: CandidateDoc) -> dict:
    """The stored form: JSON types, except ``last_updated`` kept a datetime (maggma's convention)."""
    row = doc.model_dump(mode="json")
    row["last_updated"] = doc.last_updated
    return row
