"""The study report's counts on hand-made candidates with known energies and geometries."""

from __future__ import annotations

import csv

from pymatgen.core import Lattice, Structure

from pccd_flows.study.report import study_report, write_stable_csv
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


def _relaxed_to(doc, structure: Structure):
    doc.relaxation = doc.relaxation.model_copy(update={"structure": structure.as_dict()})
    return doc


def test_sun_is_judged_on_the_relaxed_structures(mg_o_settings, tmp_path):
    """Two candidates that relax to one new crystal count once; one that relaxes onto MP's MgO does not count."""
    from pccd_flows.evaluation.novelty import NoveltyIndex

    known = NoveltyIndex(mg_o_settings.data_file)
    rocksalt = known_phase("MgO")
    wurtzite = known_phase("ZnO").copy()
    wurtzite.replace_species({"Zn": "Mg"})
    rutile = known_phase("SnO2").copy()
    rutile.replace_species({"Sn": "Mg"})
    assert known.is_novel(wurtzite) and known.is_novel(rutile) and not known.is_novel(rocksalt)

    def generated(structure: Structure, seed: int) -> Structure:
        shaken = structure.copy()
        shaken.perturb(0.3, min_distance=0.2, seed=seed)  # as generated: off the crystal it relaxes to
        return shaken

    docs = [make_candidate(generated(wurtzite, 1), 0, e_above_hull=0.02, novel=True),
            make_candidate(generated(wurtzite, 2), 1, e_above_hull=0.05, novel=True),
            make_candidate(generated(rocksalt, 3), 2, e_above_hull=0.0, novel=True),
            make_candidate(generated(rutile, 4), 3, e_above_hull=0.09, novel=True),
            make_candidate(generated(rutile, 5), 4, e_above_hull=0.3, novel=True)]
    for doc, relaxed in zip(docs, (wurtzite, wurtzite, rocksalt, rutile, rutile)):
        doc.prefilter.unique = True
        _relaxed_to(doc, relaxed)

    report = study_report(docs, "hand-made", novelty_index=known)
    assert report.sun_count == 2 and report.sun_fraction == 0.4  # wurtzite once, rutile; not rocksalt; not 0.3 eV
    assert report.n_stable_relaxed_duplicates == 1 and report.n_stable_relaxed_to_known == 1
    assert report.sun_count_before_relaxation == 4
    assert report.novelty_source == mg_o_settings.data_file.name
    assert report.sun_candidate_ids == [docs[0].candidate_id, docs[3].candidate_id]  # lowest E_hull first

    table = tmp_path / "stable.csv"
    assert write_stable_csv(docs, table, threshold=0.1, sun_candidate_ids=report.sun_candidate_ids) == 4
    with table.open() as handle:
        sun_column = {row["candidate_id"]: row["sun"] for row in csv.DictReader(handle)}
    assert sun_column == {docs[0].candidate_id: "True", docs[1].candidate_id: "False",
                          docs[2].candidate_id: "False", docs[3].candidate_id: "True"}
    # without an index the prefilter's novelty stands: rocksalt counts, the wurtzite pair still once
    assert study_report(docs, "hand-made").sun_count == 3
