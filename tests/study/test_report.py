"""The study report's counts on hand-made candidates with known energies and geometries."""

from __future__ import annotations

from pymatgen.core import Lattice, Structure

from pccd_flows.study.report import study_report
from tests.factories import known_phase, make_candidate


def test_report_fractions_and_fused_relaxations():
    mgo = known_phase("MgO")
    fused = Structure(Lattice.cubic(4.2), ["Mg", "O"], [[0, 0, 0], [0.02, 0, 0]])  # 0.08 A apart after "relaxing"
    docs = [make_candidate(mgo, 0, e_above_hull=0.0, novel=False),
            make_candidate(mgo, 1, e_above_hull=0.2, novel=True),
            make_candidate(fused, 2, e_above_hull=1.7, novel=True),
            make_candidate(mgo, 3)]  # screened, not yet judged
    report = study_report(docs, "hand-made")
    assert report.n_structures == 4 and report.n_judged == 3
    assert report.fraction_ehull_below_250meV == round(2 / 3, 4)
    assert report.fraction_ehull_below_80meV == round(1 / 3, 4) and report.n_ehull_below_80meV == 1
    assert report.fraction_ehull_below_0meV == round(1 / 3, 4)
    assert report.n_relaxed_overlapping == 1
    assert report.novel_fraction == 0.5
