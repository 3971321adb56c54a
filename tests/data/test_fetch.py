"""Fetching the paper's selection from the Materials Project, offline.

The end-to-end tests run the real ``mp_api.client.MPRester`` code path; the ``responses`` library answers its HTTP
requests from recorded JSON (``tests/fixtures/mp_api_*.json``: a summary page of real MP crystals plus three
documents outside the selection, and the heartbeat). Nothing here touches the network: unregistered URLs raise
``ConnectionError`` inside ``responses``, and the one test with real sockets uses a closed local port.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from pymatgen.analysis.magnetism import Ordering
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Structure

from pccd_flows.data import fetch
from pccd_flows.data.fetch import MPFetchError, fetch_paper_selection, summary_docs_to_records
from pccd_flows.data.io import read_records, write_records
from pccd_flows.settings import get_settings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ENDPOINT = "https://api.materialsproject.org/"
HEARTBEAT_URL = ENDPOINT + "heartbeat"
SUMMARY_URL = ENDPOINT + "materials/summary/"
API_KEY = "0123456789abcdefABCDEF0123456789"  # mp-api insists on 32 characters
DB_VERSION = "2025.09.25"  # as in the recorded heartbeat

# The recorded page: six crystals inside the selection, then a 4-element one, a 20-site one, one without structure.
SELECTED = ["mp-149", "mp-13", "mp-19009", "mp-19306", "mp-3953", "mp-5229"]
EXPECTED_ORDERING = {
    "mp-149": "NM",
    "mp-13": "FM",
    "mp-19009": "AFM",
    "mp-19306": "FiM",
    "mp-3953": "NM",
    "mp-5229": None,  # "Unknown" in the response
}


@pytest.fixture(scope="module")
def summary_response() -> dict:
    return json.loads((FIXTURES / "mp_api_summary_response.json").read_text())


@pytest.fixture(scope="module")
def heartbeat() -> dict:
    return json.loads((FIXTURES / "mp_api_heartbeat_response.json").read_text())


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch):
    """No key or endpoint from the environment of the machine running the tests; no cached settings."""
    for name in ("MP_API_KEY", "PCCD_MP_API_KEY", "MP_API_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    _clear_mp_api_heartbeat_cache()
    yield
    get_settings.cache_clear()
    _clear_mp_api_heartbeat_cache()


def _clear_mp_api_heartbeat_cache() -> None:
    """mp-api caches the heartbeat (database version) per endpoint for the life of the process."""
    from mp_api.client.core.client import _Rester

    clear = getattr(_Rester._get_heartbeat_info, "cache_clear", None)
    if clear is not None:
        clear()


def _summary_server(rsps: responses.RequestsMock, response: dict, calls: list[dict]) -> None:
    """Serve the recorded summary page as the API does: honour ``_skip``/``_limit``, report ``total_doc``."""

    def callback(request):
        params = {key: values[0] for key, values in parse_qs(urlsplit(request.url).query).items()}
        calls.append(
            {"params": params, "api_key": request.headers.get("x-api-key"), "agent": request.headers.get("user-agent")}
        )
        skip = int(params.get("_skip", 0))
        limit = int(params.get("_limit", 1000))
        page = copy.deepcopy(response)
        page["data"] = response["data"][skip : skip + limit]
        return 200, {"Content-Type": "application/json"}, json.dumps(page)

    rsps.add_callback(responses.GET, SUMMARY_URL, callback=callback)


@pytest.fixture
def mp_api(summary_response, heartbeat):
    """The recorded Materials Project API; yields the list of summary requests it received."""
    calls: list[dict] = []
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        rsps.add(responses.GET, HEARTBEAT_URL, json=heartbeat)
        _summary_server(rsps, summary_response, calls)
        yield calls


def _assert_one_line(message: str) -> None:
    assert message and "\n" not in message and "\r" not in message and "\x1b" not in message
    assert "Traceback" not in message and len(message) < 400


# ---------------------------------------------------------------------------------------------------------------
# documents -> records


def test_summary_docs_to_records_keeps_the_selection_and_converts(summary_response, tmp_path):
    docs = summary_response["data"]
    records = summary_docs_to_records(docs, source="mp-api " + DB_VERSION)

    assert [r.material_id for r in records] == SELECTED  # 4 elements, 20 sites and no structure dropped
    by_id = {doc["material_id"]: doc for doc in docs}
    for record in records:
        doc = by_id[record.material_id]
        assert record.nsites == doc["nsites"] <= 16
        assert record.nelements == doc["nelements"] <= 3
        assert record.band_gap == doc["band_gap"]
        assert record.total_magnetization == doc["total_magnetization"]
        assert record.formation_energy_per_atom == doc["formation_energy_per_atom"]
        assert record.magnetic_ordering == EXPECTED_ORDERING[record.material_id]
        assert record.properties_source == "mp-api " + DB_VERSION
    assert {r.material_id: r.band_gap for r in records}["mp-5229"] is None  # kept although its gap is missing

    # jsonl.gz round trip: same ids, gaps, orderings, and the same crystals
    path = tmp_path / "selection.jsonl.gz"
    assert write_records(records, path) == len(SELECTED)
    back = list(read_records(path))
    assert [r.material_id for r in back] == SELECTED
    assert [r.band_gap for r in back] == [r.band_gap for r in records]
    assert [r.magnetic_ordering for r in back] == [r.magnetic_ordering for r in records]
    matcher = StructureMatcher()
    for record in back:
        original = Structure.from_dict(by_id[record.material_id]["structure"])
        assert matcher.fit(original, record.to_structure()), record.material_id


def test_summary_docs_to_records_accepts_document_objects(summary_response):
    """SummaryDoc-like objects (use_document_model=True): Structure objects and pymatgen's Ordering enum."""
    docs = [
        SimpleNamespace(
            **{
                **doc,
                "structure": Structure.from_dict(doc["structure"]) if doc["structure"] else None,
                "ordering": Ordering(doc["ordering"]) if doc["ordering"] != "Unknown" else Ordering.Unknown,
            }
        )
        for doc in summary_response["data"]
    ]
    records = summary_docs_to_records(docs)
    assert [r.material_id for r in records] == SELECTED
    assert [r.magnetic_ordering for r in records] == [EXPECTED_ORDERING[i] for i in SELECTED]
    assert {r.properties_source for r in records} == {"mp-api"}


