"""The DFT validation through the real CLI: rock-salt against zinc-blende MgO (GPAW PBE, small settings), resume
after an interruption, and a failed DFT calculation recorded while the rest completes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pymatgen.core import Lattice, Structure

from pccd_flows.schemas.candidate import RelaxationResult
from pccd_flows.settings import PccdSettings
from pccd_flows.stability.engines import RelaxSettings, run_force_field
from pccd_flows.stability.entries import entry_from_force_field_doc
from pccd_flows.stability.hull import HullCalculator
from pccd_flows.stability.references import reference_set
from pccd_flows.stores.candidates import CandidateStore
from pccd_flows.stores.config import embedded_store
from tests.factories import known_phase, make_candidate

PCCD = str(Path(sys.executable).parent / "pccd")
SMALL = ["--ecut", "300"]  # differences converge long before totals: 0.121 here against 0.114 eV/atom at 500 eV


def zinc_blende_mgo() -> Structure:
    return Structure.from_spacegroup("F-43m", Lattice.cubic(4.6), ["Mg", "O"],
                                     [[0, 0, 0], [0.25, 0.25, 0.25]]).get_primitive_structure()


def judged_candidate(structure: Structure, index: int):
    """A candidate relaxed by CHGNet and judged on the offline hull, as the screening stores it."""
    outcome = run_force_field([structure], "chgnet", RelaxSettings(steps=300, fmax=0.05))[0]
    assert outcome.ok, outcome.error
    entry = entry_from_force_field_doc(outcome.task_doc, "chgnet")
    doc = make_candidate(structure, index)
    doc.relaxation = RelaxationResult(engine="chgnet", structure=outcome.task_doc.output.structure.as_dict(),
                                      energy_per_atom=entry.energy_per_atom, converged=True)
    calculator = HullCalculator(reference_set("mp-structures", ["Mg", "O"], "chgnet", PccdSettings()))
    return doc.with_stability(calculator.stability(entry))


@pytest.fixture(scope="module")
def mgo_candidates():
    # the conventional zinc-blende cell (8 atoms) takes long enough for an interrupt to land in its DFT
    conventional = Structure.from_spacegroup("F-43m", Lattice.cubic(4.6), ["Mg", "O"], [[0, 0, 0], [0.25] * 3])
    return {"rock-salt": judged_candidate(known_phase("MgO"), 0),
            "zinc-blende": judged_candidate(zinc_blende_mgo(), 1),
            "zinc-blende-8": judged_candidate(conventional, 2)}


def store_of(directory: Path) -> CandidateStore:
    return CandidateStore(embedded_store("candidates", directory, key="candidate_id"))


def run_pccd(args: list[str], store_dir: Path, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PCCD_STORE_DIR": str(store_dir), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run([PCCD, *args], check=False, env=env, capture_output=True, text=True, timeout=900,
                          **kwargs)


def test_zinc_blende_mgo_is_above_rock_salt_by_dft(tmp_path, mgo_candidates):
    rock_salt, zinc_blende = mgo_candidates["rock-salt"], mgo_candidates["zinc-blende"]
    store_of(tmp_path).upsert([rock_salt, zinc_blende])
    result = run_pccd(["validate", "dft", "--candidate-id", zinc_blende.candidate_id,
                       "--candidate-id", rock_salt.candidate_id, *SMALL, "--json"], tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {r["candidate_id"]: r for r in json.loads(result.stdout)["results"]}
    # rock salt is the very phase it decomposes into, relaxed the same way: zero by construction
    assert abs(rows[rock_salt.candidate_id]["dft_e_above_hull"]) < 1e-3
    # PBE puts zinc-blende MgO ~0.1-0.2 eV/atom above rock salt (MP: 0.15 at its own geometry)
    dft = rows[zinc_blende.candidate_id]["dft_e_above_hull"]
    assert 0.05 < dft < 0.3
    stored = store_of(tmp_path).get(zinc_blende.candidate_id).dft_check
    assert stored.e_above_hull == pytest.approx(dft)
    assert stored.protocol == "single-point" and stored.judge_engine == "chgnet"
    assert stored.decomposition == {"MgO": 1.0} and stored.product_material_ids["MgO"].startswith("mp-")


def test_interrupted_validation_resumes_without_redoing(tmp_path, mgo_candidates):
    rock_salt, zinc_blende = mgo_candidates["rock-salt"], mgo_candidates["zinc-blende-8"]
    store = store_of(tmp_path)
    store.upsert([rock_salt, zinc_blende])
    ids = ["--candidate-id", rock_salt.candidate_id, "--candidate-id", zinc_blende.candidate_id]
    env = {**os.environ, "PCCD_STORE_DIR": str(tmp_path), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    # Ctrl-C as a terminal sends it: a runner started in the background may ignore SIGINT, and children inherit that
    process = subprocess.Popen([PCCD, "validate", "dft", *ids, *SMALL], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # noqa: PLW1509
    deadline = time.time() + 600
    while time.time() < deadline and store.get(rock_salt.candidate_id).dft_check is None:
        assert process.poll() is None, process.communicate()
        time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=120)
    assert process.returncode != 0
    assert store.get(zinc_blende.candidate_id).dft_check is None  # interrupted in its DFT: nothing half-written
    first = store.get(rock_salt.candidate_id).dft_check
    assert first is not None and first.error is None

    result = run_pccd(["validate", "dft", *ids, *SMALL, "--json"], tmp_path)
    assert result.returncode == 0, result.stderr
    again = store.get(rock_salt.candidate_id).dft_check
    assert again == first  # reused, not recomputed
    assert store.get(zinc_blende.candidate_id).dft_check.e_above_hull > 0.05


def test_failed_dft_is_recorded_and_the_batch_goes_on(tmp_path, mgo_candidates):
    rock_salt = mgo_candidates["rock-salt"]
    # a relaxation that left two atoms on one site: GPAW refuses it; the other candidate must still be checked
    broken = mgo_candidates["zinc-blende"].model_copy(deep=True)
    crushed = Structure(Lattice.cubic(4.2), ["Mg", "O"], [[0, 0, 0], [0, 0, 0]])
    broken.relaxation.structure = crushed.as_dict()
    store_of(tmp_path).upsert([broken, rock_salt])
    result = run_pccd(["validate", "dft", "--candidate-id", broken.candidate_id,
                       "--candidate-id", rock_salt.candidate_id, *SMALL, "--json"], tmp_path)
    assert result.returncode == 1  # a failed stage fails the command, after the rest is done
    rows = {r["candidate_id"]: r for r in json.loads(result.stdout)["results"]}
    assert rows[broken.candidate_id]["error"] and rows[broken.candidate_id]["dft_e_above_hull"] is None
    assert rows[rock_salt.candidate_id]["error"] is None
    assert "AtomsTooClose" in store_of(tmp_path).get(broken.candidate_id).dft_check.error


def test_bad_protocol_is_a_one_line_error(tmp_path):
    result = run_pccd(["validate", "dft", "--protocol", "magic"], tmp_path)
    assert result.returncode == 2
    assert "unknown protocol 'magic'" in result.stderr and "Traceback" not in result.stderr


def test_validation_through_an_embedded_launchpad(tmp_path, mgo_candidates):
    """`pccd validate dft --launchpad` adds one FireWork per candidate; a plain `rlaunch` stores the result."""
    import datetime

    bin_dir = Path(sys.executable).parent
    config = tmp_path / "fw"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1", "PCCD_STORE_FILE": str(config / "stores.yaml"),
           "JOBFLOW_CONFIG_FILE": str(config / "jobflow.yaml"), "FW_CONFIG_FILE": str(config / "FW_config.yaml")}
    for args in (["pccd", "launchpad", "init", "--embedded", str(config)],
                 ["lpad", "reset", "--password", datetime.date.today().isoformat()]):
        done = subprocess.run(args, check=False, cwd=tmp_path if args[0] == "pccd" else config, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    zinc_blende = mgo_candidates["zinc-blende"]
    store_of(config / "pccd-store").upsert([zinc_blende])
    added = subprocess.run(["pccd", "validate", "dft", "--candidate-id", zinc_blende.candidate_id, *SMALL,
                            "--launchpad", "my_launchpad.yaml"], check=False, cwd=config, env=env,
                           capture_output=True, text=True, timeout=300)
    assert added.returncode == 0, added.stderr
    assert store_of(config / "pccd-store").get(zinc_blende.candidate_id).dft_check is None  # nothing ran yet
    launched = subprocess.run(["rlaunch", "rapidfire"], check=False, cwd=config, env=env, capture_output=True,
                              text=True, timeout=900)
    assert launched.returncode == 0, launched.stderr[-3000:]
    check = store_of(config / "pccd-store").get(zinc_blende.candidate_id).dft_check
    assert check is not None and check.error is None and 0.05 < check.e_above_hull < 0.3
