"""`pccd_ranked` (generate and rank) through `pccd benchmark`, in the Mg-O world: real sampling, single points,
relaxation and hull. What it keeps is checked against single points computed here, not against stored numbers."""

from __future__ import annotations

import json

import pytest
from pymatgen.core import Structure
from typer.testing import CliRunner

from pccd_flows.benchmark.generators import PRERELAX_STEPS, RANK_OVERSAMPLE
from pccd_flows.benchmark.run import CANDIDATES_FILE, read_rows
from pccd_flows.cli import app
from pccd_flows.evaluation.metrics import fits, structure_matcher
from pccd_flows.evaluation.novelty import known_structure_index
from pccd_flows.stability.assess import energy_above_hull
from pccd_flows.stability.engines import RelaxSettings

runner = CliRunner()


@pytest.mark.parametrize(("generator", "origin_key", "steps"), [
    ("pccd_ranked", "single_point_e_above_hull", 0),
    ("pccd_prerelaxed", "prerelaxed_e_above_hull", PRERELAX_STEPS),
])
def test_ranked_pccd_relaxes_the_novel_samples_lowest_in_e_hull(mg_o_environment, tmp_path, generator, origin_key,
                                                                steps):
    out = tmp_path / "run"
    n = 2
    result = runner.invoke(app, [
        "benchmark", "--chemsys", "Mg-O", "--n", str(n), "--generator", "pccd", "--generator", generator,
        "--relax-steps", "10", "--reference", "mp-formation", "--confirm-with", "none",
        "--novelty-data", str(mg_o_environment.data_file), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert list(report["generators"]) == ["pccd", generator]
    assert report["generators"][generator]["n"] == n

    # the file is a log (each row appended when made, again when judged): the library's reader keeps the last
    rows = [r.model_dump(mode="json") for r in read_rows(out / CANDIDATES_FILE, report["settings"]["run_key"]).values()]
    ranked = sorted((r for r in rows if r["generator"] == generator), key=lambda r: r["index"])
    plain = {r["origin"]["index"]: r for r in rows if r["generator"] == "pccd"}
    kept = [r for r in ranked if r["structure"] is not None]
    assert kept, [r["generation_error"] for r in ranked]
    for row in ranked[len(kept):]:
        assert row["generation_error"].startswith("ranking:")

    known = known_structure_index(mg_o_environment.data_file)
    matcher = structure_matcher()
    structures = [Structure.from_dict(r["structure"]) for r in kept]
    samples = [r["origin"]["index"] for r in kept]
    single = [r["origin"][origin_key] for r in kept]
    assert len(set(samples)) == len(samples) and all(0 <= i < RANK_OVERSAMPLE * n for i in samples)
    assert single == sorted(single)  # in rank order
    assert all(r["origin"]["rank"] == r["index"] for r in kept)
    assert all(r["judged"] for r in kept)
    for i, structure in enumerate(structures):
        assert known.find_match(structure) is None  # a rediscovery as generated is never relaxed
        assert not any(fits(matcher, other, structure) for other in structures[:i])  # nor a repeat
        if samples[i] in plain:  # the same noise as pccd's sample of that index: the same crystal
            assert Structure.from_dict(plain[samples[i]]["structure"]) == structure

    # pccd's samples are the first n of the ranked generator's draw: one that is novel and distinct, yet not kept,
    # must lie at or above the highest kept ranking energy (computed here with the same engine, steps and hull)
    passed_over = [Structure.from_dict(r["structure"]) for i, r in plain.items()
                   if r["structure"] is not None and i not in samples]
    passed_over = [s for s in passed_over if known.find_match(s) is None
                   and not any(fits(matcher, other, s) for other in structures)]
    if passed_over and len(kept) == n:
        relax = RelaxSettings(relax=steps > 0, steps=max(steps, 1), fmax=0.05)
        again = energy_above_hull([(str(i), s) for i, s in enumerate(structures + passed_over)], engine="chgnet",
                                  reference="mp-formation", relax=relax, confirm_with="none").results
        # the kept ones' ranking energies come out the same again (deterministic, same settings)
        assert [r.e_above_hull for r in again[:len(kept)]] == pytest.approx(single, abs=1e-3)
        kept_relaxed = [Structure.from_dict(r.relaxed_structure) for r in again[:len(kept)] if r.relaxed_structure]
        for row in again[len(kept):]:
            if steps and row.relaxed_structure:  # dropped after the pre-relaxation as a rediscovery or a repeat
                relaxed = Structure.from_dict(row.relaxed_structure)
                if known.find_match(relaxed) is not None or any(fits(matcher, k, relaxed) for k in kept_relaxed):
                    continue
            assert row.e_above_hull is not None and row.e_above_hull >= single[-1] - 1e-4, (row, single)


@pytest.mark.parametrize("generator", ["pccd_ranked", "pccd_prerelaxed"])
def test_ranked_pccd_does_not_run_with_held_out(mg_o_environment, generator):
    result = runner.invoke(app, ["benchmark", "--held-out", "3", "--generator", "pccd", "--generator", generator])
    assert result.exit_code == 2, result.output
    assert f"{generator} samples N crystals per --chemsys system" in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
