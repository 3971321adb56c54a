"""Judging on another machine: `pccd validate export-relaxations`, `scripts/portable_relax.py` (ASE and the potential
only), `pccd validate import-relaxations`, against the same judge computed here by `pccd validate judges`.

CHGNet stands in for SevenNet (same code path, a tenth of the CPU time); the shipped reference energies are switched
off so that every reference energy of the import comes from the portable run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pccd_flows.stores.config import embedded_store, open_store
from tests.factories import known_phase
from tests.validation.test_dft_validation import judged_candidate, store_of, zinc_blende_mgo

PCCD = str(Path(sys.executable).parent / "pccd")
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "portable_relax.py"


def env_for(store_dir: Path, cache_dir: Path, data_file: Path | None = None) -> dict:
    env = {**os.environ, "PCCD_STORE_DIR": str(store_dir), "PCCD_CACHE_DIR": str(cache_dir),
           "PCCD_REFERENCE_ENERGY_SEED_FILE": str(cache_dir / "no-shipped-energies"), "OMP_NUM_THREADS": "1"}
    if data_file is not None:  # a few Mg and O crystals: the reference relaxations in minutes, not ten
        env.update(PCCD_DATA_FILE=str(data_file), PCCD_REFERENCE_STRUCTURES_FILE=str(data_file))
    return env


def pccd(args: list, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([PCCD, *map(str, args)], check=False, env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def two_candidates(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("store")
    store_of(directory).upsert([judged_candidate(known_phase("MgO"), 0), judged_candidate(zinc_blende_mgo(), 1)])
    return directory


def test_portable_relaxations_judge_as_the_local_run_does(tmp_path, two_candidates, mg_o_settings):
    here, there = tmp_path / "here", tmp_path / "there"
    shutil.copytree(two_candidates, here)
    shutil.copytree(two_candidates, there)
    cif = tmp_path / "MgO.cif"
    known_phase("MgO").to(filename=str(cif))

    # the far side: export, run the script with nothing of pccd-flows imported, import the results
    bundle, results = tmp_path / "bundle.json.gz", tmp_path / "results.jsonl"
    env = env_for(there, tmp_path / "cache-there", mg_o_settings.data_file)
    exported = pccd(["validate", "export-relaxations", bundle, "--engine", "chgnet", "--candidates", "all",
                     "--structure", cif], env)
    assert exported.returncode == 0, exported.stderr
    assert "3 structures" in exported.stdout  # the 2 candidates and the CIF
    ran = subprocess.run([sys.executable, "-I", SCRIPT, bundle, results, "--workers", "1", "--device", "cpu"],
                         check=False, capture_output=True, text=True, timeout=900, env=env)
    assert ran.returncode == 0, ran.stderr[-3000:]
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert {r["role"] for r in rows} == {"reference", "candidate"} and not any("error" in r for r in rows)
    imported = pccd(["validate", "import-relaxations", results, "--source", "test", "--json"], env)
    assert imported.returncode == 0, imported.stderr
    summary = json.loads(imported.stdout)["chgnet"]
    assert summary["judged"] == 2 and summary["failed"] == 0
    # the known phase is no candidate: its verdict is returned, and rock-salt MgO is on its own hull
    (name, verdict), = summary["others"].items()
    assert name == "structure:MgO.cif" and abs(verdict["e_above_hull"]) < 0.01
    with open_store(embedded_store("reference_energies", tmp_path / "cache-there" / "reference-energies",
                                   key="key")) as cache:
        cached = list(cache.query({}))
    assert cached and {doc["computed_by"] for doc in cached} == {"test"}

    # here: the same judge computed the usual way
    local = pccd(["validate", "judges", "--engine", "chgnet", "--sample"],
                 env_for(here, tmp_path / "cache-here", mg_o_settings.data_file))
    assert local.returncode == 0, local.stderr
    far = {d.candidate_id: d.judgements["chgnet"] for d in store_of(there).find({})}
    near = {d.candidate_id: d.judgements["chgnet"] for d in store_of(here).find({})}
    assert far.keys() == near.keys() and len(far) == 2
    for candidate_id, verdict in near.items():
        assert far[candidate_id].e_above_hull == pytest.approx(verdict.e_above_hull, abs=2e-3)
    # zinc blende above rock salt on both sides
    assert max(v.e_above_hull for v in far.values()) > 0.05


def test_import_of_a_file_that_is_no_result_fails_in_one_line(tmp_path, two_candidates):
    bad = tmp_path / "results.jsonl"
    bad.write_text('{"hello": 1}\n')
    result = pccd(["validate", "import-relaxations", bad], env_for(two_candidates, tmp_path / "cache"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "error" in result.stderr
    missing = pccd(["validate", "import-relaxations", tmp_path / "nope.jsonl"], env_for(two_candidates, tmp_path))
    assert missing.returncode == 2 and "no such file" in missing.stderr
