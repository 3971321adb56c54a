"""The screening core's relaxation step on real structures and CHGNet: one chunk on one loaded potential, a failure
recorded on its candidate while the others complete, what is done not redone, other settings relaxing again."""

from __future__ import annotations

from jobflow import Flow, JobStore, run_locally
from maggma.stores import MemoryStore
from pymatgen.core import Lattice, Structure

from pccd_flows.makers import RelaxCandidatesMaker, StabilityMaker
from pccd_flows.pipeline import relax_candidates
from pccd_flows.schemas.candidate import PrefilterResult
from pccd_flows.stores.candidates import CandidateStore
from tests.factories import known_phase, make_candidate


def passed(structures: list[Structure]):
    return [make_candidate(s, i).model_copy(update={"prefilter": PrefilterResult(passed=True)})
            for i, s in enumerate(structures)]


def chunk_of_three():
    strained = known_phase("MgO")
    strained.apply_strain(0.03)
    overlapping = Structure(Lattice.cubic(3.0), ["Mg", "O"], [[0, 0, 0], [0, 0, 0]], validate_proximity=False)
    return passed([known_phase("MgO"), overlapping, strained])  # two atoms on one site: CHGNet's relaxation raises


def run(*jobs, tmp_path) -> None:
    run_locally(Flow(list(jobs)), store=JobStore(MemoryStore(), additional_stores={"data": MemoryStore()}),
                root_dir=tmp_path, log=False)


def test_a_chunk_records_the_failed_relaxation_and_completes_the_others(mg_o_environment, tmp_path):
    good, bad, strained = chunk_of_three()
    relaxed = RelaxCandidatesMaker(steps=20, chunk_size=3).make([good, bad, strained])
    judged = StabilityMaker(reference="mp-formation", relaxed_novelty=False).make(relaxed.output)
    run(relaxed, judged, tmp_path=tmp_path)

    store = CandidateStore()
    docs = {d.candidate_id: d for d in store.find({})}
    assert docs[bad.candidate_id].relaxation.error and docs[bad.candidate_id].stability is None
    for doc in (docs[good.candidate_id], docs[strained.candidate_id]):
        assert doc.relaxation.error is None and doc.relaxation.energy_per_atom < 0
        assert doc.stability.reference == "mp-formation" and abs(doc.e_above_hull) < 0.05
    # one chunk, one job: every relaxation records the same job (the potential was loaded once for all three)
    assert len({d.relaxation.task_uuid for d in docs.values()}) == 1
    assert {d.relaxation.steps for d in docs.values()} == {20}

    # the same settings again: nothing is relaxed again, the recorded failure included (the rule of the core)
    again = relax_candidates(list(docs.values()), "chgnet", 20, 0.05, store=store)
    assert {d.candidate_id: d.relaxation for d in again} == {cid: d.relaxation for cid, d in docs.items()}
    assert store.get(good.candidate_id).stability is not None  # and nothing judged was cleared

    # other settings: all three relaxed again, the old hull placements dropped until judged again
    other = relax_candidates(list(docs.values()), "chgnet", 25, 0.05, store=store)
    assert {d.relaxation.steps for d in other} == {25}
    assert all(d.relaxation.task_uuid != docs[d.candidate_id].relaxation.task_uuid for d in other)
    assert store.get(bad.candidate_id).relaxation.error
    assert store.get(good.candidate_id).stability is None


def test_a_chunk_run_again_after_an_interruption_relaxes_only_what_the_store_lacks(mg_o_environment):
    good, _, strained = chunk_of_three()
    store = CandidateStore()
    (first,) = relax_candidates([good], "chgnet", 20, 0.05, store=store)  # stored before the interruption
    store.upsert([strained])
    rerun = relax_candidates([good, strained], "chgnet", 20, 0.05, store=store)
    assert rerun[0].relaxation == first.relaxation  # reused from the store, not relaxed again
    assert rerun[1].relaxation.task_uuid != first.relaxation.task_uuid and rerun[1].relaxation.error is None
    assert store.get(strained.candidate_id).relaxation == rerun[1].relaxation


def test_chunks_follow_the_configured_size(mg_o_environment, monkeypatch):
    from pccd_flows.settings import get_settings

    docs = passed([known_phase("MgO")] * 5)
    docs = [d.model_copy(update={"candidate_id": f"pccd-{i}"}) for i, d in enumerate(docs)]
    assert [len(j.function_args[0]) for j in RelaxCandidatesMaker(chunk_size=2).chunk_jobs(docs)] == [2, 2, 1]
    monkeypatch.setenv("PCCD_RELAX_CHUNK_SIZE", "4")
    get_settings.cache_clear()
    jobs = RelaxCandidatesMaker().chunk_jobs(docs)
    assert [len(j.function_args[0]) for j in jobs] == [4, 1]
    assert all(j.name.startswith("relax chunk ") and "pccd-" in j.name for j in jobs)
    assert {j.config.manager_config["_category"] for j in jobs} == {"relax"}
    get_settings.cache_clear()
