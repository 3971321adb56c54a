"""The ``pccd`` command."""

from __future__ import annotations

import warnings

import typer

from pccd_flows.cli.bench import bench_app
from pccd_flows.cli.benchmark import benchmark_command
from pccd_flows.cli.codec import codec_app
from pccd_flows.cli.common import MULTI_VALUE
from pccd_flows.cli.data import data_app
from pccd_flows.cli.ehull import ehull_command
from pccd_flows.cli.evaluate import evaluate_app
from pccd_flows.cli.followup import followup_command
from pccd_flows.cli.generate import generate_command
from pccd_flows.cli.group import PccdGroup
from pccd_flows.cli.launchpad import launchpad_app
from pccd_flows.cli.model import model_app
from pccd_flows.cli.query import query_command
from pccd_flows.cli.reconstruct import reconstruct_command
from pccd_flows.cli.screen import screen_command
from pccd_flows.cli.study import report_app, study_app
from pccd_flows.cli.train import train_command
from pccd_flows.cli.validate import validate_app

# pymatgen/spglib warn per structure (rounded CIF coordinates...); on 50k structures that buries real messages.
warnings.filterwarnings("ignore", module="pymatgen")
warnings.filterwarnings("ignore", category=UserWarning)

app = typer.Typer(
    name="pccd",
    cls=PccdGroup,
    help="Generative design of crystals with a point-cloud diffusion model (PCCD), on Materials Project tools.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(data_app, name="data")
app.add_typer(codec_app, name="codec")
app.add_typer(evaluate_app, name="evaluate")
app.add_typer(model_app, name="model")
app.add_typer(launchpad_app, name="launchpad")
app.add_typer(study_app, name="study")
app.add_typer(report_app, name="report")
app.add_typer(validate_app, name="validate")
app.command("train")(train_command)
app.command("generate", context_settings=MULTI_VALUE)(generate_command)
app.add_typer(bench_app, name="bench")
app.command("benchmark")(benchmark_command)
app.command("reconstruct")(reconstruct_command)
app.command("ehull")(ehull_command)
app.command("followup")(followup_command)
app.command("query", context_settings=MULTI_VALUE)(query_command)
app.command("screen", context_settings=MULTI_VALUE)(screen_command)
