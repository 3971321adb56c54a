"""The judging step: a chemical system without references is recorded in the stability job's output and its
candidates stay unjudged, while the job completes and judges the other systems."""

from __future__ import annotations

from jobflow import JobStore, run_locally
from maggma.stores import MemoryStore

from pccd_flows.makers import StabilityMaker
from pccd_flows.pipeline import relax_candidates, unjudged_reasons
from pccd_flows.schemas.candidate import PrefilterResult
from pccd_flows.stores.candidates import CandidateStore
from tests.factories import known_phase, make_candidate


def test_a_system_without_references_is_recorded_and_the_others_judged(mg_o_environment, tmp_path):
    # the Mg-O world has no Zn structure: ZnO has no hull there
    docs = [make_candidate(known_phase(f), i).model_copy(update={"prefilter": PrefilterResult(passed=True)})
            for i, f in enumerate(("MgO", "ZnO"))]
    store = CandidateStore()
    relaxed = relax_candidates(docs, "chgnet", 10, 0.05, store=store)
    job = StabilityMaker(reference="mp-structures", relaxed_novelty=False).make(relaxed)
    responses = run_locally(job, store=JobStore(MemoryStore(), additional_stores={"data": MemoryStore()}),
                            root_dir=tmp_path, log=False, ensure_success=True)
    output = responses[job.uuid][1].output
    assert set(output.reference_errors) == {"O-Zn"} and "Zn" in output.reference_errors["O-Zn"]
    mgo, zno = (store.get(d.candidate_id) for d in docs)
    assert mgo.stability is not None and abs(mgo.e_above_hull) < 0.1
    assert zno.relaxation.energy_per_atom is not None and zno.stability is None
    # what the commands read at the end to exit non-zero, and why
    assert set(unjudged_reasons([mgo, zno], "mp-structures", "chgnet")) == {"O-Zn"}
