"""What the command line prints where: results on stdout (whole, into pipes), progress and chatter on stderr, and
`pccd query`'s order; through the real CLI, on real structures and a real embedded store."""

from __future__ import annotations

import json

import responses
from typer.testing import CliRunner

from pccd_flows.cli import app
from pccd_flows.stores.candidates import CandidateStore
from pccd_flows.stores.config import candidate_store
from tests.factories import KNOWN_PHASES, make_candidate
from tests.stability.test_mp_api_reference import API_KEY, FIXTURES, thermo_documents

runner = CliRunner()
(MGO_CIF,) = KNOWN_PHASES.glob("MgO_*.cif")


def _store_with_unjudged_and_rejected(settings, bundled_structures) -> tuple[list, list, list]:
    structures = [s for _, s in bundled_structures if len(s.composition.elements) >= 2]
    judged = [make_candidate(s, i, e_above_hull=0.3 - 0.1 * i) for i, s in enumerate(structures[:3])]
    unjudged = [make_candidate(s, 10 + i) for i, s in enumerate(structures[3:5])]
    rejected = []
    for i, structure in enumerate(structures[5:9]):
        doc = make_candidate(structure, 20 + i)
        doc.prefilter.passed, doc.prefilter.reject_reason = False, "not charge balanced"
        rejected.append(doc)
    CandidateStore(candidate_store(settings)).upsert([*rejected, *unjudged, *judged])
    return judged, unjudged, rejected


def test_query_lists_unjudged_and_rejected_candidates_last(mg_o_environment, bundled_structures):
    judged, unjudged, rejected = _store_with_unjudged_and_rejected(mg_o_environment, bundled_structures)
    result = runner.invoke(app, ["query", "--limit", "3", "--json"])
    assert result.exit_code == 0, result.output
    listed = [c["candidate_id"] for c in json.loads(result.stdout)["candidates"]]
    assert listed == [d.candidate_id for d in sorted(judged, key=lambda d: d.e_above_hull)]
    result = runner.invoke(app, ["query", "--json"])
    ids = [c["candidate_id"] for c in json.loads(result.stdout)["candidates"]]
    assert len(ids) == 9
    assert set(ids[3:5]) == {d.candidate_id for d in unjudged}
    assert set(ids[5:]) == {d.candidate_id for d in rejected}
    result = runner.invoke(app, ["query", "--sort", "formation_energy_per_atom", "--limit", "4", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n"] == 4


def test_query_table_into_a_pipe_keeps_ids_whole(mg_o_environment, bundled_structures):
    judged, unjudged, rejected = _store_with_unjudged_and_rejected(mg_o_environment, bundled_structures)
    result = runner.invoke(app, ["query"])  # CliRunner's stdout is no terminal, as a pipe
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    for doc in [*judged, *unjudged, *rejected]:
        assert sum(doc.candidate_id in line for line in lines) == 1, (doc.candidate_id, result.stdout)
    assert sum("rejected" in line for line in lines) == len(rejected)


def test_help_into_a_pipe_keeps_option_names_whole():
    result = runner.invoke(app, ["screen", "--help"])
    assert result.exit_code == 0
    for option in ("--min-covalent-ratio", "--icsd-oxidation-states / --smact-only", "--follow-up-below",
                   "--write-workflow"):
        assert option in result.stdout, option
    assert "…" not in result.stdout


def test_followup_prints_its_results_on_stdout_and_chatter_on_stderr(tmp_path):
    silicon = str(next(KNOWN_PHASES.glob("Si_mp-*.cif")))
    result = runner.invoke(app, ["followup", "--cif", silicon, "--dft", "none", "--phonons", "chgnet"])
    assert result.exit_code == 0, result.output
    assert "formula: Si" in result.stdout and "has_imaginary_modes: False" in result.stdout
    assert "CHGNet" not in result.stdout  # its "CHGNet v0.3.0 initialized with ..." banner
    assert "follow-up of Si" in result.stderr


def test_ehull_with_an_mp_api_endpoint_without_trailing_slash(mg_o_environment, monkeypatch):
    monkeypatch.setenv("MP_API_KEY", API_KEY)
    monkeypatch.setenv("MP_API_ENDPOINT", "https://api.materialsproject.org")
    from mp_api.client.core.client import _Rester

    clear = getattr(_Rester._get_heartbeat_info, "cache_clear", None)
    if clear:
        clear()
    from pccd_flows.settings import get_settings

    get_settings.cache_clear()
    heartbeat = json.loads((FIXTURES / "mp_api_heartbeat_response.json").read_text())
    docs = thermo_documents()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add(responses.GET, "https://api.materialsproject.org/heartbeat", json=heartbeat)
        rsps.add(responses.GET, "https://api.materialsproject.org/materials/thermo/",
                 json={"data": docs, "meta": {"total_doc": len(docs), "max_limit": 1000}})
        result = runner.invoke(app, ["ehull", str(MGO_CIF), "--no-relax", "--reference", "mp-api", "--json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)["results"]
    assert row["formula"] == "MgO" and row["error"] is None


def test_screen_shows_its_jobs_on_stderr_and_results_on_stdout(mg_o_environment, tiny_checkpoint):
    result = runner.invoke(app, ["screen", "--chemsys", "Mg-O", "--n", "2", "--steps", "5", "--relax-steps", "5",
                                 "--checkpoint", str(tiny_checkpoint), "--reference", "mp-formation",
                                 "--run-locally"])
    assert result.exit_code == 0, result.output
    for stage in ("generate Mg-O", "prefilter Mg-O", "relax Mg-O", "stability Mg-O"):
        assert sum(line.endswith(stage) for line in result.stderr.splitlines()) == 1, (stage, result.stderr)
    assert len(result.stdout.strip().splitlines()) == 1, result.stdout
    (summary,) = result.stdout.strip().splitlines()
    assert summary.startswith("2 candidates stored") and "pccd query --chemsys Mg-O --max-ehull 0.08" in summary
