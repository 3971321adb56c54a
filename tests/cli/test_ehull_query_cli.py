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


def test_query_confirmed_by_a_second_judge(mg_o_environment, candidates):
    # SevenNet's verdict on some: agreeing on every third, far above on the others, none on the odd ones
    judged = []
    for i, doc in enumerate(candidates):
        if i % 2 == 0:
            second = doc.stability.model_copy(update={"e_above_hull": doc.e_above_hull + (0.0 if i % 3 == 0 else 0.5)})
            doc = doc.model_copy(update={"judgements": {"sevennet": second}})
        judged.append(doc)
    CandidateStore(candidate_store(mg_o_environment)).upsert(judged)
    result = runner.invoke(app, ["query", "--confirmed-by", "sevennet", "--json"])
    assert result.exit_code == 0, result.output
    expected = {d.candidate_id for i, d in enumerate(judged) if i % 6 == 0 and d.e_above_hull <= 0.1}
    assert expected and {c["candidate_id"] for c in json.loads(result.stdout)["candidates"]} == expected
    tighter = runner.invoke(app, ["query", "--confirmed-by", "sevennet", "--max-ehull", "0.0", "--json"])
    assert {c["candidate_id"] for c in json.loads(tighter.stdout)["candidates"]} == {
        d.candidate_id for i, d in enumerate(judged) if i % 6 == 0 and d.e_above_hull <= 0.0}
    bad = runner.invoke(app, ["query", "--confirmed-by", "mace"])
    assert bad.exit_code == 2 and "--confirmed-by 'mace'" in bad.output
