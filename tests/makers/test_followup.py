"""The follow-up flow: GPAW relaxation + bands + CHGNet phonons of a candidate, the DFT stability check against its
decomposition products, the candidate document updated; the VASP variant's inputs; the attachment to screening."""

from __future__ import annotations

import pytest
from jobflow import Flow, JobStore, run_locally
from maggma.stores import MemoryStore
from pymatgen.core import Lattice, Structure

from pccd_flows.followup.gpaw import GpawSettings
from pccd_flows.makers import FollowUpCandidatesMaker, FollowUpFlowMaker
from pccd_flows.settings import PccdSettings
from pccd_flows.stores.candidates import CandidateStore
from pccd_flows.stores.config import candidate_store
from tests.factories import known_phase, make_candidate

# zinc-blende MgO: a real polymorph above rock salt, made of the same atoms (decomposes into rock-salt MgO)
ZINC_BLENDE_MGO = Structure.from_spacegroup("F-43m", Lattice.cubic(4.55), ["Mg", "O"], [[0, 0, 0], [0.25, 0.25, 0.25]])


def memory_job_store() -> JobStore:
    store = JobStore(MemoryStore(), additional_stores={"data": MemoryStore()})
    store.connect()
    return store


def test_follow_up_confirms_a_metastable_polymorph_with_dft_and_updates_its_document(tmp_path):
    candidates = CandidateStore(candidate_store(PccdSettings(store_dir=tmp_path / "store")))
    doc = make_candidate(ZINC_BLENDE_MGO, 0, e_above_hull=0.07)
    candidates.upsert([doc])
    maker = FollowUpFlowMaker(dft="gpaw", phonons="chgnet", category=None, store=candidates.store,
                              gpaw_settings=GpawSettings(kpoint_density=2.0, band_kpoint_density=4))
    flow = maker.make(ZINC_BLENDE_MGO, doc.candidate_id, products={"MgO": (1.0, known_phase("MgO"))})
    responses = run_locally(flow, store=memory_job_store(), create_folders=True, root_dir=tmp_path, log=False)
    result = responses[flow.jobs[-1].uuid][1].output
    assert result.errors == []
    # PBE puts zinc blende ~0.1 eV/atom above rock salt
    assert 0.05 < result.dft_stability.e_above_hull < 0.2
    assert result.dft_stability.decomposition == {"MgO": 1.0}
    assert 2.5 < result.bands.band_gap < 4.5  # a wide-gap insulator, below rock salt's 4.5 eV
    assert result.phonons.engine == "chgnet" and result.phonons.has_imaginary_modes is False
    stored = candidates.get(doc.candidate_id)
    assert stored.band_gap == result.bands.band_gap and stored.phonon_stable is True
    assert stored.follow_up.dft_stability.e_above_hull == result.dft_stability.e_above_hull
    assert stored.follow_up.settings["gpaw"]["ecut"] == 800


def test_vasp_follow_up_builds_mp_relaxation_line_bands_and_phonons(tmp_path):
    flow = FollowUpFlowMaker(dft="vasp", phonons="vasp").make(known_phase("MgO"))
    jobs = [job for job, _ in flow.iterflow()]
    names = [job.name for job in jobs]
    assert any("relax" in n for n in names) and any(n.endswith("line") for n in names)
    assert any("phonon" in n.lower() for n in names)
    relax = next(job for job in jobs if "relax" in job.name)
    maker = relax.maker
    inputs = maker.input_set_generator.get_input_set(known_phase("MgO"), potcar_spec=True)
    inputs.write_input(tmp_path)
    assert {"INCAR", "KPOINTS", "POSCAR", "POTCAR.spec"} <= {p.name for p in tmp_path.iterdir()}
    assert inputs.incar["ENCUT"] == 520 and inputs.incar["ISIF"] == 3  # MP's GGA relaxation
    line = next(job for job in jobs if job.name.endswith("line"))
    assert line.function_kwargs.get("mode") == "line"