def test_summary_docs_to_records_trusts_the_structure_over_declared_counts(summary_response):
    doc = copy.deepcopy(summary_response["data"][0])  # Si, 2 sites
    doc["nsites"] = None
    doc["nelements"] = None
    (record,) = summary_docs_to_records([doc])
    assert (record.nsites, record.nelements) == (2, 1)
    doc["nsites"] = 17  # a document that says it is outside the selection is left out
    assert summary_docs_to_records([doc]) == []


# ---------------------------------------------------------------------------------------------------------------
# the real MPRester against the recorded API


def test_fetch_runs_mprester_end_to_end_on_the_recorded_response(mp_api, tmp_path):
    out = tmp_path / "mp_selection.jsonl.gz"
    assert fetch_paper_selection(out, api_key=API_KEY) == len(SELECTED)

    records = list(read_records(out))
    assert [r.material_id for r in records] == SELECTED
    assert [r.magnetic_ordering for r in records] == [EXPECTED_ORDERING[i] for i in SELECTED]
    assert {r.properties_source for r in records} == {"mp-api " + DB_VERSION}

    (call,) = mp_api  # one page holds everything
    params = call["params"]
    assert call["api_key"] == API_KEY
    assert (params["nelements_min"], params["nelements_max"]) == ("1", "3")
    assert (params["nsites_min"], params["nsites_max"]) == ("1", "16")
    assert params["batch_id_not_eq"] == "gnome_r2scan_statics"  # include_gnome=False
    assert set(params["_fields"].split(",")) == {
        "material_id",
        "formula_pretty",
        "structure",
        "nsites",
        "nelements",
        "band_gap",
        "ordering",
        "total_magnetization",
        "formation_energy_per_atom",
    }


def test_fetch_reads_the_key_from_the_environment(mp_api, tmp_path, monkeypatch):
    monkeypatch.setenv("MP_API_KEY", API_KEY[::-1])
    get_settings.cache_clear()
    fetch_paper_selection(tmp_path / "out.jsonl.gz")
    assert [call["api_key"] for call in mp_api] == [API_KEY[::-1]]


def test_fetch_follows_mp_api_pagination(mp_api, tmp_path, monkeypatch):
    monkeypatch.setattr(fetch, "PAGE_SIZE", 4)  # 9 recorded documents: pages of 4, 4 and 1
    assert fetch_paper_selection(tmp_path / "out.jsonl.gz", api_key=API_KEY) == len(SELECTED)
    assert [(call["params"].get("_skip", "0"), call["params"]["_limit"]) for call in mp_api] == [
        ("0", "4"),
        ("4", "4"),
        ("8", "1"),
    ]


def test_fetch_limit_caps_the_query_and_the_rows(mp_api, tmp_path):
    out = tmp_path / "out.jsonl.gz"
    assert fetch_paper_selection(out, api_key=API_KEY, limit=2) == 2
    assert [r.material_id for r in read_records(out)] == SELECTED[:2]
    assert [call["params"]["_limit"] for call in mp_api] == ["2"]


# ---------------------------------------------------------------------------------------------------------------
# failures: one line, fast, nothing written


def test_missing_key_is_reported_before_any_request(tmp_path):
    out = tmp_path / "out.jsonl.gz"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        with pytest.raises(MPFetchError) as excinfo:
            fetch_paper_selection(out)
        assert len(rsps.calls) == 0
    assert str(excinfo.value) == "no Materials Project API key: pass --api-key or set MP_API_KEY"
    assert not out.exists()


