"""The benchmark's metrics on hand-made crystals whose answers are known."""

from __future__ import annotations

import pytest
from pymatgen.core import Lattice, Structure

from pccd_flows.benchmark.metrics import generator_metrics, mark_sun, rmsd_to_relaxed
from pccd_flows.benchmark.schemas import BenchmarkCandidate
from pccd_flows.data.io import write_records
from pccd_flows.data.records import MaterialRecord
from pccd_flows.evaluation.novelty import NoveltyIndex


def rock_salt(a: float = 4.21) -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def two_atoms(shift: float = 0.0) -> Structure:
    """A tetragonal cell of two atoms (low symmetry, so nothing reduces it), the second moved along c by ``shift`` A."""
    lattice = Lattice.tetragonal(3.0, 4.0)
    return Structure(lattice, ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.3 + shift / 4.0]])


def row(index: int, structure: Structure | None, e_hull: float | None, relaxed: Structure | None = None,
        generator: str = "pccd", error: str | None = None, cpu: float = 10.0) -> BenchmarkCandidate:
    relaxed = relaxed if relaxed is not None else structure
    return BenchmarkCandidate(
        generator=generator, chemsys="Mg-O", index=index,
        structure=structure.as_dict() if structure is not None else None,
        judged=structure is not None, e_above_hull=e_hull,
        relaxed_structure=relaxed.as_dict() if relaxed is not None and e_hull is not None else None,
        generation_error=error if structure is None else None,
        relax_error=error if structure is not None and e_hull is None else None,
        generation_cpu_seconds=1.0, relax_cpu_seconds=cpu)


def test_rmsd_of_a_structure_and_itself_is_zero():
    assert rmsd_to_relaxed(rock_salt(), rock_salt()) == pytest.approx(0.0, abs=1e-8)
    assert rmsd_to_relaxed(two_atoms(), two_atoms()) == pytest.approx(0.0, abs=1e-8)


def test_rmsd_is_in_angstrom():
    # one of two atoms moved by 0.2 A: with the common translation removed each is 0.1 A off
    assert rmsd_to_relaxed(two_atoms(), two_atoms(0.2)) == pytest.approx(0.1, abs=0.01)


def test_rmsd_ignores_an_isotropic_expansion_and_caps_what_cannot_be_aligned():
    # no volume scaling, but StructureMatcher compares fractional positions on the average lattice: a uniformly
    # expanded cell has nothing to displace
    assert rmsd_to_relaxed(rock_salt(4.0), rock_salt(4.4)) == pytest.approx(0.0, abs=1e-6)
    # rock salt -> zinc blende on the same lattice: the anion moves by a quarter diagonal, still aligned
    zinc_blende = Structure.from_spacegroup("F-43m", Lattice.cubic(4.21), ["Mg", "O"], [[0, 0, 0], [0.25] * 3])
    assert 0.5 < rmsd_to_relaxed(rock_salt(), zinc_blende) < 0.5 * (4.21**3 / 8) ** (1 / 3)
    # a cell sheared by 30 degrees is beyond angle_tol: not aligned, so the cap, 0.5 (V/N)^(1/3) on the average cell
    sheared = Structure(Lattice.monoclinic(3.0, 3.0, 4.0, 120.0), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.3]])
    average = Lattice.from_parameters(3.0, 3.0, 4.0, 90.0, 105.0, 90.0)
    assert rmsd_to_relaxed(two_atoms(), sheared) == pytest.approx(0.5 * (average.volume / 2) ** (1 / 3), rel=1e-6)


@pytest.fixture
def known_mgo_index(tmp_path):
    path = tmp_path / "known.jsonl.gz"
    write_records([MaterialRecord.from_structure("mp-1265", rock_salt())], path)
    return NoveltyIndex(path)


def test_duplicates_are_not_unique_and_known_crystals_not_novel(known_mgo_index):
    novel = two_atoms()
    candidates = [
        row(0, novel, 0.05),                      # stable, novel: S.U.N.
        row(1, novel.copy(), 0.02),               # its duplicate, lower in energy: it is the S.U.N. one
        row(2, rock_salt(4.3), -0.01, rock_salt()),  # relaxes onto the known rock salt: not novel
        row(3, two_atoms(0.5), 0.4),              # novel, not stable
        row(4, None, None, error="decoding: no lattice"),
    ]
    marked = mark_sun(candidates, known_mgo_index)
    assert [c.novel for c in marked] == [True, True, False, True, None]
    assert [c.sun for c in marked] == [False, True, False, False, None]
    assert marked[0].unique is False and marked[1].unique is True
    assert marked[2].matched_mp_id == "mp-1265"

    metrics = generator_metrics(marked)
    assert metrics.n == 5 and metrics.n_judged == 4 and metrics.n_failed == 1
    assert metrics.failures == {"decoding": 1}
    assert metrics.stable_rate == pytest.approx(3 / 5)
    assert metrics.on_hull_rate == pytest.approx(1 / 5)
    assert metrics.novel_rate == pytest.approx(3 / 5)
    assert metrics.sun_rate == pytest.approx(1 / 5) and metrics.n_sun == 1
    assert metrics.median_e_above_hull == pytest.approx(0.035)
    # every candidate's generation second and the four relaxations' ten each, over one S.U.N.
    assert metrics.cpu_seconds == pytest.approx(5 * 1.0 + 5 * 10.0)
    assert metrics.cpu_seconds_per_sun == pytest.approx(55.0)


def test_no_sun_means_no_cost_per_sun(known_mgo_index):
    metrics = generator_metrics(mark_sun([row(0, two_atoms(), 0.3)], known_mgo_index))
    assert metrics.sun_rate == 0 and metrics.cpu_seconds_per_sun is None
    assert generator_metrics([]).stable_rate is None
