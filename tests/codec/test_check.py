from __future__ import annotations

from pccd_flows.codec.check import check_codec


def test_bad_input_is_skipped_counted_and_the_batch_goes_on(bundled_sample, bad_record_set):
    records = [*bundled_sample[:30], *bad_record_set.values(), *bundled_sample[30:40]]
    report = check_codec(records, workers=2)
    assert report.n_input == 45 and report.n == 40 and report.n_skipped == 5
    assert report.skipped_by_reason == {reason: 1 for reason in bad_record_set}
    assert {s.material_id for s in report.skipped} == {r.material_id for r in bad_record_set.values()}
    assert report.atom_count_exact_rate == report.composition_exact_rate == report.structure_match_rate == 1.0
    assert report.failures == []


def test_failures_are_reported_not_hidden(bundled_sample):
    from pccd_flows.codec.settings import CodecSettings

    # A radius wider than most interatomic distances merges neighbours of one element: the check must say so.
    coarse = CodecSettings(cluster_eps=4.0)
    report = check_codec(bundled_sample[:40], settings=coarse)
    assert report.structure_match_rate < 1.0
    assert len(report.failures) >= round((1 - report.structure_match_rate) * report.n) > 0
    assert all(not (f.atom_count_exact and f.composition_exact and f.structure_match) for f in report.failures)


def test_noise_option_perturbs_reproducibly(bundled_sample):
    clean = check_codec(bundled_sample[:20])
    noisy = check_codec(bundled_sample[:20], noise=0.01)
    again = check_codec(bundled_sample[:20], noise=0.01)
    assert noisy.noise == 0.01 and clean.noise == 0.0
    assert noisy.max_lattice_length_rel_error > 1e-3 > clean.max_lattice_length_rel_error
    assert noisy.max_lattice_length_rel_error == again.max_lattice_length_rel_error
    assert noisy.composition_exact_rate == 1.0
    much = check_codec(bundled_sample[:20], noise=0.2)
    assert much.structure_match_rate < 1.0
