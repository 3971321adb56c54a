"""`pccd ehull` and `pccd query` end to end, on real structures and a real embedded store."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from pccd_flows.cli import app
from pccd_flows.stores.candidates import CandidateStore
from pccd_flows.stores.config import candidate_store
from tests.factories import KNOWN_PHASES

runner = CliRunner()


def test_ehull_json_on_a_cif(mg_o_environment):
    (mgo,) = KNOWN_PHASES.glob("MgO_*.cif")
    result = runner.invoke(app, ["ehull", str(mgo), "--steps", "50", "--reference", "mp-formation", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["reference"] == "mp-formation" and report["engine"] == "chgnet"
    (row,) = report["results"]
    assert set(row) >= {"source", "formula", "energy_per_atom", "e_above_hull", "decomposition"}
    assert row["formula"] == "MgO" and abs(row["e_above_hull"]) < 0.05


def test_ehull_bad_input_is_one_line(mg_o_environment, tmp_path):
    bad = tmp_path / "bad.cif"
    bad.write_text("not a crystal")
    result = runner.invoke(app, ["ehull", str(bad)])
    assert result.exit_code == 2 and "cannot read a structure" in result.output
    (mgo,) = KNOWN_PHASES.glob("MgO_*.cif")
    result = runner.invoke(app, ["ehull", str(mgo), "--engine", "mace"])
    assert result.exit_code == 2 and "unknown engine" in result.output


def test_query_json_csv_and_cifs(mg_o_environment, candidates, tmp_path):
    CandidateStore(candidate_store(mg_o_environment)).upsert(candidates)
    result = runner.invoke(app, ["query", "--max-ehull", "0.08", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    expected = sorted(c.e_above_hull for c in candidates if c.e_above_hull <= 0.08)
    assert report["n"] == len(expected) == len(report["candidates"])
    assert [c["e_above_hull"] for c in report["candidates"]] == expected
    assert {"candidate_id", "provenance", "prefilter", "stability"} <= set(report["candidates"][0])
    chemsys = candidates[0].chemsys
    result = runner.invoke(app, ["query", "--chemsys", chemsys, "--csv"])
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("candidate_id,formula,chemsys,e_above_hull")
    assert len(lines) - 1 == sum(c.chemsys == chemsys for c in candidates)
    result = runner.invoke(app, ["query", "--stable-only", "--cif-dir", str(tmp_path / "cifs")])
    assert result.exit_code == 0
    assert len(list((tmp_path / "cifs").glob("*.cif"))) == sum(c.e_above_hull <= 0 for c in candidates)
