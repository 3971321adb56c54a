"""Round-trip check of the codec over a data set: encode, decode, compare with the original."""

from __future__ import annotations

import multiprocessing
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from functools import partial

import numpy as np
from pydantic import BaseModel
from pymatgen.analysis.structure_matcher import StructureMatcher

from pccd_flows.codec.decode import decode_tensor
from pccd_flows.codec.encode import DEFAULT_CODEC, encode_structure
from pccd_flows.codec.errors import CodecError
from pccd_flows.codec.settings import CodecSettings
from pccd_flows.data.records import MaterialRecord
from pccd_flows.settings import MATCHER_TOLERANCES


class RoundTrip(BaseModel):
    material_id: str
    formula: str | None = None
    skipped_reason: str | None = None
    error: str | None = None
    atom_count_exact: bool = False
    composition_exact: bool = False
    structure_match: bool = False
    lattice_length_rel_error: float = 0.0
    decoded_formula: str | None = None


class CodecCheckReport(BaseModel):
    n: int
    noise: float = 0.0
    n_input: int
    n_skipped: int
    skipped_by_reason: dict[str, int]
    atom_count_exact_rate: float
    composition_exact_rate: float
    structure_match_rate: float
    max_lattice_length_rel_error: float
    seconds: float
    failures: list[RoundTrip]
    skipped: list[RoundTrip]


def add_noise(tensor: np.ndarray, sigma: float, seed_text: str) -> np.ndarray:
    """Gaussian noise like a generated sample's: sigma on positions and lattice, 10 sigma on the element one-hots."""
    rng = np.random.default_rng(list(seed_text.encode()))
    scale = np.array([sigma, 10 * sigma, sigma])[:, None, None]
    return tensor + rng.normal(0.0, 1.0, tensor.shape) * scale


def round_trip(record: MaterialRecord, settings: CodecSettings = DEFAULT_CODEC, noise: float = 0.0) -> RoundTrip:
    """Encode and decode one crystal; bad input is reported as skipped with its reason, never raised.

    With ``noise`` > 0 the tensor is perturbed before decoding (seeded by the material id: reproducible).
    """
    result = RoundTrip(material_id=record.material_id, formula=record.formula)
    try:
        original = record.to_structure()
        encoded = encode_structure(original, settings, source=record.material_id)
        tensor = add_noise(encoded.tensor, noise, record.material_id) if noise > 0 else encoded.tensor
        decoded = decode_tensor(tensor, encoded.elements, settings, source=record.material_id)
    except CodecError as exc:
        result.skipped_reason, result.error = exc.reason, str(exc)
        return result
    result.decoded_formula = decoded.composition.formula.replace(" ", "")
    result.atom_count_exact = len(decoded) == len(original)
    result.composition_exact = decoded.composition == original.composition
    result.structure_match = StructureMatcher(**MATCHER_TOLERANCES).fit(original, decoded)
    reference = np.array(encoded.structure.lattice.abc)
    result.lattice_length_rel_error = float(np.max(np.abs(np.array(decoded.lattice.abc) - reference) / reference))
    return result


def iter_round_trips(
    records: Iterable[MaterialRecord], settings: CodecSettings = DEFAULT_CODEC, workers: int = 1, noise: float = 0.0
) -> Iterator[RoundTrip]:
    work = partial(round_trip, settings=settings, noise=noise)
    if workers <= 1:
        yield from map(work, records)
        return
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        yield from pool.imap(work, records, chunksize=32)


def summarise(results: list[RoundTrip], seconds: float, max_listed: int = 100) -> CodecCheckReport:
    done = [r for r in results if r.skipped_reason is None]
    skipped = [r for r in results if r.skipped_reason is not None]
    n = len(done)

    def rate(flag: str) -> float:
        return sum(getattr(r, flag) for r in done) / n if n else 0.0

    failures = [r for r in done if not (r.atom_count_exact and r.composition_exact and r.structure_match)]
    return CodecCheckReport(
        n=n,
        n_input=len(results),
        n_skipped=len(skipped),
        skipped_by_reason=dict(Counter(r.skipped_reason for r in skipped)),
        atom_count_exact_rate=rate("atom_count_exact"),
        composition_exact_rate=rate("composition_exact"),
        structure_match_rate=rate("structure_match"),
        max_lattice_length_rel_error=max((r.lattice_length_rel_error for r in done), default=0.0),
        seconds=round(seconds, 2),
        failures=failures[:max_listed],
        skipped=skipped[:max_listed],
    )


def check_codec(
    records: Iterable[MaterialRecord],
    settings: CodecSettings = DEFAULT_CODEC,
    workers: int = 1,
    on_result=None,
    noise: float = 0.0,
) -> CodecCheckReport:
    """Round-trip every record and summarise; ``on_result`` is called after each (for progress bars)."""
    start = time.perf_counter()
    results = []
    for result in iter_round_trips(records, settings, workers, noise):
        results.append(result)
        if on_result is not None:
            on_result(result)
    report = summarise(results, time.perf_counter() - start)
    report.noise = noise
    return report
