"""The prefilter on real crystals: every reject has a reason, duplicates and known MP crystals are recognised."""

from __future__ import annotations

import pytest
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


def test_physical_screening_options_reject_close_atoms_and_unusual_valences():
    mgo = known_phase("MgO")
    squeezed = Structure(Lattice.cubic(5.0), ["Mg", "O"], [[0, 0, 0], [0.25, 0, 0]])  # 1.25 A: 0.60 of Mg+O
    peroxide = Structure(Lattice.cubic(4.5), ["Mg", "O", "O"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0.2]])
    docs = [make_candidate(s, i) for i, s in enumerate([mgo, squeezed, peroxide])]
    loose = prefilter(docs, known=[])
    assert all(d.prefilter.passed for d in loose[:2])
    assert loose[1].prefilter.closest_covalent_ratio == pytest.approx(1.25 / 2.07, abs=1e-3)
    strict = prefilter(docs, known=[], min_covalent_ratio=0.65, require_icsd_oxidation_states=True)
    assert strict[0].prefilter.passed and strict[0].prefilter.icsd_charge_balanced
    assert "covalent radii" in strict[1].prefilter.reject_reason
    assert strict[2].prefilter.icsd_charge_balanced is False
    assert "ICSD" in strict[2].prefilter.reject_reason
