"""The study driver on the shipped checkpoint and a handful of Mg-O candidates: exactly the target screened,
relaxed, judged; an interruption mid-relaxation resumes without redoing or duplicating; the report and figures."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from pccd_flows.cli import app
from pccd_flows.stores.candidates import CandidateStore
from pccd_flows.study.paper746 import StudySpec, load_progress, run_study, study_candidates

SPEC = StudySpec(name="mini", target=3, systems=["Mg-O"], per_batch=4, relax_steps=40, relax_chunk=2, relax_workers=2,
                 sampler_steps=10, reference="mp-structures")


class Interrupted(Exception):
    pass


def interrupt_after_first_relax_chunk(message: str) -> None:
    if message.startswith("relaxed "):
        raise Interrupted


def test_study_resumes_after_an_interruption_without_redoing_or_duplicating(mg_o_environment, tmp_path):
    store = CandidateStore()
    with pytest.raises(Interrupted):
        run_study(SPEC, store, mg_o_environment.store_dir, log=interrupt_after_first_relax_chunk)
    before = {d.candidate_id: d for d in study_candidates(store, "mini")}
    assert len(before) == 3  # exactly the target passed the screening
    relaxed_before = {cid: d.relaxation for cid, d in before.items() if d.relaxation is not None}
    # two worker processes: whichever chunk (of 2 or 1) finished first was stored, the other was dropped
    assert 1 <= len(relaxed_before) <= 2 and not any(d.stability for d in before.values())
    with pytest.raises(ValueError, match="--resume"):
        run_study(SPEC, store, mg_o_environment.store_dir)  # a fresh run would mix two studies

    progress = run_study(SPEC, store, mg_o_environment.store_dir, resume=True, log=lambda _: None)
    after = {d.candidate_id: d for d in study_candidates(store, "mini")}
    assert set(after) == set(before)  # no candidate regenerated or duplicated
    for cid, relaxation in relaxed_before.items():  # finished relaxations were not redone
        assert after[cid].relaxation == relaxation
    assert all(d.e_above_hull is not None for d in after.values())
    assert progress.finished and progress.screened == 3 and progress.judged == 3
    assert load_progress(SPEC, mg_o_environment.store_dir, resume=True).batches_done == progress.batches_done

    runner = CliRunner()
    plots, table = tmp_path / "plots", tmp_path / "stable.csv"
    result = runner.invoke(app, ["report", "study", "--name", "mini", "--json", "--plots", str(plots),
                                 "--csv", str(table)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n_structures"] == 3 and report["n_judged"] == 3
    fractions = [report[k] for k in ("fraction_ehull_below_250meV", "fraction_ehull_below_80meV",
                                     "fraction_ehull_below_0meV")]
    assert fractions == sorted(fractions, reverse=True) and all(0 <= f <= 1 for f in fractions)
    assert {"sun_fraction", "engine", "reference", "wall_seconds"} <= set(report)
    assert 0 <= report["n_relaxations_converged"] <= report["n_judged"]
    assert sum(row["n"] for row in report["by_initial_min_distance"]) == report["n_judged"]
    assert report["engine"] == "chgnet" and report["reference"] == "mp-structures" and report["wall_seconds"] > 0
    assert report["comparison"][1]["below_250meV"] == 0.6268
    assert (plots / "ehull_distribution.png").stat().st_size > 10_000
    rows = table.read_text().splitlines()
    assert rows[0].startswith("candidate_id,formula") and len(rows) - 1 == report["n_ehull_below_80meV"]


def test_paper_pools_put_the_case_studies_first_and_draw_the_rest_reproducibly():
    systems = StudySpec().chemical_systems()
    assert systems[:3] == ["Ca-O-Sn", "Cd-Mg-O", "Mg-O-Sc"] and len(systems) == 36 == len(set(systems))
    assert all("O" in s.split("-") for s in systems)
    assert systems == StudySpec().chemical_systems() != StudySpec(seed=1).chemical_systems()


def test_a_progress_record_from_before_the_repulsion_resumes_only_without_it(tmp_path):
    """Runs recorded before the sampler's overlap repulsion existed sampled without it: resuming them with the new
    default would mix two samplers in one study."""
    from pccd_flows.study.paper746 import StudyProgress, progress_path, save_progress

    old = StudySpec(name="old", sampler_repulsion=0.0)
    save_progress(StudyProgress(spec=old, batches_done=7), tmp_path)
    path = progress_path(old, tmp_path)
    record = json.loads(path.read_text())
    del record["spec"]["sampler_repulsion"]
    path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match="sampler_repulsion"):
        load_progress(StudySpec(name="old"), tmp_path, resume=True)
    assert load_progress(old, tmp_path, resume=True).batches_done == 7


def test_a_batch_stored_but_not_recorded_counts_once_after_resuming(mg_o_environment):
    """Interrupted after a batch is in the store but before the progress record says so, the resumed run
    regenerates that batch (the same candidates) and must not count its passes twice: exactly the target passes."""
    spec = SPEC.model_copy(update={"name": "mini-screen", "target": 4})

    class InterruptedAfterFirstStore(CandidateStore):
        def upsert(self, docs):
            stored = super().upsert(docs)
            raise Interrupted(stored)

    with pytest.raises(Interrupted):
        run_study(spec, InterruptedAfterFirstStore(), mg_o_environment.store_dir, relax_here=False)
    store = CandidateStore()
    first_batch_passes = store.count({"study": "mini-screen", "prefilter.passed": True})
    assert first_batch_passes > 0  # otherwise counting twice would go unnoticed
    assert load_progress(spec, mg_o_environment.store_dir, resume=True).batches_done == 0

    progress = run_study(spec, store, mg_o_environment.store_dir, resume=True, relax_here=False, log=lambda _: None)
    assert store.count({"study": "mini-screen", "prefilter.passed": True}) == spec.target == progress.screened


def test_a_study_resumes_only_with_the_checkpoint_its_candidates_came_from(mg_o_environment, tmp_path):
    """A new release of the shipped checkpoint must not slip into a study begun with the old one."""
    from pccd_flows.model.checkpoint import load_checkpoint, save_checkpoint
    from pccd_flows.settings import get_settings

    shipped = get_settings().checkpoint
    payload = load_checkpoint(shipped)
    other = tmp_path / "retrained.pt"
    save_checkpoint(other, {**{k: v for k, v in payload.items() if k not in ("sha256", "path")},
                            "history": [*payload["history"], {"step": payload["step"] + 1}]})
    spec = SPEC.model_copy(update={"name": "mini-ckpt", "target": 1})
    run_study(spec, CandidateStore(), mg_o_environment.store_dir, relax_here=False, log=lambda _: None)

    more = spec.model_copy(update={"target": 2, "checkpoint": str(other)})
    with pytest.raises(ValueError, match="generated with checkpoint"):
        run_study(more, CandidateStore(), mg_o_environment.store_dir, resume=True, relax_here=False)
    copy = tmp_path / "same-weights-elsewhere.pt"
    copy.write_bytes(shipped.read_bytes())  # the same file at another path resumes
    progress = run_study(more.model_copy(update={"checkpoint": str(copy)}), CandidateStore(),
                         mg_o_environment.store_dir, resume=True, relax_here=False, log=lambda _: None)
    assert progress.screened == 2
