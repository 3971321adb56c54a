"""`pccd benchmark --held-out N` end to end in the Mg-O world: PCCD asked for crystals of the held-out split."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict

import pytest
from pymatgen.core import Composition, Lattice, Structure
from typer.testing import CliRunner

from pccd_flows.benchmark.generators import held_out_pccd_candidates, held_out_positions
from pccd_flows.benchmark.run import BenchmarkSettings, run_benchmark
from pccd_flows.benchmark.schemas import BenchmarkCandidate, GeneratorMetrics
from pccd_flows.cli import app
from pccd_flows.data.io import read_records, write_records
from pccd_flows.data.records import MaterialRecord
from pccd_flows.evaluation.generation import draw_compositions
from pccd_flows.model.dataset import is_validation
from pccd_flows.settings import get_settings
from tests.factories import known_phase

runner = CliRunner()


def chemsys_of(structure: Structure) -> str:
    return "-".join(sorted({el.symbol for el in structure.composition.elements}))


@pytest.fixture
def held_out_data(mg_o_environment, monkeypatch, tmp_path):
    """The Mg-O world's data file plus three crystals of its systems that fall in the held-out split.

    Every crystal of the Mg-O world is in the training split, so a held-out draw from it has nothing to draw: the
    added crystals (MgO rock salt and zinc blende, bcc Mg) get ids that the project's split puts in validation.
    Binary and unary crystals of Mg and O only: the mp-formation hull needs no element beyond the world's.
    """
    records = list(read_records(mg_o_environment.data_file))
    assert not any(is_validation(r.material_id) for r in records)
    structures = [known_phase("MgO"),
                  Structure.from_spacegroup("F-43m", Lattice.cubic(4.5), ["Mg", "O"], [[0, 0, 0], [0.25] * 3]),
                  Structure(Lattice.cubic(3.57), ["Mg", "Mg"], [[0, 0, 0], [0.5, 0.5, 0.5]])]
    ids = itertools.islice(filter(is_validation, (f"held-out-{k}" for k in itertools.count())), len(structures))
    records += [MaterialRecord.from_structure(material_id, s) for material_id, s in zip(ids, structures)]
    path = tmp_path / "held_out.jsonl.gz"
    write_records(records, path)
    monkeypatch.setenv("PCCD_DATA_FILE", str(path))
    get_settings.cache_clear()
    return path


def last_rows(path) -> dict[str, BenchmarkCandidate]:
    rows = {}
    for line in path.read_text().splitlines():
        row = BenchmarkCandidate.model_validate_json(line)
        rows[row.key] = row
    return rows


def test_held_out_benchmark_json_rows_and_resume(held_out_data, tmp_path):
    out = tmp_path / "run"
    args = ["benchmark", "--held-out", "4", "--generator", "pccd", "--relax-steps", "20",
            "--reference", "mp-formation", "--novelty-data", str(held_out_data), "--out", str(out), "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {"systems", "judge", "generators", "per_system", "settings", "wall_seconds"} <= set(report)
    assert list(report["generators"]) == ["pccd"]
    metrics = report["generators"]["pccd"]
    assert set(metrics) == set(GeneratorMetrics.model_fields)
    assert metrics["n"] == 4 and metrics["n"] == metrics["n_judged"] + metrics["n_failed"]
    assert report["settings"]["held_out"] == 4 and report["settings"]["target_composition"] is False
    assert report["settings"]["n"] is None and report["per_system"] == {}
    assert report["judge"]["reference"] == "mp-formation"
    assert "judging pccd: " in result.stderr

    held_out = {r.material_id: r.to_structure() for r in read_records(held_out_data) if is_validation(r.material_id)}
    lines = (out / "candidates.jsonl").read_text().splitlines()
    rows = last_rows(out / "candidates.jsonl")
    assert len(rows) == 4
    indices = defaultdict(list)
    for row in rows.values():
        assert row.generator == "pccd" and row.origin["seed"] == 0
        drawn = held_out[row.origin["held_out_material_id"]]  # a crystal of the held-out split
        assert row.chemsys == chemsys_of(drawn) and "composition" not in row.origin
        assert row.judged or row.generation_error
        indices[row.chemsys].append(row.index)
    assert sorted(row.origin["index"] for row in rows.values()) == [0, 1, 2, 3]
    assert all(sorted(found) == list(range(len(found))) for found in indices.values())
    assert report["systems"] == sorted(indices)

    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert (out / "candidates.jsonl").read_text().splitlines() == lines  # resumed: nothing sampled or judged again
    assert "judging" not in again.stderr
    assert json.loads(again.stdout)["generators"] == report["generators"]


def test_held_out_judging_goes_in_chunks_and_resumes_after_a_cut(held_out_data, tmp_path):
    settings = BenchmarkSettings(held_out=4, generators=("pccd",), reference="mp-formation", relax_steps=20,
                                 novelty_data=str(held_out_data))
    out = tmp_path / "run"
    lines: list[str] = []
    report, _ = run_benchmark(settings=settings, out_dir=out, log=lines.append, judge_chunk=3)
    made = report.generators["pccd"].n_generated
    progress = [line for line in lines if line.startswith("judging pccd")]
    assert progress == [f"judging pccd: {min(done, made)}/{made}" for done in range(3, made + 3, 3)]
    stored = (out / "candidates.jsonl").read_text().splitlines()
    assert len(stored) == 4 + made  # the samples, then each judged row as its chunk ends
    judged = last_rows(out / "candidates.jsonl")

    # a run killed while judging its second chunk: the first chunk's rows stay, the rest is judged on the rerun
    (out / "candidates.jsonl").write_text("\n".join(stored[:4 + min(3, made)]) + "\n")
    lines.clear()
    _, again = run_benchmark(settings=settings, out_dir=out, log=lines.append, judge_chunk=3)
    assert not any(line.startswith("sampling") for line in lines)
    assert [line for line in lines if line.startswith("judging pccd")] == (
        [f"judging pccd: {made}/{made}"] if made > 3 else [])
    assert {row.key: row.judged for row in again} == {key: row.judged for key, row in judged.items()}


def test_held_out_pccd_rows_ask_for_each_drawn_crystals_composition(held_out_data):
    drawn, structures = draw_compositions(held_out_data, 3, seed=1, target_composition=True)
    rows = held_out_pccd_candidates(drawn, seed=1)
    assert [row.origin["index"] for row in rows] == [0, 1, 2]
    for row, material_id, structure, position in zip(rows, drawn.material_ids, structures,
                                                     held_out_positions(drawn), strict=True):
        assert is_validation(material_id) and row.origin["held_out_material_id"] == material_id
        assert Composition(row.origin["composition"]) == structure.composition
        assert (row.chemsys, row.index) == position and row.chemsys == chemsys_of(structure)
        assert row.generator == "pccd" and row.generation_cpu_seconds > 0
        assert row.generation_error if row.structure is None else set(row.cell_composition) <= set(structure.symbol_set)


def test_held_out_bad_input_is_one_line(mg_o_environment):
    for args, message in (
        (["--held-out", "3", "--chemsys", "Mg-O"], "give one of them"),
        ([], "--held-out N"),
        (["--held-out", "3", "--n", "2"], "--n sets"),
        (["--chemsys", "Mg-O", "--target-composition"], "needs --held-out"),
        (["--held-out", "3", "--generator", "pccd", "--generator", "pccd_charge_balanced"], "--chemsys system"),
        # every crystal of the Mg-O world is in the training split
        (["--held-out", "2", "--novelty-data", str(mg_o_environment.data_file)], "has no held-out"),
    ):
        result = runner.invoke(app, ["benchmark", *args])
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1, result.output


def test_evaluate_generation_without_held_out_crystals_is_one_line(mg_o_environment):
    # the same guard serves `pccd evaluate generation` (it ended in numpy's "a cannot be empty")
    result = runner.invoke(app, ["evaluate", "generation", "--n", "2", "--data", str(mg_o_environment.data_file),
                                 "--novelty-data", str(mg_o_environment.data_file)])
    assert result.exit_code == 2, result.output
    assert "has no held-out" in result.output and "Traceback" not in result.output


def test_held_out_shards_split_the_judging_and_the_last_run_reports_all(held_out_data, tmp_path):
    settings = BenchmarkSettings(held_out=4, generators=("pccd",), reference="mp-formation", relax_steps=20,
                                 novelty_data=str(held_out_data))
    out = tmp_path / "run"
    first, _ = run_benchmark(settings=settings, out_dir=out, judge_chunk=1, shard=(0, 2))
    rows = last_rows(out / "candidates.jsonl")
    order = sorted(rows.values(), key=lambda row: row.origin["index"])  # the drawn order: blocks of one crystal
    made = [row for row in order if row.structure is not None]
    assert [row.judged for row in made] == [position % 2 == 0 for position, row in enumerate(order)
                                            if row.structure is not None]
    assert first.generators["pccd"].n_judged == sum(row.judged and row.relax_error is None for row in made)

    # a second process of the other shard that sampled the same crystals again: its unjudged copies, appended after
    # the judged rows, must not undo them; it judges the odd blocks only and reports all four
    unjudged = [row.model_copy(update={"judged": False, "e_above_hull": None}) for row in made if row.judged]
    with (out / "candidates.jsonl").open("a") as handle:
        handle.writelines(row.model_dump_json() + "\n" for row in unjudged)
    lines: list[str] = []
    second, _ = run_benchmark(settings=settings, out_dir=out, log=lines.append, judge_chunk=1, shard=(1, 2))
    assert sum(line.startswith("judging pccd") for line in lines) == sum(not row.judged for row in made)
    assert second.generators["pccd"].n_judged + second.generators["pccd"].n_failed == 4

    lines.clear()
    final, _ = run_benchmark(settings=settings, out_dir=out, log=lines.append, judge_chunk=1)
    assert not any(line.startswith(("sampling", "judging")) for line in lines)  # all judged by the two shards
    assert final.generators == second.generators


def test_benchmark_shard_bad_input_is_one_line(mg_o_environment, tmp_path):
    for args, message in ((["--shard", "2/2", "--out", str(tmp_path)], "I must be in 0..N-1"),
                          (["--shard", "x", "--out", str(tmp_path)], "--shard takes I/N"),
                          (["--shard", "0/2"], "give --out")):
        result = runner.invoke(app, ["benchmark", "--held-out", "2", *args])
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "Traceback" not in result.output
