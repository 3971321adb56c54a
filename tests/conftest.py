"""Shared fixtures: real crystals from the bundled MP data, spread over the whole file."""

from __future__ import annotations

import itertools
import os
import warnings

# Most tests check one judge's path; the confirmation by a second force field (the default, which doubles the
# relaxations) is checked where it is the subject (tests/pipeline/test_confirm.py). Set before any settings load,
# so the CLI run in subprocesses inherits it.
os.environ.setdefault("PCCD_CONFIRM_WITH", "none")

import pytest
from pymatgen.core import Lattice, Structure

from pccd_flows.data.io import read_records, write_records
from pccd_flows.data.records import MaterialRecord
from pccd_flows.model.config import get_preset
from pccd_flows.model.dataset import load_encoded_dataset
from pccd_flows.model.train import TrainingSettings, train
from pccd_flows.settings import get_settings
from tests.factories import known_phase, make_candidate

warnings.filterwarnings("ignore", category=UserWarning)

SAMPLE_STRIDE = 170  # ~300 crystals covering unaries to ternaries, 1 to 16 sites


@pytest.fixture(scope="session")
def bundled_sample() -> list[MaterialRecord]:
    records = read_records(get_settings().data_file)
    return list(itertools.islice(records, 0, None, SAMPLE_STRIDE))


@pytest.fixture(scope="session")
def bundled_structures(bundled_sample) -> list[tuple[str, Structure]]:
    return [(record.material_id, record.to_structure()) for record in bundled_sample]


@pytest.fixture
def cesium_chloride() -> Structure:
    return Structure(Lattice.cubic(4.12), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def bad_records() -> dict[str, MaterialRecord]:
    """One record per kind of bad input, each keyed by the reason the codec must give."""
    base = Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    cif = base.to(fmt="cif")
    quaternary = Structure(
        Lattice.cubic(5.0), ["Li", "Na", "K", "Cl"], [[0, 0, 0], [0.5, 0, 0], [0, 0.5, 0], [0.5, 0.5, 0.5]]
    )
    big = base.copy()
    big.make_supercell([3, 3, 1])
    partial = cif.replace("Na  Na0  1  0.00000000  0.00000000  0.00000000  1", "Na  Na0  1  0.0  0.0  0.0  0.5")
    assert partial != cif
    return {
        "too many elements": MaterialRecord.from_structure("bad-quaternary", quaternary),
        "too many sites": MaterialRecord.from_structure("bad-18-sites", big),
        "partial occupancy": MaterialRecord(material_id="bad-partial", cif=partial),
        "unknown species": MaterialRecord(material_id="bad-species", cif=cif.replace("Na  Na0", "Xx  Xx0")),
        "malformed structure": MaterialRecord(material_id="bad-cif", cif="data_broken\n_cell_length_a 3\nloop_\n"),
    }


@pytest.fixture
def bad_record_set() -> dict[str, MaterialRecord]:
    return bad_records()


@pytest.fixture(scope="session")
def small_dataset():
    return load_encoded_dataset(get_settings().data_file, limit=200, workers=1)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, small_dataset):
    """A tiny model trained for a few steps: fast, and its conditional and unconditional outputs already differ."""
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    settings = TrainingSettings(batch_size=32, learning_rate=2e-3, warmup_steps=1, validation_samples=32)
    train(small_dataset, path, config=get_preset("tiny"), settings=settings, max_steps=8)
    return path


MG_O_REFERENCES = {"mp-153", "mp-110", "mp-12957", "mp-607540"}  # two Mg and two O crystals, ground states incl.


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
        "reference_energy_seed_file": None,  # compute the reference energies: that path is what these tests check
        "store_dir": root / "store"})


@pytest.fixture
def mg_o_environment(mg_o_settings, monkeypatch, tmp_path):
    """The Mg-O world through environment variables (what the CLI and jobflow jobs read), with a private store."""
    for name, value in {"PCCD_DATA_FILE": mg_o_settings.data_file, "PCCD_CACHE_DIR": mg_o_settings.cache_dir,
                        "PCCD_REFERENCE_STRUCTURES_FILE": mg_o_settings.reference_structures_file,
                        "PCCD_STORE_DIR": tmp_path / "store"}.items():
        monkeypatch.setenv(name, str(value))
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.fixture
def candidates(bundled_structures) -> list:
    """Twelve candidates over a few chemical systems with a spread of energies above hull."""
    structures = [s for _, s in bundled_structures if len(s.composition.elements) >= 2][:12]
    return [make_candidate(s, i, e_above_hull=round(0.05 * (i - 2), 3), novel=i % 2 == 0)
            for i, s in enumerate(structures)]
