"""`pccd bench relax`: every method measured on the same tiny candidates, ratios from its own measurements."""

from __future__ import annotations

import json

import pytest
from pymatgen.core import Lattice, Structure
from typer.testing import CliRunner

from pccd_flows.bench import MethodMeasurement, RelaxOutcome
from pccd_flows.bench.candidates import split_evenly
from pccd_flows.bench.relax import compare, energy_agreement
from pccd_flows.bench.torchsim import torch_sim_version
from pccd_flows.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def cif_dir(tmp_path_factory):
    """Three small rock-salt cells, two of them strained and rattled so that relaxing them takes steps."""
    folder = tmp_path_factory.mktemp("cifs")
    rocksalt = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.25), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    primitive = rocksalt.get_primitive_structure()
    primitive.to(filename=str(folder / "a_MgO.cif"))
    strained = primitive.copy()
    strained.scale_lattice(primitive.volume * 1.08)
    strained.to(filename=str(folder / "b_MgO_strained.cif"))
    rattled = rocksalt.copy()
    rattled.perturb(0.08, 0.02)
    rattled.to(filename=str(folder / "c_MgO_rattled.cif"))
    return folder


@pytest.fixture(scope="module")
def report(cif_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "relax.json"
    result = runner.invoke(app, ["bench", "relax", "--cifs", str(cif_dir), "--engine", "sevennet", "--steps", "4",
                                 "--fmax", "0.1", "--chunk-size", "2", "--json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert json.loads(out.read_text()) == printed
    return printed


def test_every_method_is_measured_on_the_same_candidates(report):
    assert [c["label"] for c in report["candidates"]] == ["a_MgO", "b_MgO_strained", "c_MgO_rattled"]
    assert report["steps"] == 4 and report["fmax"] == 0.1 and report["chunk_size"] == 2
    assert report["torch_threads"] == 1 and report["engines"] == ["sevennet"]
    methods = [m["method"] for m in report["measurements"]]
    assert methods == ["per-candidate", "chunked", "torch-sim"]
    for m in report["measurements"]:
        for key in ("n", "converged_fraction", "cpu_seconds", "wall_seconds", "relaxations_per_cpu_second",
                    "cpu_ratio_vs_per_candidate", "energy_agreement", "outcomes", "unavailable"):
            assert key in m
        assert m["n"] == 3 and m["engine"] == "sevennet"
    assert set(report["fastest_at_equal_convergence"]) <= {"sevennet"}
    # a process of its own per job pays imports and the potential's load: measured beside the methods
    assert report["cold_start_cpu_seconds"]["sevennet"] > 0


def test_ratios_come_from_the_measurements(report):
    measured = [m for m in report["measurements"] if m["unavailable"] is None]
    baseline = next(m for m in measured if m["method"] == "per-candidate")
    for m in measured:
        assert len(m["outcomes"]) == m["n"]
        relaxed = sum(o["energy_per_atom"] is not None for o in m["outcomes"])
        converged = sum(bool(o["converged"]) for o in m["outcomes"])
        assert m["relaxed"] == relaxed and m["converged"] == converged
        assert m["converged_fraction"] == pytest.approx(converged / m["n"])
        assert m["cpu_seconds"] > 0 and m["wall_seconds"] > 0
        assert m["relaxations_per_cpu_second"] == pytest.approx(relaxed / m["cpu_seconds"])
        assert m["cpu_ratio_vs_per_candidate"] == pytest.approx(
            m["relaxations_per_cpu_second"] / baseline["relaxations_per_cpu_second"])
        differences = [abs(o["energy_per_atom"] - b["energy_per_atom"])
                       for o, b in zip(m["outcomes"], baseline["outcomes"], strict=True)
                       if o["energy_per_atom"] is not None and b["energy_per_atom"] is not None]
        agreement = m["energy_agreement"]
        assert agreement["compared"] == len(differences)
        assert agreement["max_abs_ev_per_atom"] == pytest.approx(max(differences))
        assert agreement["mean_abs_ev_per_atom"] == pytest.approx(sum(differences) / len(differences))
    assert baseline["cpu_ratio_vs_per_candidate"] == pytest.approx(1.0)
    # (a) and (b) run the same atomate2 maker on the same structures: the same energies
    chunked = next(m for m in measured if m["method"] == "chunked")
    assert chunked["energy_agreement"]["max_abs_ev_per_atom"] < 1e-4
    fastest = report["fastest_at_equal_convergence"]["sevennet"]
    candidates = [m for m in measured if m["converged"] >= baseline["converged"]]
    assert fastest == max(candidates, key=lambda m: m["relaxations_per_cpu_second"])["method"]


def test_torch_sim_has_a_number_or_says_why(report):
    torch_sim = next(m for m in report["measurements"] if m["method"] == "torch-sim")
    if torch_sim_version() is None:
        assert "not installed" in torch_sim["unavailable"]
    else:
        assert torch_sim["unavailable"] is None, torch_sim["unavailable"]
        assert torch_sim["mean_steps"] >= 1  # counted from the batches' forward passes
        # the same potential relaxed by another FIRE: close energies for these small steps
        assert torch_sim["energy_agreement"]["max_abs_ev_per_atom"] < 0.05


def test_human_table(cif_dir):
    result = runner.invoke(app, ["bench", "relax", "--cifs", str(cif_dir), "--n", "1", "--engine", "chgnet",
                                 "--steps", "2", "--method", "per-candidate", "--method", "chunked"])
    assert result.exit_code == 0, result.output
    assert "per-candidate" in result.stdout and "chunked" in result.stdout and "chgnet" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--engine", "vasp"], "--engine vasp"),
    (["--method", "magic"], "--method magic"),
    (["--n", "0"], "--n"),
    (["--fmax", "nan"], "--fmax"),
    (["--steps", "0"], "--steps"),
    (["--cifs", "/nonexistent/folder"], "--cifs"),
    (["--checkpoint", "/nonexistent/model.pt"], "--checkpoint"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    result = runner.invoke(app, ["bench", "relax", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_a_folder_without_cifs_exits_2(tmp_path):
    result = runner.invoke(app, ["bench", "relax", "--cifs", str(tmp_path)])
    assert result.exit_code == 2 and "no .cif files" in result.output


def test_out_must_be_a_file(cif_dir, tmp_path):
    result = runner.invoke(app, ["bench", "relax", "--cifs", str(cif_dir), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "is a directory" in result.output


def test_compare_needs_equal_convergence():
    def measurement(method: str, converged: int, cpu: float, energies: list[float]) -> MethodMeasurement:
        outcomes = [RelaxOutcome(energy_per_atom=e, converged=i < converged) for i, e in enumerate(energies)]
        return MethodMeasurement(method=method, label="", engine="x", description="", n=len(energies),
                                 relaxed=len(energies), converged=converged, cpu_seconds=cpu,
                                 wall_seconds=cpu, relaxations_per_cpu_second=len(energies) / cpu,
                                 relaxations_per_wall_second=len(energies) / cpu, outcomes=outcomes)

    baseline = measurement("per-candidate", 2, 8.0, [-1.0, -2.0])
    faster = measurement("chunked", 2, 2.0, [-1.0, -2.5])
    fastest_but_converging_less = measurement("torch-sim", 1, 1.0, [-1.0, -2.0])
    assert compare([baseline, faster, fastest_but_converging_less]) == {"x": "chunked"}
    assert faster.cpu_ratio_vs_per_candidate == pytest.approx(4.0)
    assert fastest_but_converging_less.cpu_ratio_vs_per_candidate == pytest.approx(8.0)
    assert faster.energy_agreement.max_abs_ev_per_atom == pytest.approx(0.5)
    assert faster.energy_agreement.mean_abs_ev_per_atom == pytest.approx(0.25)
    assert energy_agreement([RelaxOutcome()], [RelaxOutcome(energy_per_atom=1.0)]).compared == 0


def test_candidates_split_evenly_over_systems():
    assert split_evenly(5, ["Mg-O", "Ca-O-Sn"]) == {"Mg-O": 3, "Ca-O-Sn": 2}
    assert split_evenly(1, ["Mg-O", "Ca-O-Sn"]) == {"Mg-O": 1}
