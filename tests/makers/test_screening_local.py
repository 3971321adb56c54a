"""The screening flow with jobflow's run_locally: tiny model, a few candidates, CHGNet with few steps."""

from __future__ import annotations

from jobflow import JobStore, run_locally
from maggma.stores import MemoryStore

from pccd_flows.makers import (
    GenerateCandidatesMaker,
    PrefilterMaker,
    RelaxCandidatesMaker,
    ScreeningFlowMaker,
    StabilityMaker,
)
from pccd_flows.stores.candidates import CandidateStore


def screening_maker(checkpoint, n: int = 3) -> ScreeningFlowMaker:
    return ScreeningFlowMaker(
        # novelty and SMACT have their own tests (the MP index takes a minute; the Mg-O crystals of a 10-step DDIM
        # are rarely charge-balanced, and relaxation must run here)
        prefilter=PrefilterMaker(check_novelty=False, require_smact=False),
        generate=GenerateCandidatesMaker(checkpoint=str(checkpoint), n=n, seed=0,
                                         steps=10),
        relax=RelaxCandidatesMaker(steps=5),
        stability=StabilityMaker(reference="mp-formation"),
    )


def test_screening_runs_locally_and_reruns_without_duplicates(mg_o_environment, tmp_path):
    # the shipped checkpoint (the tiny test model's crystals would not pass the prefilter, so nothing would relax)
    checkpoint = mg_o_environment.checkpoint
    run_locally(screening_maker(checkpoint, n=4).make(["Mg-O"]), store=JobStore(MemoryStore(), additional_stores={"data": MemoryStore()}), root_dir=tmp_path,
                log=False)
    store = CandidateStore()
    docs = list(store.find({}))
    assert len(docs) == 4
    assert all(d.provenance.checkpoint_sha256 and d.provenance.sampler.steps == 10 for d in docs)
    assert all(d.prefilter.passed or d.prefilter.reject_reason for d in docs)
    judged = [d for d in docs if d.stability is not None]
    assert judged, [d.prefilter.reject_reason or d.relaxation for d in docs]
    for doc in judged:
        assert doc.relaxation.engine == "chgnet" and doc.relaxation.energy_per_atom < 0
        assert doc.stability.reference == "mp-formation" and doc.e_above_hull == doc.stability.e_above_hull
    before = {d.candidate_id: d.stability for d in docs}
    run_locally(screening_maker(checkpoint, n=4).make(["Mg-O"]), store=JobStore(MemoryStore(), additional_stores={"data": MemoryStore()}), root_dir=tmp_path,
                log=False)
    assert store.count() == 4
    assert {d.candidate_id: d.stability for d in store.find({})} == before  # nothing lost or recomputed


def test_a_failed_relaxation_fizzles_only_its_candidate(mg_o_environment, tmp_path):
    from pymatgen.core import Lattice, Structure

    from pccd_flows.schemas.candidate import PrefilterResult
    from tests.factories import known_phase, make_candidate

    good = make_candidate(known_phase("MgO"), 0)
    overlapping = Structure(Lattice.cubic(3.0), ["Mg", "O"], [[0, 0, 0], [0, 0, 0]], validate_proximity=False)
    bad = make_candidate(overlapping, 1)  # two atoms on one site: CHGNet's relaxation raises
    docs = [d.model_copy(update={"prefilter": PrefilterResult(passed=True)}) for d in (good, bad)]
    relaxed = RelaxCandidatesMaker(steps=5).make(docs)
    judged = StabilityMaker(reference="mp-formation").make(relaxed.output)
    from jobflow import Flow

    run_locally(Flow([relaxed, judged]), store=JobStore(MemoryStore(), additional_stores={"data": MemoryStore()}),
                root_dir=tmp_path, log=False)
    store = CandidateStore()
    good_doc, bad_doc = store.get(good.candidate_id), store.get(bad.candidate_id)
    assert bad_doc.relaxation.error and bad_doc.stability is None
    assert good_doc.relaxation.error is None and abs(good_doc.e_above_hull) < 0.05


def test_a_rerun_with_other_relaxation_settings_relaxes_again(mg_o_environment, tmp_path):
    """Through the real command: the same settings reuse the stored relaxation, other ones relax again (and judge
    the new structure), and every relaxation records what it ran with."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    pccd = str(Path(sys.executable).parent / "pccd")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def screen(relax_steps: int, relax_fmax: float = 0.05, workers: int = 1) -> dict:
        args = [pccd, "screen", "--chemsys", "Mg-O", "--n", "3", "--seed", "0", "--relax-steps", str(relax_steps),
                "--relax-fmax", str(relax_fmax), "--reference", "mp-formation", "--run-locally",
                "--workers", str(workers), "--chunk-size", "2"]
        # over workers, the store given relative to the working directory (each worker runs in its own directory)
        run_env = {**env, "PCCD_STORE_DIR": "store"} if workers > 1 else env
        assert Path(os.environ["PCCD_STORE_DIR"]) == tmp_path / "store"
        result = subprocess.run(args, check=False, cwd=tmp_path, env=run_env, capture_output=True, text=True,
                                timeout=900)
        assert result.returncode == 0, result.stderr[-3000:]
        query = subprocess.run([pccd, "query", "--json"], check=False, cwd=tmp_path, env=env, capture_output=True, text=True,
                               timeout=300)
        assert query.returncode == 0, query.stderr[-2000:]
        return {c["candidate_id"]: c for c in json.loads(query.stdout)["candidates"] if c["relaxation"]}

    first = screen(5)
    assert first, "no candidate passed the prefilter: nothing was relaxed"
    for doc in first.values():
        relaxation = doc["relaxation"]
        assert (relaxation["engine"], relaxation["model"], relaxation["optimizer"]) == ("chgnet", "CHGNet 0.3.0",
                                                                                         "FIRE")
        assert (relaxation["steps"], relaxation["fmax"]) == (5, 0.05)

    same = screen(5)
    assert {cid: d["relaxation"] for cid, d in same.items()} == {cid: d["relaxation"] for cid, d in first.items()}

    other = screen(40, workers=2)  # the same flow over two processes on the private embedded LaunchPad
    assert other.keys() == first.keys()
    for cid, doc in other.items():
        assert doc["relaxation"]["steps"] == 40
        assert doc["relaxation"]["task_uuid"] != first[cid]["relaxation"]["task_uuid"]  # a new relaxation ran
        if doc["relaxation"]["error"] is None:  # judged on the new structure, not the old one's hull placement
            assert doc["stability"] is not None and doc["e_above_hull"] == doc["stability"]["e_above_hull"]
            assert doc["relaxation"]["energy_per_atom"] <= first[cid]["relaxation"]["energy_per_atom"] + 1e-3

    looser = screen(40, relax_fmax=0.2)  # the force criterion alone differs
    for cid, doc in looser.items():
        assert doc["relaxation"]["fmax"] == 0.2
        assert doc["relaxation"]["task_uuid"] != other[cid]["relaxation"]["task_uuid"]
