"""HullBuilder: E_hull of every relaxed candidate against current references, incremental on re-runs."""

from __future__ import annotations

from pccd_flows.schemas.candidate import RelaxationResult
from pccd_flows.stability.engines import RelaxSettings, run_force_field
from pccd_flows.stores.builders import HullBuilder
from pccd_flows.stores.candidates import CandidateStore
from pccd_flows.stores.config import candidate_store, open_store
from tests.factories import known_phase, make_candidate


def relaxed_candidates():
    """Rock-salt MgO and a 30%-expanded copy, single points with CHGNet: one on the hull, one above it."""
    ground, expanded = known_phase("MgO"), known_phase("MgO")
    expanded.scale_lattice(expanded.volume * 1.3)
    outcomes = run_force_field([ground, expanded], "chgnet", RelaxSettings(relax=False))
    docs = []
    for index, outcome in enumerate(outcomes):
        doc = make_candidate(outcome.structure, index)
        doc.relaxation = RelaxationResult(engine="chgnet", structure=outcome.task_doc.output.structure.as_dict(),
                                          energy_per_atom=float(outcome.task_doc.output.energy) / len(outcome.structure))
        docs.append(doc)
    unrelaxed = make_candidate(known_phase("MgO"), 7)  # not relaxed: nothing to judge
    return [*docs, unrelaxed]


def test_hull_builder_judges_relaxed_candidates_once_per_reference(mg_o_settings, tmp_path):
    candidates = CandidateStore(candidate_store(mg_o_settings.model_copy(update={"store_dir": tmp_path})))
    docs = relaxed_candidates()
    candidates.upsert(docs)

    def run(reference: str) -> int:
        builder = HullBuilder(candidates.store, reference=reference, engine="chgnet", settings=mg_o_settings)
        with open_store(candidates.store):
            items = list(builder.get_items())
            builder.update_targets([builder.process_item(item) for item in items])
        return sum(len(item["docs"]) for item in items)

    assert run("mp-formation") == 2
    ground, expanded, unrelaxed = (candidates.get(d.candidate_id) for d in docs)
    assert abs(ground.e_above_hull) < 0.05
    assert expanded.e_above_hull > ground.e_above_hull + 0.05
    assert expanded.stability.reference == "mp-formation" and expanded.stability.decomposition == {"MgO": 1.0}
    assert unrelaxed.stability is None
    assert run("mp-formation") == 0  # nothing changed: nothing recomputed
    assert run("mp-structures") == 2  # other reference phases: everything recomputed
    assert candidates.get(docs[0].candidate_id).stability.reference == "mp-structures"
    assert candidates.count() == 3
    # the DFT stability check recomputes the decomposition products: the hull's own MP structure of each
    from pccd_flows.stability.products import decomposition_products

    expanded = candidates.get(docs[1].candidate_id)
    assert expanded.stability.decomposition == {"MgO": 1.0}
    ((fraction, structure),) = decomposition_products(expanded, mg_o_settings).values()
    assert fraction == 1.0 and structure.matches(known_phase("MgO"))
