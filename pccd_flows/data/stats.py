"""Counts that describe a crystal data set: sizes, chemistry and which properties are known."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from pydantic import BaseModel

from pccd_flows.codec.errors import CodecError
from pccd_flows.data.records import MaterialRecord

PROPERTIES = ("formation_energy_per_atom", "band_gap", "total_magnetization", "magnetic_ordering")


class PropertyCoverage(BaseModel):
    count: int
    fraction: float


class DataStats(BaseModel):
    n_records: int
    by_nelements: dict[int, int]
    by_nsites: dict[int, int]
    property_coverage: dict[str, PropertyCoverage]
    unreadable: int = 0


def compute_stats(records: Iterable[MaterialRecord]) -> DataStats:
    by_nelements: Counter[int] = Counter()
    by_nsites: Counter[int] = Counter()
    known: Counter[str] = Counter()
    n_records = unreadable = 0
    for record in records:
        n_records += 1
        nsites, nelements = record.nsites, record.nelements
        if nsites is None or nelements is None:  # CSV sources do not say: read the structure
            try:
                structure = record.to_structure()
            except CodecError:
                unreadable += 1
                continue
            nsites, nelements = len(structure), len(structure.composition.elements)
        by_nelements[nelements] += 1
        by_nsites[nsites] += 1
        for name in PROPERTIES:
            known[name] += getattr(record, name) is not None
    return DataStats(
        n_records=n_records,
        by_nelements=dict(sorted(by_nelements.items())),
        by_nsites=dict(sorted(by_nsites.items())),
        property_coverage={
            name: PropertyCoverage(count=known[name], fraction=known[name] / n_records if n_records else 0.0)
            for name in PROPERTIES
        },
        unreadable=unreadable,
    )
