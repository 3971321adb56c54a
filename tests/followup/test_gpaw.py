"""GPAW (PBE) through the atomate2-style makers: relaxation, band gaps of MgO and Si, and a clear error without it."""

from __future__ import annotations

import sys

import pytest
from jobflow import Flow, run_locally

from pccd_flows.followup.gpaw import (
    GpawMissingError,
    GpawRelaxMaker,
    GpawSettings,
    gpaw_band_structure,
    require_gpaw,
    with_initial_magmoms,
)
from pccd_flows.followup.phonons import symmetrized_primitive
from tests.factories import known_phase

# small k-meshes keep the suite fast; the cutoff stays at 800 eV, as every cell relaxation needs
FAST = GpawSettings(kpoint_density=2.0, band_kpoint_density=4)


def run(jobs, tmp_path):
    responses = run_locally(Flow(jobs), create_folders=True, root_dir=tmp_path, log=False, ensure_success=True)
    return [responses[job.uuid][1].output for job in jobs]


def test_mgo_relaxes_to_the_pbe_lattice_with_a_direct_gap_at_gamma(tmp_path):
    relax = GpawRelaxMaker(settings=FAST).make(symmetrized_primitive(known_phase("MgO")))
    bands = gpaw_band_structure(relax.output.structure, FAST)
    relaxed, result = run([relax, bands], tmp_path)
    a = relaxed.structure.lattice.abc[0] * 2**0.5  # primitive fcc -> cubic
    assert 4.20 < a < 4.30  # PBE 4.25-4.26 A (experiment 4.21)
    assert 4.2 < result.band_gap < 4.8 and result.is_gap_direct  # PBE ~4.5 eV at Gamma
    assert result.transition == "\\Gamma-\\Gamma"


def test_silicon_gap_is_indirect(tmp_path):
    (result,) = run([gpaw_band_structure(known_phase("Si"), FAST)], tmp_path)
    assert 0.4 < result.band_gap < 0.8 and result.is_gap_direct is False  # PBE ~0.6 eV, Gamma -> near X
    assert not result.is_metal


def test_only_open_shell_elements_start_magnetic():
    assert "magmom" not in with_initial_magmoms(known_phase("MgO")).site_properties
    moments = with_initial_magmoms(known_phase("LiCoO2")).site_properties["magmom"]
    assert max(moments) > 0 and min(moments) == 0


def test_missing_gpaw_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "gpaw", None)  # as if the [dft] extra were not installed
    with pytest.raises(GpawMissingError, match=r"pccd-flows\[dft\]"):
        require_gpaw()


def test_gpaw_phonons_of_silicon_have_no_imaginary_modes(tmp_path):
    from pccd_flows.followup.phonons import PhononSettings, phonon_maker, summarize_phonons

    # the conventional 8-atom cell as supercell, at a fixed cell (500 eV is enough without a cell relaxation)
    maker = phonon_maker("gpaw", PhononSettings(relax=False, min_length=5.0), GpawSettings(ecut=500, kpoint_density=2.0))
    flow = maker.make(symmetrized_primitive(known_phase("Si")))
    responses = run_locally(flow, create_folders=True, root_dir=tmp_path, log=False, ensure_success=True)
    summary = summarize_phonons(responses[flow.jobs[-1].uuid][1].output, "gpaw")
    assert summary.has_imaginary_modes is False and summary.n_displacements == 1
    assert summary.min_frequency_away_from_gamma_thz > 0
