"""The generation job: conditions (elements, or an exact composition) reach the sampler and the record."""

from __future__ import annotations

from jobflow import run_locally
from monty.json import MontyDecoder, jsanitize

from pccd_flows.makers import GenerateCandidatesMaker


def test_a_composition_request_survives_serialisation_and_is_recorded(tiny_checkpoint, tmp_path):
    maker = GenerateCandidatesMaker(checkpoint=str(tiny_checkpoint), n=2, steps=3, composition="O2Mg2")
    # FireWorks specs hold the maker as JSON
    maker = MontyDecoder().process_decoded(jsanitize(maker.as_dict(), strict=True))
    job = maker.make("Mg-O")
    docs = run_locally(job, root_dir=tmp_path, log=False, ensure_success=True)[job.uuid][1].output
    assert len(docs) == 2
    assert {d.provenance.conditions.composition for d in docs} == {"Mg2O2"}
    assert docs[0].candidate_id != docs[1].candidate_id