def test_only_candidates_under_the_threshold_are_followed_up():
    stable = make_candidate(known_phase("MgO"), 0, e_above_hull=0.02)
    unstable = make_candidate(ZINC_BLENDE_MGO, 1, e_above_hull=0.30)
    maker = FollowUpCandidatesMaker(follow_up=FollowUpFlowMaker(dft=None, phonons="chgnet", category=None),
                                    max_e_above_hull=0.08)
    response = maker.make([stable, unstable]).run(store=memory_job_store())
    assert isinstance(response.addition, Flow)
    follow_ups = response.addition.jobs
    assert len(follow_ups) == 1 and "MgO" in follow_ups[0].name
    assert follow_ups[0].jobs[-1].function_args[0] == stable.candidate_id


def test_screening_attaches_follow_ups_that_write_to_its_store(tmp_path):
    from pccd_flows.makers import ScreeningFlowMaker

    store = candidate_store(PccdSettings(store_dir=tmp_path / "store"))
    maker = ScreeningFlowMaker(follow_up=FollowUpCandidatesMaker(max_e_above_hull=0.1))
    flow = maker.make(["Mg-O"], store=store)
    (follow_up,) = [job for job in flow.jobs if job.name == "follow up Mg-O"]
    attached = follow_up.maker.follow_up.store  # jobflow keeps a copy of the maker
    assert (attached.database_path, attached.collection_name) == (store.database_path, store.collection_name)
    assert follow_up.maker.max_e_above_hull == 0.1


def test_a_force_field_relaxation_is_for_gpaw_bands_and_cannot_back_a_dft_stability_check():
    maker = FollowUpFlowMaker(dft="gpaw", phonons="chgnet", relax_with="chgnet", category=None)
    with pytest.raises(ValueError, match="DFT-relaxed"):
        maker.make(ZINC_BLENDE_MGO, "pccd-x", products={"MgO": (1.0, known_phase("MgO"))})
    names = [job.name for job, _ in maker.make(ZINC_BLENDE_MGO).iterflow()]
    assert "chgnet relax MgO" in names and not any(n.startswith("gpaw relax") for n in names)
    # CHGNet relaxed it: no second relaxation from the start, only the phonon flow's tight one after symmetrizing
    assert not any("before phonons" in n for n in names) and "symmetrize for phonons MgO" in names
    with pytest.raises(ValueError, match="force field"):
        FollowUpFlowMaker(dft="gpaw", relax_with="mace").make(ZINC_BLENDE_MGO)
    with pytest.raises(ValueError, match="GPAW only"):
        FollowUpFlowMaker(dft="vasp", relax_with="chgnet").make(ZINC_BLENDE_MGO)


def test_gpaw_bands_at_a_chgnet_relaxed_geometry(tmp_path):
    strained = known_phase("MgO").copy()
    strained.apply_strain(0.05)
    maker = FollowUpFlowMaker(dft="gpaw", phonons=None, relax_with="chgnet", category=None,
                              gpaw_settings=GpawSettings(ecut=400, kpoint_density=2.0, band_kpoint_density=3))
    flow = maker.make(strained)
    responses = run_locally(flow, store=memory_job_store(), create_folders=True, root_dir=tmp_path, log=False)
    result = responses[flow.jobs[-1].uuid][1].output
    assert result.errors == [] and result.relax_engine == "chgnet" and result.dft_engine == "gpaw"
    relaxed = Structure.from_dict(result.relaxed_structure)
    # CHGNet undid the 5% strain (MP's PBE cell: a = 4.26 A conventional, 3.01 A primitive)
    assert 2.95 < relaxed.lattice.a < 3.07
    assert 4.0 < result.bands.band_gap < 5.0 and result.bands.is_gap_direct
    assert result.settings["relax"] == {"engine": "chgnet", "fmax": 0.001} and result.settings["gpaw"]["ecut"] == 400
