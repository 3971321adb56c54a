"""The embedded candidate store: idempotent upserts, queries, concurrent writers, unreachable servers."""

from __future__ import annotations

import multiprocessing
import time

import pytest
from maggma.stores import MongoStore

from pccd_flows.settings import PccdSettings
from pccd_flows.stores.candidates import CandidateQuery, CandidateStore
from pccd_flows.stores.config import StoreError, candidate_store, open_store
from tests.factories import make_candidate


@pytest.fixture
def store(tmp_path) -> CandidateStore:
    return CandidateStore(candidate_store(PccdSettings(store_dir=tmp_path / "store")))


def test_upserts_are_idempotent(store, candidates):
    store.upsert(candidates)
    store.upsert(candidates)  # re-running a batch
    assert store.count() == len(candidates)
    changed = candidates[0].model_copy(update={"band_gap": 1.25})
    store.upsert([changed])
    assert store.count() == len(candidates)
    assert store.get(changed.candidate_id).band_gap == 1.25
    assert store.get(candidates[1].candidate_id).model_dump(mode="json", exclude={"last_updated"}) == \
        candidates[1].model_dump(mode="json", exclude={"last_updated"})


def test_candidate_id_is_stable_and_depends_on_provenance(candidates):
    structure = candidates[0].generated_structure()
    assert make_candidate(structure, 0).candidate_id == candidates[0].candidate_id
    assert make_candidate(structure, 0, seed=1).candidate_id != candidates[0].candidate_id
    assert len({c.candidate_id for c in candidates}) == len(candidates)


def test_query_filters_and_sorting(store, candidates):
    store.upsert(candidates)
    everything = store.search(CandidateQuery())
    assert [d.e_above_hull for d in everything] == sorted(c.e_above_hull for c in candidates)
    below = store.search(CandidateQuery(max_ehull=0.08))
    assert {d.candidate_id for d in below} == {c.candidate_id for c in candidates if c.e_above_hull <= 0.08}
    stable = store.search(CandidateQuery(stable_only=True))
    assert stable and all(d.e_above_hull <= 0 for d in stable)
    novel = store.search(CandidateQuery(novel_only=True, max_ehull=0.25))
    assert novel and all(d.prefilter.novel and d.e_above_hull <= 0.25 for d in novel)
    chemsys = candidates[3].chemsys
    in_system = store.search(CandidateQuery(chemsys=["-".join(reversed(chemsys.split("-")))]))
    assert in_system and {d.chemsys for d in in_system} == {chemsys}
    assert len(store.search(CandidateQuery(limit=3))) == 3


def _writer(store_dir: str, start: int, count: int) -> None:
    from pymatgen.core import Lattice, Structure

    store = CandidateStore(candidate_store(PccdSettings(store_dir=store_dir)))
    for index in range(start, start + count):
        structure = Structure(Lattice.cubic(4.2 + 0.001 * index), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
        store.upsert([make_candidate(structure, index)])


def test_two_processes_writing_at_once_lose_nothing(tmp_path):
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(str(tmp_path / "store"), start, 15)) for start in (0, 1000)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=240)
        assert worker.exitcode == 0
    store = CandidateStore(candidate_store(PccdSettings(store_dir=tmp_path / "store")))
    assert store.count() == 30


def test_unreachable_mongodb_is_a_clear_error_in_seconds():
    store = MongoStore(database="pccd", collection_name="candidates", host="127.0.0.1", port=9)
    started = time.monotonic()
    with pytest.raises(StoreError, match="cannot reach store"), open_store(store, timeout_s=1.0):
        pass
    assert time.monotonic() - started < 15


def test_store_file_configures_production_stores(tmp_path):
    spec = tmp_path / "stores.yaml"
    spec.write_text("candidates:\n  '@module': maggma.stores\n  '@class': MongoStore\n  database: pccd\n"
                    "  collection_name: candidates\n  host: db.example.org\n")
    store = candidate_store(PccdSettings(store_file=spec))
    assert isinstance(store, MongoStore) and store.host == "db.example.org"
    (tmp_path / "broken.yaml").write_text("candidates: [1, 2]\n")
    with pytest.raises(StoreError, match="not a maggma store"):
        candidate_store(PccdSettings(store_file=tmp_path / "broken.yaml"))
