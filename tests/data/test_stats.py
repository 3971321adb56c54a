from __future__ import annotations

from collections import Counter

from pccd_flows.data.records import MaterialRecord
from pccd_flows.data.stats import compute_stats


def test_counts_match_the_records(bundled_sample):
    stats = compute_stats(bundled_sample)
    assert stats.n_records == len(bundled_sample)
    assert stats.by_nelements == dict(sorted(Counter(r.nelements for r in bundled_sample).items()))
    assert sum(stats.by_nsites.values()) == len(bundled_sample)
    expected_gaps = sum(r.band_gap is not None for r in bundled_sample)
    assert stats.property_coverage["band_gap"].count == expected_gaps
    assert stats.property_coverage["band_gap"].fraction == expected_gaps / len(bundled_sample)
    assert stats.property_coverage["magnetic_ordering"].count == 0  # not in the bundled MP 2018 properties


def test_sizes_are_read_from_the_structure_when_the_source_does_not_say(bundled_sample):
    anonymous = [MaterialRecord(material_id=r.material_id, cif=r.cif) for r in bundled_sample[:20]]
    assert compute_stats(anonymous).by_nsites == compute_stats(bundled_sample[:20]).by_nsites
    broken = [*anonymous, MaterialRecord(material_id="broken", cif="data_x\n")]
    assert compute_stats(broken).unreadable == 1
