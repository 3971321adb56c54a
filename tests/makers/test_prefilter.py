"""The prefilter on real crystals: every reject has a reason, duplicates and known MP crystals are recognised."""

from __future__ import annotations

from pymatgen.core import Lattice, Structure

from pccd_flows.evaluation.novelty import NoveltyIndex
from pccd_flows.makers.prefilter import prefilter
from tests.factories import known_phase, make_candidate


def test_prefilter_judges_and_explains(mg_o_settings):
    mgo = known_phase("MgO")
    shifted = mgo.copy()
    shifted.translate_sites(range(len(shifted)), [0.1, 0.1, 0.1])  # the same crystal, other origin
    overlapping = Structure(Lattice.cubic(4.2), ["Mg", "O"], [[0, 0, 0], [0.01, 0, 0]])
    suboxide = Structure(Lattice.cubic(4.0), ["Mg", "Mg", "Mg", "O"],
                         [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    docs = [make_candidate(s, i) for i, s in enumerate([mgo, shifted, overlapping, suboxide])]
    judged = prefilter(docs, known=[], novelty_index=NoveltyIndex(mg_o_settings.data_file))
    first, duplicate, close, unbalanced = judged
    assert first.prefilter.passed and first.prefilter.novel is False and first.prefilter.matched_mp_id == "mp-1265"
    assert not duplicate.prefilter.passed and duplicate.prefilter.duplicate_of == first.candidate_id
    assert not close.prefilter.passed and "closer than 0.5 A" in close.prefilter.reject_reason
    assert not unbalanced.prefilter.passed and "SMACT" in unbalanced.prefilter.reject_reason
    assert prefilter(docs[3:], known=[], require_smact=False)[0].prefilter.passed
    # against the store: an earlier candidate that passed makes the same crystal a duplicate
    again = prefilter([make_candidate(shifted, 0, seed=5)], known=[first])[0]
    assert again.prefilter.duplicate_of == first.candidate_id
