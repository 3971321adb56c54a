"""`--reference mp-api` through the real MPRester, answered by ``responses`` in the MP thermo API's format.

The heartbeat is the recorded one (tests/fixtures); the thermo documents are MP's MP2020 elemental reference entries
for Mg and O (real MP entries, bundled) and an MgO entry at MP's formation energy (-3.07 eV/atom), in the format the
thermo endpoint serves (``entries`` keyed by thermo type).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from pymatgen.entries.computed_entries import ComputedStructureEntry

from pccd_flows.settings import get_settings
from pccd_flows.stability.hull import HullCalculator
from pccd_flows.stability.references import ReferenceError, reference_set
from tests.factories import known_phase

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ENDPOINT = "https://api.materialsproject.org/"
API_KEY = "0123456789abcdefABCDEF0123456789"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    for name in ("MP_API_KEY", "PCCD_MP_API_KEY", "MP_API_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    from mp_api.client.core.client import _Rester

    clear = getattr(_Rester._get_heartbeat_info, "cache_clear", None)
    if clear:
        clear()
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def thermo_documents() -> list[dict]:
    from pccd_flows.data.io import read_records

    with gzip.open(get_settings().elemental_references_file, "rt") as handle:
        elements = json.load(handle)
    per_atom = {el: elements[el]["energy"] / sum(elements[el]["composition"].values()) for el in ("Mg", "O")}
    structures = {r.material_id: r.to_structure() for r in read_records(get_settings().data_file)
                  if r.material_id in ("mp-153", "mp-12957")}
    mgo = known_phase("MgO")
    entries = [
        ComputedStructureEntry(structures["mp-153"], per_atom["Mg"] * len(structures["mp-153"]), entry_id="mp-153-GGA"),
        ComputedStructureEntry(structures["mp-12957"], per_atom["O"] * len(structures["mp-12957"]),
                               entry_id="mp-12957-GGA"),
        ComputedStructureEntry(mgo, len(mgo) * (-3.07 + 0.5 * per_atom["Mg"] + 0.5 * per_atom["O"]), entry_id="mp-1265-GGA"),
    ]
    return [{"entries": {"GGA_GGA+U": e.as_dict()}, "thermo_type": "GGA_GGA+U"} for e in entries]


def test_mp_api_reference_runs_mprester_on_the_thermo_format(monkeypatch):
    monkeypatch.setenv("MP_API_KEY", API_KEY)
    heartbeat = json.loads((FIXTURES / "mp_api_heartbeat_response.json").read_text())
    queries = []

    def thermo(request):
        params = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
        queries.append(params)
        docs = thermo_documents()
        return 200, {"Content-Type": "application/json"}, json.dumps(
            {"data": docs, "meta": {"total_doc": len(docs), "max_limit": 1000}})

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add(responses.GET, ENDPOINT + "heartbeat", json=heartbeat)
        rsps.add_callback(responses.GET, ENDPOINT + "materials/thermo/", callback=thermo)
        references = reference_set("mp-api", ["O", "Mg"], "chgnet")
    assert queries and "GGA_GGA+U" in json.dumps(queries[0])
    assert {e.composition.reduced_formula for e in references.entries} == {"Mg", "O2", "MgO"}
    calculator = HullCalculator(references)
    mgo = next(e for e in references.entries if e.composition.reduced_formula == "MgO")
    assert calculator.stability(mgo).e_above_hull == pytest.approx(0.0, abs=1e-6)
    assert calculator.stability(mgo).formation_energy_per_atom == pytest.approx(-3.07, abs=1e-6)


def test_mp_api_reference_unreachable_is_one_line(monkeypatch):
    monkeypatch.setenv("MP_API_KEY", API_KEY)
    monkeypatch.setenv("MP_API_ENDPOINT", "http://127.0.0.1:9/")
    with pytest.raises(ReferenceError, match="cannot reach the Materials Project API") as failure:
        reference_set("mp-api", ["Mg", "O"], "chgnet")
    assert "\n" not in str(failure.value)
