"""The DFT validation's sample: seeded, stratified by the relaxing force field's own verdict, and unchanged by
what is added to the store later (another study's candidates, a confirmation of the verdicts)."""

from __future__ import annotations

from maggma.stores import MemoryStore

from pccd_flows.pipeline.judge import with_consensus
from pccd_flows.schemas.candidate import StabilityResult
from pccd_flows.stores.candidates import CandidateStore
from pccd_flows.validation.dft import select_candidates
from tests.factories import make_candidate


def judged(structures, study: str, start: int = 0):
    docs = []
    for i, (_, structure) in enumerate(structures):
        doc = make_candidate(structure, start + i, e_above_hull=round(0.3 * (i % 7) / 6, 3))
        docs.append(doc.model_copy(update={"study": study}))
    return docs


def test_the_sample_of_a_study_ignores_later_candidates_and_confirmations(bundled_structures):
    plain = [(n, s) for n, s in bundled_structures
             if not {e.symbol for e in s.composition.elements} & {"Co", "Cr", "Fe", "Mn", "Mo", "Ni", "V", "W"}]
    store = CandidateStore(MemoryStore())
    store.upsert(judged(plain[:40], "study-a"))
    before = select_candidates(12, seed=3, store=store.store, study="study-a")
    assert len(before) == 12 and before == select_candidates(12, seed=3, store=store.store)
    # a case study's candidates join the store: the study's sample stays, the store-wide one moves
    store.upsert(judged(plain[40:80], "study-a-case-studies", start=1000))
    assert select_candidates(12, seed=3, store=store.store, study="study-a") == before
    assert select_candidates(12, seed=3, store=store.store) != before
    # the verdicts are confirmed by a second force field (stability becomes the higher E_hull): same sample
    confirmed = []
    for doc in store.find({"study": "study-a"}):
        second = StabilityResult.from_hull(doc.e_above_hull + 0.2, reference="mp-formation",
                                           reference_fingerprint="f" * 16, engine="sevennet")
        confirmed.append(with_consensus(doc.model_copy(update={"judgements": {"sevennet": second}}), ["sevennet"]))
    assert all(d.stability.engine == "chgnet+sevennet" for d in confirmed)
    store.upsert(confirmed)
    assert select_candidates(12, seed=3, store=store.store, study="study-a") == before


def test_the_report_measures_the_sample_only(bundled_structures, mg_o_environment):
    import json

    from typer.testing import CliRunner

    from pccd_flows.cli import app
    from pccd_flows.schemas.followup import DftStabilityResult

    plain = [(n, s) for n, s in bundled_structures
             if not {e.symbol for e in s.composition.elements} & {"Co", "Cr", "Fe", "Mn", "Mo", "Ni", "V", "W",
                                                                    "Ce", "Nd", "Sm", "Gd"}]
    docs = [make_candidate(s, i, e_above_hull=e).model_copy(update={"study": "s"})
            for i, ((_, s), e) in enumerate(zip(plain, (0.02, 0.05, 0.15, 0.2, 0.03, 0.12), strict=False))]
    store = CandidateStore()
    store.upsert(docs)
    sample = select_candidates(4, seed=0, study="s")
    # DFT: of the sample's two called stable at 0.1 one holds; the near ones are not stable; a check outside the
    # sample (a case study's pick) that would add a false "stable" call is left out
    dft = {}
    stable_calls = [c for c in sample if store.get(c).e_above_hull <= 0.1]
    for cid in sample:
        dft[cid] = 0.05 if cid == stable_calls[0] else 0.15 if cid in stable_calls else 0.25
    outside = next(d.candidate_id for d in docs if d.candidate_id not in sample and d.e_above_hull <= 0.1)
    dft[outside] = 0.3
    store.patch({cid: {"dft_check": DftStabilityResult(engine="gpaw", e_above_hull=value, protocol="single-point",
                                                       judge_engine="chgnet",
                                                       judge_e_above_hull=store.get(cid).e_above_hull)}
                 for cid, value in dft.items()})
    result = CliRunner().invoke(app, ["validate", "report", "--study", "s", "--n", "4", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n"] == 4 and outside not in {c["candidate_id"] for c in report["candidates"]}
    assert report["default_judge"] == "chgnet"  # the tests' configuration: no confirming force field
    chgnet = report["judges"]["chgnet"]
    assert (chgnet["precision_at_100meV"], chgnet["recall_at_100meV"]) == (0.5, 1.0)
