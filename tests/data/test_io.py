from __future__ import annotations

import csv
import gzip
import json

import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher

from pccd_flows.data.io import DataFormatError, count_records, read_records, write_records
from pccd_flows.data.records import MaterialRecord
from pccd_flows.settings import get_settings


def test_bundled_data_loads_offline_with_its_properties():
    records = list(read_records(get_settings().data_file, limit=50))
    assert len(records) == 50
    assert records[0].material_id == "mp-1" and records[0].nsites == 1
    # The bundled file names properties by MP release; they land in the generic fields.
    assert any(r.band_gap is not None for r in records)
    assert any(r.total_magnetization is not None for r in records)


def test_bundled_data_has_the_whole_training_population():
    assert count_records(get_settings().data_file) == 50788


def test_jsonl_round_trip(tmp_path, bundled_sample):
    path = tmp_path / "subset.jsonl.gz"
    assert write_records(bundled_sample[:40], path) == 40
    again = list(read_records(path))
    assert [r.material_id for r in again] == [r.material_id for r in bundled_sample[:40]]
    assert [r.band_gap for r in again] == [r.band_gap for r in bundled_sample[:40]]
    matcher = StructureMatcher()
    assert all(matcher.fit(a.to_structure(), b.to_structure()) for a, b in zip(again, bundled_sample[:40]))


def test_mp20_style_csv(tmp_path, bundled_sample):
    path = tmp_path / "mp20.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["", "material_id", "formation_energy_per_atom", "band_gap", "pretty_formula", "cif"])
        for index, record in enumerate(bundled_sample[:10]):
            writer.writerow([index, record.material_id, -1.5, 0.7, record.formula, record.cif])
    records = list(read_records(path))
    assert [r.material_id for r in records] == [r.material_id for r in bundled_sample[:10]]
    assert records[0].band_gap == 0.7 and records[0].formation_energy_per_atom == -1.5
    assert records[3].to_structure().composition == bundled_sample[3].to_structure().composition
    assert count_records(path) is None


def test_csv_without_cif_column_is_refused(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("material_id,formula\nmp-1,Cs\n")
    with pytest.raises(DataFormatError, match="cif"):
        list(read_records(path))


def test_corrupt_jsonl_line_is_named(tmp_path, bundled_sample):
    path = tmp_path / "broken.jsonl.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(bundled_sample[0].model_dump_json() + "\n")
        handle.write("{not json\n")
    with pytest.raises(DataFormatError, match=r"broken.jsonl.gz:2"):
        list(read_records(path))


def test_unknown_format_and_missing_file(tmp_path):
    unknown = tmp_path / "structures.xyz"
    unknown.write_text("2\n\nNa 0 0 0\nCl 2 0 0\n")
    with pytest.raises(DataFormatError, match="unknown data format"):
        list(read_records(unknown))
    with pytest.raises(FileNotFoundError, match="no such data file"):
        list(read_records(tmp_path / "missing.jsonl.gz"))


def test_record_written_without_unknown_properties(tmp_path, bundled_sample):
    record = MaterialRecord(material_id="x-1", cif=bundled_sample[0].cif)
    path = tmp_path / "one.jsonl"
    write_records([record], path)
    assert json.loads(path.read_text()) == {"material_id": "x-1", "cif": bundled_sample[0].cif}
