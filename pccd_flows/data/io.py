"""Readers and writers for crystal data sets: the jsonl.gz format of the bundled data and MP-20-style CSV."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import sys
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from pydantic import ValidationError

from pccd_flows.data.records import MaterialRecord


class DataFormatError(ValueError):
    """A data file that is not in a supported format, or a row that cannot be read."""


# What reading a damaged file raises: gzip.BadGzipFile (an OSError: not gzip, CRC failure), EOFError (a truncated
# gzip stream), zlib.error (corrupt deflate data), UnicodeDecodeError (binary data), csv.Error (NUL bytes...).
_UNREADABLE = (OSError, EOFError, zlib.error, UnicodeDecodeError, csv.Error)


def _unreadable(path: Path, exc: BaseException) -> DataFormatError:
    if isinstance(exc, EOFError):
        why = "truncated: the gzip stream ends early (copy or download the file again)"
    elif isinstance(exc, gzip.BadGzipFile) and "Not a gzipped file" in str(exc):
        why = "not a gzip file, though its name ends in .gz"
    elif isinstance(exc, (gzip.BadGzipFile, zlib.error)):
        why = f"corrupt gzip data ({exc})"
    elif isinstance(exc, UnicodeDecodeError):
        why = "not UTF-8 text (a binary file, or compressed without a .gz name?)"
    elif isinstance(exc, IsADirectoryError):
        why = "is a directory, not a data file"
    elif isinstance(exc, OSError):
        why = f"cannot be read ({exc.strerror or exc})"
    else:
        why = f"cannot be read ({exc})"
    return DataFormatError(f"{path}: {why}")


def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open("r", encoding="utf-8", newline="")


def data_format(path: Path) -> str:
    """``jsonl`` or ``csv``, from the file's name."""
    name = path.name.lower()
    if name.endswith((".jsonl", ".jsonl.gz", ".json.gz", ".ndjson")):
        return "jsonl"
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    raise DataFormatError(f"{path}: unknown data format (expected .jsonl[.gz] or MP-20-style .csv[.gz])")


def _records_from_jsonl(handle, path: Path) -> Iterator[MaterialRecord]:
    for line_number, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        try:
            yield MaterialRecord.model_validate(json.loads(line))
        except (json.JSONDecodeError, ValidationError, RecursionError) as exc:
            raise DataFormatError(f"{path}:{line_number}: not a crystal record ({exc.__class__.__name__})") from exc


def _records_from_csv(handle, path: Path) -> Iterator[MaterialRecord]:
    """MP-20/CDVAE CSV: ``material_id,cif`` plus optional property columns (``band_gap``, ``pretty_formula``...)."""
    csv.field_size_limit(sys.maxsize)
    reader = csv.DictReader(handle)
    missing = {"material_id", "cif"} - set(reader.fieldnames or [])
    if missing:
        raise DataFormatError(f"{path}: CSV lacks the column(s) {sorted(missing)}")
    for row_number, row in enumerate(reader, start=2):
        try:
            properties = {}
            for key in ("band_gap", "formation_energy_per_atom", "total_magnetization"):
                if row.get(key) not in (None, ""):
                    properties[key] = float(row[key])
            record = MaterialRecord(
                material_id=row["material_id"] or f"row-{row_number}",
                formula=row.get("pretty_formula") or row.get("formula"),
                cif=row["cif"],
                **properties,
            )
        except (ValueError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
            raise DataFormatError(f"{path}: row {row_number}: not a crystal record ({exc.__class__.__name__})") from exc
        yield record


def read_records(path: str | Path, limit: int | None = None) -> Iterator[MaterialRecord]:
    """Stream the records of a jsonl(.gz) or MP-20-style CSV(.gz) data set; no network needed."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such data file")
    parser = _records_from_jsonl if data_format(path) == "jsonl" else _records_from_csv
    try:
        with _open_text(path) as handle:
            for count, record in enumerate(parser(handle, path)):
                if limit is not None and count >= limit:
                    return
                yield record
    except _UNREADABLE as exc:
        raise _unreadable(path, exc) from exc


def count_records(path: str | Path) -> int | None:
    """Rows in a jsonl data set (cheap: no parsing), for progress bars; None for CSV, whose rows span lines."""
    path = Path(path)
    if data_format(path) != "jsonl":
        return None
    try:
        with _open_text(path) as handle:
            return sum(1 for line in handle if line.strip())
    except _UNREADABLE as exc:
        raise _unreadable(path, exc) from exc


def write_records(records: Iterable[MaterialRecord], path: str | Path) -> int:
    """Write records in the jsonl.gz format that :func:`read_records` reads; returns how many."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as handle:
        for record in records:
            handle.write(record.model_dump_json(exclude_none=True) + "\n")
            count += 1
    return count


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
