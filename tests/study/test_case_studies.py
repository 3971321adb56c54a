"""The case studies (paper Fig. 4) on a real Ca2SnO4: the lowest-E_hull candidate of the composition is chosen,
relaxed and its phonons computed with CHGNet, JSON, figures and the candidate document written. (GPAW bands of a
14-atom cell take over 10 minutes here; the CHGNet-relaxation-then-GPAW-bands path is tested on MgO in
tests/makers/test_followup.py.)"""

from __future__ import annotations

import json

from pymatgen.core import Structure

from pccd_flows.followup.phonons import PhononSettings
from pccd_flows.makers.followup import FollowUpFlowMaker
from pccd_flows.settings import PccdSettings
from pccd_flows.stores.candidates import CandidateStore
from pccd_flows.stores.config import candidate_store
from pccd_flows.study.case_studies import generate_more, run_case_studies
from pccd_flows.study.paper746 import StudySpec
from tests.factories import known_phase, make_candidate

SPEC = StudySpec(name="paper-746", reference="mp-formation")


def study_candidate(structure: Structure, index: int, e_above_hull: float):
    """A candidate as the study leaves it: relaxed with the study's settings and judged against its reference."""
    from pccd_flows.pipeline import relaxation_settings

    doc = make_candidate(structure, index, e_above_hull=e_above_hull, novel=True)
    doc.study, doc.prefilter.passed = "paper-746", True
    doc.relaxation = doc.relaxation.model_copy(update=relaxation_settings(SPEC.engine, SPEC.relax_steps,
                                                                          SPEC.relax_fmax))
    return doc


def test_case_study_follows_up_the_most_stable_candidate_of_the_composition(tmp_path):
    candidates = CandidateStore(candidate_store(PccdSettings(store_dir=tmp_path / "store")))
    ground_state = known_phase("Ca2SnO4")  # mp-4747, Pbam
    strained = ground_state.copy()
    strained.apply_strain(0.04)
    best, worse = study_candidate(ground_state, 0, 0.01), study_candidate(strained, 1, 0.09)
    candidates.upsert([worse, best])
    # a 6 A supercell (56 atoms) instead of 12 A (336): the test is about the driver, not converged phonons
    maker = FollowUpFlowMaker(dft=None, phonons="chgnet", category=None, store=candidates.store,
                              phonon_settings=PhononSettings(min_length=6.0))

    (row,) = run_case_studies(candidates, SPEC, tmp_path / "out", maker, extra_samples=0,
                              formulas=["Ca2SnO4"], log=lambda message: None)

    assert row["candidate_id"] == best.candidate_id and row["errors"] == []
    assert isinstance(row["min_frequency_thz"], float) and row["phonon_engine"] == "chgnet"
    assert row["space_group"] == "Pbam" and row["chgnet_e_above_hull"] == 0.01
    assert row["settings"]["phonons"]["min_length"] == 6.0
    assert row["provenance"]["checkpoint_sha256"] == best.provenance.checkpoint_sha256
    written = json.loads((tmp_path / "out" / "case_studies.json").read_text())
    assert written[0]["min_frequency_thz"] == row["min_frequency_thz"]
    assert {"Ca2SnO4_phonon_dispersion.png", "Ca2SnO4_phonon_dos.png"} <= {p.name for p in
                                                                            (tmp_path / "out").iterdir()}
    stored = candidates.get(best.candidate_id)
    assert stored.phonon_stable is (not row["has_imaginary_modes"])
    assert stored.follow_up.phonons.min_frequency_thz == row["min_frequency_thz"]
    assert candidates.get(worse.candidate_id).follow_up is None


def test_a_composition_the_study_lacks_is_generated_as_that_composition(tmp_path):
    """Mg3CdO4: the study's element-conditioned batches made none; the case study asks for the composition."""
    candidates = CandidateStore(candidate_store(PccdSettings(store_dir=tmp_path / "store")))
    spec = StudySpec(name="paper-746", sampler_steps=30)

    pool = generate_more(candidates, spec, "Mg3CdO4", 8, log=lambda message: None)

    generated = list(candidates.find({"study": "paper-746-case-studies"}))
    assert len(generated) == 8
    # how best_candidate knows that the composition was generated before (it generates once)
    assert candidates.count({"study": "paper-746-case-studies", "provenance.conditions.composition": "Mg3CdO4"}) == 8
    assert all(d.provenance.conditions.composition == "Mg3CdO4" for d in generated)
    assert sum(d.formula == "Mg3CdO4" for d in generated) >= 4
    assert pool and all(d.formula == "Mg3CdO4" and d.prefilter.passed for d in pool)
