"""Fetch the PCCD paper's training selection from the Materials Project with the official ``mp-api`` client.

Selection (as in the paper): crystals with at most 3 elements and at most 16 sites in the cell, with band gap and
magnetic ordering. The server query asks for exactly that (``num_elements=(1, 3)``, ``num_sites=(1, 16)``, GNoME
structures left out where the client can) and the rows are filtered again here, so that what is written never
breaks the selection whatever the server returns.

Offline behaviour of ``mp-api`` (0.46) that this module works around:

* ``MPRester(...)`` itself talks to the server: it GETs ``<endpoint>heartbeat`` twice with module-level
  ``requests.get`` -- no timeout, not through the session -- and lets ``requests.ConnectionError`` escape
  (not ``MPRestError``). A short heartbeat request through our own session runs first, so an unreachable
  server fails here in seconds instead of hanging in ``MPRester.__init__``.
* The session mp-api builds retries connection errors (urllib3 ``Retry(connect=3)``); ours does not retry
  connection or read errors, only rate limiting and gateway errors (429/502/503/504), which a real fetch of
  tens of thousands of documents can meet.
* mp-api's errors are multi-line and coloured; :class:`MPFetchError` carries one plain line.

``mp_api`` takes seconds to import, so it is imported only when a fetch starts.
"""

from __future__ import annotations

import inspect
import logging
import math
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import requests
from pymatgen.core import Structure
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from pccd_flows.data.io import write_records
from pccd_flows.data.records import MaterialRecord
from pccd_flows.settings import get_settings

logger = logging.getLogger(__name__)

MAX_ELEMENTS = 3
MAX_SITES = 16
#: SummaryDoc fields the fetch asks for (names as in ``emmet.core.summary.SummaryDoc``).
SUMMARY_FIELDS = [
    "material_id",
    "formula_pretty",
    "structure",
    "nsites",
    "nelements",
    "band_gap",
    "ordering",
    "total_magnetization",
    "formation_energy_per_atom",
]
#: Magnetic orderings kept as such; ``Unknown`` (and anything else) becomes ``None``.
MAGNETIC_ORDERINGS = ("NM", "FM", "FiM", "AFM")
DEFAULT_ENDPOINT = "https://api.materialsproject.org/"
#: (connect, read) seconds for the reachability check that runs before ``MPRester`` is built.
HEARTBEAT_TIMEOUT = (4.0, 10.0)
PAGE_SIZE = 1000
MISSING_KEY_MESSAGE = "no Materials Project API key: pass --api-key or set MP_API_KEY"

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class MPFetchError(RuntimeError):
    """The Materials Project could not be queried; the message is one line meant for the user."""

    def __init__(self, message: str):
        super().__init__(_one_line(message))


def _one_line(text: object, max_chars: int = 300) -> str:
    line = " ".join(_ANSI.sub("", str(text)).split())
    return line if len(line) <= max_chars else line[: max_chars - 3].rstrip() + "..."


# ----------------------------------------------------------------------------------------------------------------
# documents -> records


def _field(doc: Any, name: str) -> Any:
    if isinstance(doc, Mapping):
        return doc.get(name)
    return getattr(doc, name, None)


def _structure(value: Any) -> Structure | None:
    if value is None:
        return None
    if isinstance(value, Structure):
        return value
    if isinstance(value, Mapping):
        return Structure.from_dict(dict(value))
    raise TypeError(f"not a structure: {type(value).__name__}")


def _ordering(value: Any) -> str | None:
    value = getattr(value, "value", value)  # pymatgen's Ordering enum, or its string value
    return value if value in MAGNETIC_ORDERINGS else None