def test_no_network_fails_fast_with_one_line(tmp_path):
    """``responses`` with nothing registered: every request raises ConnectionError, as offline."""
    out = tmp_path / "out.jsonl.gz"
    start = time.monotonic()
    with responses.RequestsMock(assert_all_requests_are_fired=False), pytest.raises(MPFetchError) as excinfo:
        fetch_paper_selection(out, api_key=API_KEY)
    assert time.monotonic() - start < 10
    message = str(excinfo.value)
    _assert_one_line(message)
    assert message.startswith("cannot reach the Materials Project API: ")
    assert not out.exists()


def test_unreachable_endpoint_fails_fast_with_real_sockets(tmp_path):
    """No mocking: a closed local port refuses the connection at once, so any time spent is retries (mp-api's own
    session would retry 3 times; ours must not). mp_api is already imported by the autouse fixture."""
    start = time.monotonic()
    with pytest.raises(MPFetchError) as excinfo:
        fetch_paper_selection(tmp_path / "out.jsonl.gz", api_key=API_KEY, endpoint="http://127.0.0.1:9")
    assert time.monotonic() - start < 3
    _assert_one_line(str(excinfo.value))
    assert str(excinfo.value).startswith("cannot reach the Materials Project API: connection refused")


def test_connection_lost_inside_mprester_construction_is_caught(heartbeat, tmp_path):
    """The reachability check passes, then MPRester's own heartbeat (plain requests.get) meets a dead network:
    mp-api lets requests.ConnectionError escape from ``MPRester.__init__``; it must become an MPFetchError."""
    answers = iter([(200, {}, json.dumps(heartbeat))])

    def heartbeat_once(request):
        try:
            return next(answers)
        except StopIteration:
            raise requests.ConnectionError("Failed to establish a new connection: [Errno 101] Network is unreachable")

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add_callback(responses.GET, HEARTBEAT_URL, callback=heartbeat_once)
        with pytest.raises(MPFetchError) as excinfo:
            fetch_paper_selection(tmp_path / "out.jsonl.gz", api_key=API_KEY)
        assert len(rsps.calls) == 2
    _assert_one_line(str(excinfo.value))
    assert "Network is unreachable" in str(excinfo.value)


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_key_is_one_clear_line(heartbeat, tmp_path, status):
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        rsps.add(responses.GET, HEARTBEAT_URL, json=heartbeat)
        rsps.add(responses.GET, SUMMARY_URL, status=status, json={"message": "Invalid authentication credentials"})
        with pytest.raises(MPFetchError) as excinfo:
            fetch_paper_selection(tmp_path / "out.jsonl.gz", api_key=API_KEY)
    message = str(excinfo.value)
    _assert_one_line(message)
    assert message == f"Materials Project API key rejected (HTTP {status}): check --api-key or MP_API_KEY"


def test_malformed_key_is_one_clear_line(heartbeat, tmp_path):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add(responses.GET, HEARTBEAT_URL, json=heartbeat)
        with pytest.raises(MPFetchError) as excinfo:
            fetch_paper_selection(tmp_path / "out.jsonl.gz", api_key="too-short")
    _assert_one_line(str(excinfo.value))
    assert str(excinfo.value).startswith("invalid Materials Project API key (keys are 32 characters)")


def test_server_error_is_one_line(tmp_path):
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        rsps.add(responses.GET, HEARTBEAT_URL, status=500, body="Internal Server Error\n<html>...</html>")
        with pytest.raises(MPFetchError) as excinfo:
            fetch_paper_selection(tmp_path / "out.jsonl.gz", api_key=API_KEY)
    assert str(excinfo.value) == "cannot reach the Materials Project API: the server answered HTTP 500"


def test_an_endpoint_that_is_not_the_mp_api_is_one_line(tmp_path):
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        rsps.add(responses.GET, "https://proxy.example/heartbeat", status=200, body="<html>\nlogin\n</html>")
        with pytest.raises(MPFetchError) as excinfo:
            fetch_paper_selection(tmp_path / "out.jsonl.gz", api_key=API_KEY, endpoint="https://proxy.example/")
    _assert_one_line(str(excinfo.value))
    assert "https://proxy.example/heartbeat answered HTTP 200 without the API's heartbeat" in str(excinfo.value)


def test_the_session_passed_in_is_used(mp_api, tmp_path):
    session = requests.Session()
    session.headers["user-agent"] = "pccd-flows-test"
    assert fetch_paper_selection(tmp_path / "out.jsonl.gz", api_key=API_KEY, session=session) == len(SELECTED)
    assert [(call["api_key"], call["agent"]) for call in mp_api] == [(API_KEY, "pccd-flows-test")]
