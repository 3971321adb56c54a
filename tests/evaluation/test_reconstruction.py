from __future__ import annotations

import json

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure
from typer.testing import CliRunner

from pccd_flows.cli import app
from pccd_flows.evaluation.reconstruction import Pair, measure_pair, paired_coordinate_errors, summarise


def _pair(original: Structure, rebuilt: Structure | None) -> Pair:
    return Pair(material_id="x", original=original.as_dict(),
                reconstructed=rebuilt.as_dict() if rebuilt is not None else None)


@pytest.fixture
def perovskite() -> Structure:
    return Structure(Lattice.cubic(4.0), ["Sr", "Ti", "O", "O", "O"],
                     [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])


def test_coordinate_errors_are_periodic_and_paired(perovskite):
    rebuilt = Structure(Lattice.cubic(4.0), ["O", "Sr", "O", "Ti", "O"],  # other order, Sr across the boundary
                        [[0, 0.5, 0.52], [0.99, 0.0, 0.0], [0.5, 0.47, 0], [0.5, 0.5, 0.5], [0.5, 0, 0.5]])
    errors = paired_coordinate_errors(perovskite, rebuilt)
    assert errors.shape == (5, 3)
    np.testing.assert_allclose(np.sort(np.abs(errors).max(axis=1)), [0, 0, 0.01, 0.02, 0.03], atol=1e-9)


def test_lattice_errors_and_rates_on_known_pairs(perovskite):
    stretched = perovskite.copy()
    stretched.lattice = Lattice.orthorhombic(4.0 * 1.10, 4.0, 4.0 * 0.98)  # a +10%, c -2%
    lost_atom = perovskite.copy()
    lost_atom.remove_sites([4])
    measures = [measure_pair(_pair(perovskite, perovskite)), measure_pair(_pair(perovskite, stretched)),
                measure_pair(_pair(perovskite, lost_atom)), measure_pair(_pair(perovskite, None))]
    np.testing.assert_allclose(measures[1].lattice_rel_error, [0.10, 0.0, -0.02], atol=1e-9)
    report = summarise(measures, t=200, sampler="ddpm", seed=0, split="train")
    assert report.atom_count_accuracy == 0.5 and report.decode_failures == 1
    assert report.right_atom_count.n == 2
    assert report.lattice_rel_error["a"].within_5_percent == 0.5  # +10% is out, 0% is in
    assert report.lattice_rel_error["c"].within_5_percent == 1.0
    assert report.lattice_rel_error["c"].within_paper_limits == 1.0  # -2% inside [-4.90%, 3.57%]
    assert report.coordinate_error["x"].within_5_percent == 1.0


def test_reconstruct_cli_json_and_plots(tmp_path, tiny_checkpoint):
    result = CliRunner().invoke(app, ["reconstruct", "--n", "6", "--t", "20", "--sampler", "ddim", "--steps", "3",
                                      "--checkpoint", str(tiny_checkpoint), "--plots", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    for key in ("n", "atom_count_accuracy", "composition_accuracy", "lattice_rel_error", "coordinate_error",
                "structure_match_rate", "mean_rmsd"):
        assert key in report
    assert report["n"] == 6 and report["t"] == 20
    assert set(report["lattice_rel_error"]) == {"a", "b", "c"} and set(report["coordinate_error"]) == {"x", "y", "z"}
    assert len(list(tmp_path.glob("*.png"))) == 4