def _float(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _within_selection(declared: Any, actual: int, maximum: int) -> bool:
    return actual <= maximum and (declared is None or int(declared) <= maximum)


def summary_docs_to_records(docs: Iterable[Any], source: str = "mp-api") -> list[MaterialRecord]:
    """Convert MP summary documents into records, keeping only the paper's selection.

    ``docs`` are ``SummaryDoc``-like objects or plain dicts (``use_document_model=False``) with at least
    ``material_id`` and ``structure``. A document is dropped when it has no structure (or one that cannot be
    read), or when its cell has more than 3 elements or 16 sites (by the structure or by its own ``nelements`` /
    ``nsites``). Missing properties (band gap...) are kept as ``None``; an ``Unknown`` ordering becomes ``None``.
    """
    records: list[MaterialRecord] = []
    dropped = 0
    for doc in docs:
        material_id = _field(doc, "material_id")
        try:
            structure = _structure(_field(doc, "structure"))
        except Exception as exc:  # noqa: BLE001 - a malformed structure dict raises many types; skip the doc
            logger.warning("%s: unreadable structure skipped (%s)", material_id, _one_line(exc, 120))
            structure = None
        if material_id is None or structure is None:
            dropped += 1
            continue
        nelements = len(structure.composition.elements)
        if not (
            _within_selection(_field(doc, "nelements"), nelements, MAX_ELEMENTS)
            and _within_selection(_field(doc, "nsites"), len(structure), MAX_SITES)
        ):
            dropped += 1
            continue
        records.append(
            MaterialRecord.from_structure(
                str(material_id),
                structure,
                formation_energy_per_atom=_float(_field(doc, "formation_energy_per_atom")),
                band_gap=_float(_field(doc, "band_gap")),
                total_magnetization=_float(_field(doc, "total_magnetization")),
                magnetic_ordering=_ordering(_field(doc, "ordering")),
                properties_source=source,
            )
        )
    if dropped:
        logger.info("%d summary documents outside the selection (or without structure) dropped", dropped)
    return records


# ----------------------------------------------------------------------------------------------------------------
# fetching


def no_retry_session() -> requests.Session:
    """A session that fails at once on connection/read errors but waits out rate limits and gateway errors."""
    session = requests.Session()
    retry = Retry(
        total=3,
        connect=0,
        read=0,
        other=0,
        status=3,
        status_forcelist=(429, 502, 503, 504),
        backoff_factor=1.0,
        respect_retry_after_header=True,
        raise_on_status=False,  # hand the last error response to mp-api, which reports its status
    )
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def failure_message(exc: BaseException) -> str:
    """One line on why the query failed, from a requests/urllib3/mp-api exception."""
    text = _one_line(exc, 2000)
    if "Valid API keys are 32 characters" in text:
        return "invalid Materials Project API key (keys are 32 characters): check --api-key or MP_API_KEY"
    if (status := re.search(r"status code (\d{3})", text)) and int(status.group(1)) in (401, 403):
        return f"Materials Project API key rejected (HTTP {status.group(1)}): check --api-key or MP_API_KEY"
    return f"cannot reach the Materials Project API: {_short_reason(exc, text)}"


def _short_reason(exc: BaseException, text: str) -> str:
    if host := re.search(r"Failed to resolve '([^']+)'", text):
        return f"cannot resolve {host.group(1)} (no network?)"
    if "Connection refused" in text:
        host = re.search(r"host='([^']+)', port=(\d+)", text)
        return f"connection refused by {host.group(1)}:{host.group(2)}" if host else "connection refused"
    if isinstance(exc, requests.Timeout) or "timed out" in text.lower():
        return "the request timed out"
    if status := re.search(r"status code (\d{3})", text):
        return f"the server answered HTTP {status.group(1)}"
    if isinstance(exc, requests.RequestException) and (cause := re.search(r"Caused by (\w+)\((.*?)\)+$", text)):
        # "HTTPSConnectionPool(...): Max retries exceeded with url: /heartbeat (Caused by X('...'))"
        return _one_line(f"{cause.group(1)}: {cause.group(2)}", 200)
    name = type(exc).__name__
    return _one_line(text if text.startswith(name) else f"{name}: {text}", 200)


def check_reachable(session: requests.Session, endpoint: str) -> None:
    """GET the heartbeat with a short timeout (mp-api's own heartbeat calls have none) and check it looks like MP's.

    A 403 passes: mp-api itself carries on after it (with a warning and no database version).
    """
    url = endpoint + "heartbeat"
    response = session.get(url, timeout=HEARTBEAT_TIMEOUT)
    if response.status_code == 403:
        return
    if response.status_code >= 500:
        raise MPFetchError(f"cannot reach the Materials Project API: the server answered HTTP {response.status_code}")
    try:
        heartbeat = response.json() if response.status_code == 200 else None
    except ValueError:
        heartbeat = None
    if not isinstance(heartbeat, dict) or "db_version" not in heartbeat:
        raise MPFetchError(
            f"cannot reach the Materials Project API: {url} answered HTTP {response.status_code} "
            "without the API's heartbeat (wrong endpoint, or a proxy in the way?)"
        )


def _search_kwargs(search, limit: int | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "num_elements": (1, MAX_ELEMENTS),
        "num_sites": (1, MAX_SITES),
        "fields": list(SUMMARY_FIELDS),
        "chunk_size": PAGE_SIZE,
    }
    if "include_gnome" in inspect.signature(search).parameters:
        kwargs["include_gnome"] = False
    if limit is not None:
        kwargs["chunk_size"] = min(limit, PAGE_SIZE)
        kwargs["num_chunks"] = math.ceil(limit / kwargs["chunk_size"])
    return kwargs


def _query(api_key: str, endpoint: str, session: requests.Session, limit: int | None) -> tuple[list, str]:
    from mp_api.client import MPRester

    check_reachable(session, endpoint)
    mpr = MPRester(
        api_key=api_key,
        endpoint=endpoint,
        session=session,
        use_document_model=False,  # plain dicts: no emmet validation of fields this module does not use
    )
    summary = mpr.materials.summary
    docs = summary.search(**_search_kwargs(summary.search, limit))
    return list(docs), mpr.db_version or ""


def fetch_paper_selection(
    out: str | Path,
    api_key: str | None = None,
    limit: int | None = None,
    *,
    session: requests.Session | None = None,
    endpoint: str | None = None,
) -> int:
    """Fetch the paper's selection (<= 3 elements, <= 16 sites) from the Materials Project into ``out`` (jsonl.gz).

    ``api_key`` defaults to ``MP_API_KEY`` (via :func:`pccd_flows.settings.get_settings`); ``limit`` caps the
    rows fetched (for trials); ``session`` is the ``requests.Session`` to use (default: one without connection
    retries); ``endpoint`` defaults to ``MP_API_ENDPOINT`` or the public API. Every failure to get the data --
    no key, no network, a rejected key, a server error -- raises :class:`MPFetchError` with a one-line message.
    Returns the number of rows written; ``out`` is not touched when the fetch fails.
    """
    key = api_key or get_settings().mp_api_key
    if not key:
        raise MPFetchError(MISSING_KEY_MESSAGE)
    if limit is not None and limit < 1:
        raise MPFetchError(f"the row limit must be positive, got {limit}")
    endpoint = endpoint or os.environ.get("MP_API_ENDPOINT") or DEFAULT_ENDPOINT
    if not endpoint.endswith("/"):
        endpoint += "/"

    try:
        # slow import (mp_api.client): only when fetching
        from mp_api.client.core.exceptions import MPRestError
    except ImportError as exc:
        raise MPFetchError(f"the mp-api client cannot be imported: {_one_line(exc, 200)}") from exc

    own_session = session is None
    session = no_retry_session() if own_session else session
    try:
        docs, db_version = _query(key, endpoint, session, limit)
    except MPFetchError:
        raise
    # requests/urllib3 errors (mp-api lets those of its heartbeat escape), MPRestError, and an unexpected
    # heartbeat or page (bad JSON: ValueError; missing keys: KeyError) all mean the API could not be used.
    except (MPRestError, requests.RequestException, OSError, ValueError, KeyError) as exc:
        raise MPFetchError(failure_message(exc)) from exc
    finally:
        if own_session:
            session.close()

    source = f"mp-api {db_version}" if db_version else "mp-api"
    records = summary_docs_to_records(docs, source=source)
    if limit is not None:
        records = records[:limit]
    return write_records(records, out)
