"""Hostile input through the real command line: every case ends with exit status 2, one line on stderr that names
the problem, nothing on stdout and no traceback, before any model or relaxation work (the module runs in seconds).

Most cases run in-process (typer's CliRunner on the real app); a few run the installed `pccd` executable, whose
stdout and stderr are real pipes: a truncated gzip, rich markup in a path, full-width output into a pipe.
"""

from __future__ import annotations

import gzip
import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pccd_flows.cli import app
from pccd_flows.data.io import read_records, write_records
from pccd_flows.settings import get_settings
from tests.factories import KNOWN_PHASES

runner = CliRunner()
PCCD = str(Path(sys.executable).parent / "pccd")
(MGO_CIF,) = KNOWN_PHASES.glob("MgO_*.cif")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Small real files, good and damaged, made from the bundled data."""
    root = tmp_path_factory.mktemp("hostile")
    good = root / "good.jsonl.gz"
    write_records(itertools.islice(read_records(get_settings().data_file), 60), good)
    raw = good.read_bytes()
    damaged = bytearray(raw)
    middle = len(damaged) // 2
    damaged[middle:middle + 64] = bytes(64)  # same length, zeroed deflate data in the middle
    paths = {
        "good": good,
        "truncated": root / "truncated.jsonl.gz",
        "corrupt": root / "corrupt.jsonl.gz",
        "not_gzip": root / "plain_text.jsonl.gz",
        "empty": root / "empty.jsonl.gz",
        "binary": root / "binary.jsonl",
        "bad_row": root / "bad_row.jsonl",
        "directory": root / "a_directory",
        "file": root / "a_file",
        "garbage_checkpoint": root / "garbage.pt",
        "partial_cif": root / "partial.cif",
        "garbage_cif": root / "garbage.cif",
    }
    paths["truncated"].write_bytes(raw[: len(raw) // 2])
    paths["corrupt"].write_bytes(bytes(damaged))
    paths["not_gzip"].write_text('{"material_id": "mp-1"}\n')
    paths["empty"].write_bytes(gzip.compress(b""))
    paths["binary"].write_bytes(bytes(range(256)) * 8)
    first_line = gzip.decompress(raw).decode().splitlines()[0]
    paths["bad_row"].write_text(first_line + "\n{not json\n")
    paths["directory"].mkdir()
    paths["file"].write_text("I am a file\n")
    paths["garbage_checkpoint"].write_bytes(b"\x80not a torch file" * 10)
    cif = MGO_CIF.read_text()
    partial = cif.replace("Mg  Mg0  1  0.00000000  0.00000000  0.00000000  1.0",
                          "Mg  Mg0  1  0.00000000  0.00000000  0.00000000  0.5")
    assert partial != cif
    paths["partial_cif"].write_text(partial)
    paths["garbage_cif"].write_text("data_nothing\n_cell_length_a 3\n")
    return paths


@pytest.fixture
def environment(monkeypatch, tmp_path):
    """A private, empty store and cache; no Materials Project key."""
    monkeypatch.setenv("PCCD_STORE_DIR", str(tmp_path / "store"))
    monkeypatch.setenv("PCCD_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("PCCD_STORE_FILE", "MP_API_KEY", "PCCD_MP_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


# (name, arguments with {placeholders} for the files, environment, what the one-line message must say)
CASES = [
    # damaged and wrong data files
    ("codec-truncated", ["codec", "check", "--data", "{truncated}"], {}, "truncated"),
    ("codec-corrupt", ["codec", "check", "--data", "{corrupt}", "--workers", "1"], {}, "corrupt gzip data"),
    ("codec-not-gzip", ["codec", "check", "--data", "{not_gzip}"], {}, "not a gzip file"),
    ("codec-empty", ["codec", "check", "--data", "{empty}"], {}, "no crystal records"),
    ("codec-out-directory", ["codec", "check", "--data", "{good}", "--out", "{directory}"], {}, "is a directory"),
    ("codec-noise-nan", ["codec", "check", "--noise", "nan"], {}, "--noise"),
    ("stats-truncated", ["data", "stats", "--data", "{truncated}"], {}, "truncated"),
    ("stats-binary", ["data", "stats", "--data", "{binary}"], {}, "not UTF-8"),
    ("stats-bad-row", ["data", "stats", "--data", "{bad_row}"], {}, "bad_row.jsonl:2: not a crystal record"),
    ("stats-directory", ["data", "stats", "--data", "{directory}"], {}, "is a directory"),
    ("stats-empty", ["data", "stats", "--data", "{empty}"], {}, "no crystal records"),
    ("stats-unknown-format", ["data", "stats", "--data", "{file}"], {}, "unknown data format"),
    ("fetch-out-directory", ["data", "fetch", "--out", "{directory}", "--api-key", "x"], {}, "is a directory"),
    # training and checkpoints
    ("train-truncated", ["train", "--out", "{tmp}/ckpt.pt", "--max-steps", "1", "--preset", "tiny",
                         "--data", "{truncated}"], {}, "truncated"),
    ("train-out-directory", ["train", "--out", "{directory}", "--max-steps", "1"], {}, "is a directory"),
    ("train-hours-nan", ["train", "--out", "{tmp}/ckpt.pt", "--hours", "nan"], {}, "--hours"),
    ("train-no-budget", ["train", "--out", "{tmp}/ckpt.pt"], {}, "give a budget"),
    ("model-info-directory", ["model", "info", "{directory}"], {}, "is a directory"),
    ("model-info-garbage", ["model", "info", "{garbage_checkpoint}"], {}, "not a readable checkpoint"),
    ("model-export-garbage", ["model", "export", "{garbage_checkpoint}", "{tmp}/out.pt"], {},
     "not a readable checkpoint"),
    # generation
    ("generate-out-file", ["generate", "--elements", "Mg", "O", "--out", "{file}"], {}, "is a file"),
    ("generate-checkpoint-directory", ["generate", "--elements", "Mg", "O", "--out", "{tmp}/gen",
                                       "--checkpoint", "{directory}"], {}, "is a directory"),
    ("generate-checkpoint-garbage", ["generate", "--elements", "Mg", "O", "--out", "{tmp}/gen",
                                     "--checkpoint", "{garbage_checkpoint}"], {}, "not a readable checkpoint"),
    ("generate-zero-count", ["generate", "--composition", "Mg0O", "--out", "{tmp}/gen"], {}, "counts no Mg"),
    ("generate-four-elements", ["generate", "--elements", "Li", "Na", "K", "O", "--out", "{tmp}/gen"], {}, "1 to 3"),
    ("generate-n-zero", ["generate", "--elements", "Mg", "O", "--n", "0", "--out", "{tmp}/gen"], {}, "--n"),
    ("study-name-path", ["study", "paper-746", "--name", "../x", "--target", "2"], {}, "names files in the store"),
    ("benchmark-novelty-data", ["benchmark", "--chemsys", "Mg-O", "--n", "2", "--novelty-data", "{file}"], {},
     "novelty data"),
    ("generate-seed-negative", ["generate", "--elements", "Mg", "O", "--seed", "-1", "--out", "{tmp}/gen"], {},
     "--seed"),
    ("validate-seed-huge", ["validate", "dft", "--seed", str(2**64)], {}, "--seed"),
    ("generate-guidance-inf", ["generate", "--elements", "Mg", "O", "--guidance", "inf", "--out", "{tmp}/gen"], {},
     "not a finite number"),
    ("generate-sampler", ["generate", "--elements", "Mg", "O", "--sampler", "euler", "--out", "{tmp}/gen"], {},
     "sampler"),
    ("evaluate-checkpoint-directory", ["evaluate", "generation", "--checkpoint", "{directory}"], {},
     "is a directory"),
    ("reconstruct-split", ["reconstruct", "--split", "test"], {}, "unknown split"),
    # stability
    ("ehull-partial-occupancy", ["ehull", "{partial_cif}"], {}, "partial occupancies"),
    ("ehull-directory", ["ehull", "{directory}"], {}, "is a directory"),
    ("ehull-garbage", ["ehull", "{garbage_cif}"], {}, "cannot read a structure"),
    ("ehull-reference", ["ehull", str(MGO_CIF), "--reference", "nonsense"], {}, "unknown --reference"),
    # the candidate store
    ("query-unknown-elements", ["query", "--chemsys", "Foo-Bar"], {}, "unknown element 'Foo'"),
    ("query-lower-case", ["query", "--chemsys", "mg-o"], {}, "case-sensitive"),
    ("query-negative-ehull", ["query", "--max-ehull", "-1"], {}, "--max-ehull"),
    ("query-sort", ["query", "--sort", "nonsense"], {}, "cannot sort by 'nonsense'"),
    ("query-cif-dir-file", ["query", "--cif-dir", "{file}"], {}, "is a file"),
    ("query-store-dir-file", ["query"], {"PCCD_STORE_DIR": "{file}"}, "PCCD_STORE_DIR"),
    ("query-store-file-missing", ["query"], {"PCCD_STORE_FILE": "{tmp}/stores.yaml"}, "PCCD_STORE_FILE"),
    # screening
    ("screen-reference", ["screen", "--chemsys", "Mg-O", "--reference", "foo", "--run-locally"], {},
     "unknown --reference 'foo'"),
    ("screen-mp-api-without-key", ["screen", "--chemsys", "Mg-O", "--reference", "mp-api", "--run-locally"], {},
     "MP_API_KEY"),
    ("screen-workflow-directory", ["screen", "--chemsys", "Mg-O", "--write-workflow", "{directory}"], {},
     "is a directory"),
    ("screen-checkpoint-directory", ["screen", "--chemsys", "Mg-O", "--run-locally", "--checkpoint", "{directory}"],
     {}, "is a directory"),
    ("screen-launchpad-directory", ["screen", "--chemsys", "Mg-O", "--launchpad", "{directory}"], {},
     "is a directory"),
    ("screen-store-dir-file", ["screen", "--chemsys", "Mg-O", "--run-locally"], {"PCCD_STORE_DIR": "{file}"},
     "PCCD_STORE_DIR"),
    ("screen-four-elements", ["screen", "--chemsys", "Li-Na-K-O", "--run-locally"], {}, "1 to 3"),
    ("screen-unknown-element", ["screen", "--chemsys", "Xx-O", "--run-locally"], {}, "unknown element 'Xx'"),
    ("screen-two-modes", ["screen", "--chemsys", "Mg-O", "--run-locally", "--write-workflow", "{tmp}/wf.yaml"], {},
     "choose one of"),
    # follow-up, studies, reports, LaunchPad
    ("followup-partial-occupancy", ["followup", "--cif", "{partial_cif}", "--dft", "none"], {},
     "partial occupancies"),
    ("followup-unknown-candidate", ["followup", "--candidate-id", "nope", "--dft", "none"], {}, "no candidate nope"),
    ("followup-dft", ["followup", "--cif", str(MGO_CIF), "--dft", "castep"], {}, "unknown --dft 'castep'"),
    ("followup-workflow-directory", ["followup", "--cif", str(MGO_CIF), "--dft", "vasp",
                                     "--write-workflow", "{directory}"], {}, "is a directory"),
    ("study-engine", ["study", "paper-746", "--engine", "vasp"], {}, "force field"),
    ("case-study-formula", ["study", "case-studies", "--formula", "NaCl"], {}, "not a case study"),
    ("report-empty-store", ["report", "study", "--name", "never-run"], {}, "no candidates of study 'never-run'"),
    ("launchpad-on-a-file", ["launchpad", "init", "--embedded", "{file}"], {}, "a_file"),
    ("unknown-command", ["relax"], {}, "No such command"),
]


def _fill(value: str, files: dict[str, Path], tmp: Path) -> str:
    return value.format(tmp=tmp, **files)


def assert_one_line_error(code: int, stdout: str, stderr: str, expected: str) -> None:
    assert code == 2, (code, stdout, stderr)
    assert "Traceback" not in stdout + stderr, stderr
    assert stdout == "", stdout
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    assert expected in errors[0], errors[0]
    # whatever else a command said before it stopped (a status line), the error is its last word
    assert stderr.strip().splitlines()[-1] == errors[0]


@pytest.mark.parametrize(("arguments", "env", "expected"), [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_hostile_input_is_one_line_and_exit_2(files, environment, monkeypatch, arguments, env, expected):
    for name, value in env.items():
        monkeypatch.setenv(name, _fill(value, files, environment))
    get_settings.cache_clear()
    result = runner.invoke(app, [_fill(a, files, environment) for a in arguments])
    assert_one_line_error(result.exit_code, result.stdout, result.stderr, expected)


def test_there_are_at_least_30_cases_across_every_command():
    commands = {tuple(a for a in case[1][:2] if not a.startswith("-")) for case in CASES}
    assert len(CASES) >= 30
    top = {command[0] for command in commands}
    assert top >= {"codec", "data", "train", "model", "generate", "evaluate", "reconstruct", "ehull", "query",
                   "screen", "followup", "study", "report", "launchpad"}


def _run(arguments: list[str], env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The installed executable with real pipes for stdout and stderr (no terminal)."""
    return subprocess.run([PCCD, *arguments], capture_output=True, text=True, timeout=120, cwd=cwd, check=False,
                          env={**os.environ, **(env or {})})


