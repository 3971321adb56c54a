"""The VASP engine as far as it runs without VASP: atomate2's MP-compatible makers and the inputs they would write."""

from __future__ import annotations

from jobflow import Flow
from pymatgen.core import Lattice, Structure

from pccd_flows.makers import RelaxCandidatesMaker
from pccd_flows.schemas.candidate import PrefilterResult
from tests.factories import known_phase, make_candidate

LICOO2 = Structure.from_spacegroup("R-3m", Lattice.hexagonal(2.82, 14.05), ["Li", "Co", "O"],
                                   [[0, 0, 0], [0, 0, 0.5], [0, 0, 0.26]])


def test_vasp_relaxation_writes_mp_compatible_inputs(tmp_path):
    maker = RelaxCandidatesMaker(engine="vasp").relax_maker()
    flow = maker.make(LICOO2)
    assert isinstance(flow, Flow) and len(flow.jobs) >= 2  # double relax + static
    relax = maker.relax_maker.relax_maker1
    inputs = relax.input_set_generator.get_input_set(LICOO2, potcar_spec=True)
    inputs.write_input(tmp_path)
    assert {"INCAR", "KPOINTS", "POSCAR", "POTCAR.spec"} <= {p.name for p in tmp_path.iterdir()}
    incar = inputs.incar
    assert incar["ENCUT"] == 520 and incar["LDAU"] is True  # GGA+U for a Co oxide, as MP2020 expects
    u_values = dict(zip(inputs.poscar.site_symbols, incar["LDAUU"]))
    assert u_values["Co"] == 3.32 and u_values["O"] == 0
    plain = relax.input_set_generator.get_input_set(known_phase("MgO"), potcar_spec=True).incar
    assert not plain.get("LDAU", False)  # plain GGA without a U element


def test_vasp_engine_fans_out_one_flow_per_candidate():
    docs = [make_candidate(s, i).model_copy(update={"prefilter": PrefilterResult(passed=True)})
            for i, s in enumerate([known_phase("MgO"), LICOO2])]
    from jobflow import JobStore
    from maggma.stores import MemoryStore

    store = JobStore(MemoryStore(), additional_stores={"data": MemoryStore()})
    store.connect()
    replacement = RelaxCandidatesMaker(engine="vasp").make(docs).run(store=store).replace
    names = [j.name for j in replacement.jobs]
    assert sum(name.startswith("relax") for name in names) == 2
    assert "collect_relaxations" in names
