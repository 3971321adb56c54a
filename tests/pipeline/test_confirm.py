"""The default verdict needs two force fields: CHGNet relaxes and judges every candidate, SevenNet-0 relaxes those
within ``confirm_below`` of the hull again, and the higher E_hull is the candidate's (docs/stability.md: against
GPAW PBE, "stable at 0.1 eV/atom" held for 0.58 of CHGNet's calls and 0.89 of the two together)."""

from __future__ import annotations

import json

from pymatgen.core import Lattice, Structure
from typer.testing import CliRunner

from pccd_flows.cli import app
from pccd_flows.pipeline import judge_candidates, needs_judging, relax_candidates
from pccd_flows.schemas.candidate import PrefilterResult
from pccd_flows.settings import PccdSettings
from pccd_flows.stability.products import decomposition_phases
from pccd_flows.stores.candidates import CandidateStore
from tests.factories import KNOWN_PHASES as KNOWN
from tests.factories import known_phase, make_candidate

runner = CliRunner()


def test_the_default_judge_is_chgnet_confirmed_by_sevennet(monkeypatch):
    monkeypatch.delenv("PCCD_CONFIRM_WITH", raising=False)
    settings = PccdSettings()
    assert (settings.engine, settings.confirm_engines) == ("chgnet", ["sevennet"])
    monkeypatch.setenv("PCCD_CONFIRM_WITH", "none")
    assert PccdSettings().confirm_engines == []


def test_a_verdict_is_the_higher_e_hull_of_both_force_fields_and_each_is_kept(mg_o_environment):
    # rock salt MgO (the ground state) and zinc blende MgO (~0.1 eV/atom above it by DFT and by both potentials)
    zinc_blende = Structure.from_spacegroup("F-43m", Lattice.cubic(4.6), ["Mg", "O"],
                                            [[0, 0, 0], [0.25, 0.25, 0.25]]).get_primitive_structure()
    docs = [make_candidate(s, i).model_copy(update={"prefilter": PrefilterResult(passed=True)})
            for i, s in enumerate((known_phase("MgO"), zinc_blende))]
    relaxed = relax_candidates(docs, "chgnet", 60, 0.05, store=CandidateStore())
    result = judge_candidates(relaxed, "mp-structures", "chgnet", relaxed_novelty=False,
                              confirm_with="sevennet", confirm_below=1.0)
    assert not result.reference_errors and not result.confirmation_errors
    for doc in result.candidates:
        chgnet, sevennet = doc.judgements["chgnet"], doc.judgements["sevennet"]
        assert (chgnet.engine, sevennet.engine, sevennet.model) == ("chgnet", "sevennet", "7net-0")
        assert doc.stability.engine == "chgnet+sevennet"
        assert doc.e_above_hull == max(chgnet.e_above_hull, sevennet.e_above_hull)
        assert doc.stability.stable_at["0.08"] == (chgnet.stable_at["0.08"] and sevennet.stable_at["0.08"])
    rock_salt, zinc_blende = result.candidates
    assert abs(rock_salt.e_above_hull) < 0.02 and 0.03 < zinc_blende.e_above_hull < 0.3
    # what the DFT check and the follow-up read: the first engine's hull phases, not a combined engine name
    assert set(decomposition_phases(zinc_blende)) == set(zinc_blende.judgements["chgnet"].decomposition) == {"MgO"}
    # judged again (a changed reference set would redo it): the stored second opinion is reused, not recomputed
    again = judge_candidates(result.candidates, "mp-structures", "chgnet", relaxed_novelty=False,
                             confirm_with="sevennet", confirm_below=1.0)
    assert [d.judgements["sevennet"] for d in again.candidates] == [d.judgements["sevennet"]
                                                                     for d in result.candidates]
    # from the relaxed structure instead: a verdict from the generated one does not stand for it
    assert not any(needs_judging(d, "mp-structures", "sevennet", 1.0, confirm_from="generated")
                   for d in result.candidates)
    assert all(needs_judging(d, "mp-structures", "sevennet", 1.0, confirm_from="relaxed") for d in result.candidates)
    from_relaxed = judge_candidates(result.candidates, "mp-structures", "chgnet", relaxed_novelty=False,
                                    confirm_with="sevennet", confirm_below=1.0, confirm_from="relaxed")
    for before, doc in zip(result.candidates, from_relaxed.candidates, strict=True):
        assert doc.judgements["sevennet"].relaxed_from == "relaxed"
        assert doc.judgements["chgnet"] == before.judgements["chgnet"]  # the first verdict stands
        assert doc.e_above_hull == max(doc.judgements["chgnet"].e_above_hull, doc.judgements["sevennet"].e_above_hull)
    # outside the window the first judge's verdict stands alone, named as such
    narrow = judge_candidates(relaxed, "mp-structures", "chgnet", relaxed_novelty=False,
                              confirm_with="sevennet", confirm_below=0.0)
    assert narrow.candidates[1].stability.engine == "chgnet" and "sevennet" not in narrow.candidates[1].judgements


def test_screen_stores_the_confirmed_verdict_and_rejects_an_unknown_confirming_engine(mg_o_environment, tmp_path,
                                                                                     monkeypatch):
    bad = runner.invoke(app, ["screen", "--chemsys", "Mg-O", "--n", "2", "--confirm-with", "mace", "--run-locally"])
    assert bad.exit_code == 2 and "--confirm-with 'mace'" in bad.output
    monkeypatch.setenv("PCCD_CONFIRM_BELOW", "5")  # confirm whatever the tiny sample holds
    monkeypatch.delenv("PCCD_CONFIRM_WITH")
    from pccd_flows.settings import get_settings

    get_settings.cache_clear()
    result = runner.invoke(app, ["screen", "--chemsys", "Mg-O", "--n", "4", "--seed", "0", "--relax-steps", "60",
                                 "--run-locally"])
    assert result.exit_code == 0, result.output
    assert "chgnet confirmed by sevennet" in result.output
    listed = runner.invoke(app, ["query", "--chemsys", "Mg-O", "--json"])
    judged = [d for d in json.loads(listed.stdout)["candidates"] if d["stability"]]
    assert judged, listed.stdout
    for doc in judged:
        values = {name: v["e_above_hull"] for name, v in doc["judgements"].items()}
        assert set(values) == {"chgnet", "sevennet"} and doc["stability"]["engine"] == "chgnet+sevennet"
        assert doc["e_above_hull"] == max(values.values())


def test_ehull_gives_both_force_fields_verdicts_and_the_higher_one(mg_o_environment):
    result = runner.invoke(app, ["ehull", str(next(KNOWN.glob("MgO_mp-*.cif"))), "--steps", "30",
                                 "--confirm-with", "sevennet", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    (row,) = report["results"]
    assert report["confirm_with"] == ["sevennet"] and row["judge"] == "chgnet+sevennet"
    assert set(row["judgements"]) == {"chgnet", "sevennet"}
    assert row["e_above_hull"] == max(row["judgements"].values()) and abs(row["e_above_hull"]) < 0.05
