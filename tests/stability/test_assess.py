"""`pccd ehull`'s pipeline through the screening core: a chemical system without references is recorded on its rows
and in the report (not raised), the others are judged, and the command prints the report and exits 1."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from pccd_flows.cli import app
from pccd_flows.stability.assess import energy_above_hull
from pccd_flows.stability.engines import RelaxSettings
from tests.factories import KNOWN_PHASES, known_phase


def test_a_reference_error_is_recorded_and_the_other_systems_are_judged(mg_o_settings):
    # the Mg-O world has no Zn: ZnO has no hull there, MgO has
    report = energy_above_hull([("MgO", known_phase("MgO")), ("ZnO", known_phase("ZnO"))], engine="chgnet",
                               reference="mp-structures", relax=RelaxSettings(relax=False), settings=mg_o_settings)
    mgo, zno = report.results
    assert mgo.error is None and abs(mgo.e_above_hull) < 0.1
    assert zno.error and zno.e_above_hull is None
    assert set(report.reference_errors) == {"O-Zn"} and zno.error == report.reference_errors["O-Zn"]
    assert set(report.reference_fingerprints) == {"Mg-O"}


def test_ehull_prints_the_report_and_exits_1_on_a_reference_error(mg_o_environment):
    mgo, zno = (str(next(KNOWN_PHASES.glob(f"{f}_mp-*.cif"))) for f in ("MgO", "ZnO"))
    result = CliRunner().invoke(app, ["ehull", mgo, zno, "--no-relax", "--reference", "mp-structures", "--json"])
    assert result.exit_code == 1, result.output
    rows = json.loads(result.stdout)["results"]
    assert rows[0]["error"] is None and rows[1]["error"]
    assert "no hull for O-Zn" in result.stderr and len(result.stderr.strip().splitlines()[-1]) > 0