def test_truncated_gzip_is_an_error_not_aborted_in_the_real_executable(files, environment):
    result = _run(["codec", "check", "--data", str(files["truncated"])])
    assert "Aborted" not in result.stderr
    assert_one_line_error(result.returncode, result.stdout, result.stderr, "truncated")


def test_brackets_in_messages_survive_rich_markup(environment):
    """rich reads `[dft]` as a style tag and drops it; messages are printed as text (the GPAW install hint too)."""
    name = environment / "pccd-flows[dft].cif"
    result = _run(["ehull", str(name)])
    assert_one_line_error(result.returncode, result.stdout, result.stderr, "pccd-flows[dft].cif: no such file")


def test_long_messages_are_not_wrapped_into_a_pipe(environment):
    """80 columns is rich's guess when no terminal reads stderr: a long path must still come out on one line."""
    deep = environment.joinpath(*(["a_rather_long_directory_name"] * 6), "checkpoint.pt")
    deep.mkdir(parents=True)
    result = _run(["generate", "--elements", "Mg", "O", "--out", str(environment / "g"), "--checkpoint", str(deep)],
                  env={"COLUMNS": ""})
    assert len(str(deep)) > 150
    assert_one_line_error(result.returncode, result.stdout, result.stderr, f"--checkpoint {deep}: is a directory")
