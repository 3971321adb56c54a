"""A small, real Mg-O world: MP's Mg and O ground states and rock-salt MgO, with CHGNet energies cached per session."""

from __future__ import annotations

from pathlib import Path

import pytest
from pymatgen.core import Structure

from pccd_flows.data.io import read_records, write_records
from pccd_flows.data.records import MaterialRecord
from pccd_flows.settings import get_settings

KNOWN_PHASES = Path(__file__).parents[1] / "fixtures" / "known_phases"
MG_O_REFERENCES = {"mp-153", "mp-110", "mp-12957", "mp-607540"}  # two Mg and two O crystals, ground states incl.


def known_phase(formula: str) -> Structure:
    (path,) = KNOWN_PHASES.glob(f"{formula}_mp-*.cif")
    return Structure.from_file(path)


@pytest.fixture(scope="session")
def mg_o_settings(tmp_path_factory):
    """Settings whose data file holds only a few Mg and O crystals plus MgO, and whose caches are private."""
    root = tmp_path_factory.mktemp("mg-o")
    records = [r for r in read_records(get_settings().data_file) if r.material_id in MG_O_REFERENCES]
    records.append(MaterialRecord.from_structure("mp-1265", known_phase("MgO")))
    data = root / "mg_o.jsonl.gz"
    write_records(records, data)
    return get_settings().model_copy(update={
        "data_file": data, "reference_structures_file": data, "cache_dir": root / "cache",
        "store_dir": root / "store"})
