"""CHGNet phonons through atomate2's PhononMaker, judged with the sum-rule-aware criterion: known stable crystals
pass, a known dynamically unstable one is caught."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from jobflow import run_locally
from pymatgen.core import Lattice, Structure

from pccd_flows.followup.phonons import (
    IMAGINARY_TOLERANCE_THZ,
    has_imaginary_modes,
    phonon_maker,
    summarize_phonons,
    symmetrized_primitive,
)
from tests.factories import known_phase

# cubic (paraelectric) BaTiO3: its ferroelectric soft mode is imaginary at 0 K in DFT and in CHGNet
CUBIC_BATIO3 = Structure(Lattice.cubic(4.0), ["Ba", "Ti", "O", "O", "O"],
                         [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])


def run_phonons(structure, tmp_path, engine="chgnet"):
    flow = phonon_maker(engine).make(symmetrized_primitive(structure))
    responses = run_locally(flow, create_folders=True, root_dir=tmp_path, log=False, ensure_success=True)
    return responses[flow.jobs[-1].uuid][1].output


@pytest.mark.parametrize(("name", "structure", "unstable"), [
    ("MgO", known_phase("MgO"), False),
    ("Si", known_phase("Si"), False),
    ("cubic BaTiO3", CUBIC_BATIO3, True),
])
def test_chgnet_phonon_verdict_on_known_materials(name, structure, unstable, tmp_path):
    doc = run_phonons(structure, tmp_path)
    summary = summarize_phonons(doc, "chgnet")
    assert summary.has_imaginary_modes is unstable, (name, summary)
    if unstable:
        assert summary.min_frequency_thz < -1.0  # a soft mode, far beyond any noise
    else:
        assert abs(summary.min_frequency_thz) < IMAGINARY_TOLERANCE_THZ
        # acoustic branches vanish at Gamma only: everything away from it is a real, positive frequency
        assert summary.min_frequency_away_from_gamma_thz > 0


def test_the_criterion_is_a_tolerance_below_zero():
    assert not has_imaginary_modes(np.array([-0.05, 0.0, 3.0]))
    assert has_imaginary_modes(np.array([-0.5, 3.0]))
    assert has_imaginary_modes(np.array([-0.05, 3.0]), tolerance_thz=0.01)


def test_followup_phonons_of_an_unrelaxed_cell_run_on_the_relaxed_crystal(tmp_path):
    """`pccd followup` of an unrelaxed candidate: rock-salt MgO strained by a few percent, one atom displaced (P1 at
    any usual tolerance). Phonons of that cell as given, or of a cell symmetrized before relaxing, report imaginary
    modes (-1.5 THz) that MgO does not have; relaxed with CHGNet and then symmetrized, it is stable."""
    strained = known_phase("MgO").copy()
    strained.apply_strain([0.06, 0.02, -0.03])
    strained.translate_sites([1], [0.03, -0.02, 0.04], frac_coords=False)
    cif = tmp_path / "MgO_strained.cif"
    strained.to(filename=str(cif))
    pccd = str(Path(sys.executable).parent / "pccd")
    result = subprocess.run([pccd, "followup", "--cif", str(cif), "--dft", "none", "--phonons", "chgnet", "--json"],
                            check=False, capture_output=True, text=True, timeout=1200, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["errors"] == [] and summary["phonon_engine"] == "chgnet"
    assert summary["has_imaginary_modes"] is False, summary
    assert abs(summary["min_frequency_thz"]) < IMAGINARY_TOLERANCE_THZ
