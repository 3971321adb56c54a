"""Novelty judged on what was judged: a generated crystal that is new but relaxes onto MP's rock salt is not novel
for `pccd query --novel-only`, the study report or S.U.N."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from jobflow import run_locally
from pymatgen.core import Lattice, Structure

from pccd_flows.evaluation.novelty import known_structure_index
from pccd_flows.makers.stability import StabilityMaker
from pccd_flows.schemas.candidate import RelaxationResult
from pccd_flows.stores.candidates import CandidateStore
from pccd_flows.stores.config import embedded_store
from pccd_flows.study.report import judge_relaxed_novelty, stable_unique_novel
from tests.factories import known_phase, make_candidate

PCCD = str(Path(sys.executable).parent / "pccd")


def unknown_mgo() -> Structure:
    """An MgO cell that no MP crystal matches (checked against all of MP)."""
    return Structure(Lattice.tetragonal(3.0, 6.0), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def relaxed_onto(generated: Structure, relaxed: Structure, index: int, energy: float):
    doc = make_candidate(generated, index, novel=True)  # the prefilter found no MP match for the generated cell
    doc.relaxation = RelaxationResult(engine="chgnet", structure=relaxed.as_dict(), energy_per_atom=energy)
    return doc


def test_novel_only_reads_the_verdict_on_the_relaxed_structure(tmp_path):
    rock_salt = known_phase("MgO")
    distorted = Structure(Lattice.tetragonal(3.3, 4.6), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.43]])
    onto_mp = relaxed_onto(distorted, rock_salt, 0, -6.31)
    still_new = relaxed_onto(distorted, unknown_mgo(), 1, -6.20)
    store = CandidateStore(embedded_store("candidates", tmp_path, key="candidate_id"))
    run_locally(StabilityMaker(engine="chgnet", reference="mp-structures", store=store.store).make(
        [onto_mp, still_new]), log=False, ensure_success=True)
    verdict = store.get(onto_mp.candidate_id).relaxed_novelty
    assert verdict.novel is False and verdict.matched_mp_id is not None
    assert store.get(still_new.candidate_id).relaxed_novelty.novel is True

    env = {**os.environ, "PCCD_STORE_DIR": str(tmp_path)}
    listed = subprocess.run([PCCD, "query", "--novel-only", "--json"], check=False, env=env, capture_output=True,
                            text=True, timeout=300)
    assert listed.returncode == 0, listed.stderr
    ids = [row["candidate_id"] for row in json.loads(listed.stdout)["candidates"]]
    assert ids == [still_new.candidate_id]


def test_sun_counts_unique_novel_relaxed_structures():
    rock_salt, index = known_phase("MgO"), known_structure_index()
    new = unknown_mgo()
    docs = [relaxed_onto(rock_salt, rock_salt, 0, -6.31), relaxed_onto(rock_salt, new, 1, -6.20),
            relaxed_onto(rock_salt, new.copy().scale_lattice(new.volume * 1.02), 2, -6.19)]
    docs = [d.model_copy(update={"e_above_hull": e}) for d, e in zip(docs, (0.0, 0.05, 0.06))]
    judged = judge_relaxed_novelty(docs, index)
    assert [d.relaxed_novelty.novel for d in judged] == [False, True, True]
    assert [d.relaxed_novelty.unique for d in judged] == [True, True, False]
    assert judged[2].relaxed_novelty.duplicate_of == docs[1].candidate_id
    sun, n_duplicates, n_known = stable_unique_novel(judged, index)
    assert [d.candidate_id for d in sun] == [docs[1].candidate_id] and (n_duplicates, n_known) == (1, 1)
