"""The training set: every crystal of a data file encoded once, with its conditions, cached on disk."""

from __future__ import annotations

import hashlib
import multiprocessing
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from pccd_flows.codec.encode import DEFAULT_CODEC, encode_structure
from pccd_flows.codec.errors import CodecError
from pccd_flows.codec.settings import CodecSettings
from pccd_flows.data.io import file_sha256, read_records
from pccd_flows.data.records import MaterialRecord
from pccd_flows.model.conditions import record_condition_labels
from pccd_flows.settings import get_settings

VALIDATION_PERCENT = 5


@dataclass
class EncodedDataset:
    tensors: np.ndarray  # (N, 3, n_points, 3) float32
    elements: np.ndarray  # (N, 3) int64 slot tokens
    band_gap: np.ndarray  # (N,) int64
    magnetic: np.ndarray  # (N,) int64
    material_ids: np.ndarray  # (N,) str
    n_skipped: int
    data_sha256: str

    def __len__(self) -> int:
        return len(self.material_ids)

    def validation_mask(self) -> np.ndarray:
        """A fixed ~5% of materials, chosen by a hash of their id: the same split in every run and on every machine."""
        return np.array([is_validation(mid) for mid in self.material_ids])


def is_validation(material_id: str) -> bool:
    return int(hashlib.sha256(material_id.encode()).hexdigest()[:8], 16) % 100 < VALIDATION_PERCENT


def _encode_record(record: MaterialRecord, settings: CodecSettings):
    try:
        encoded = encode_structure(record.to_structure(), settings, source=record.material_id)
    except CodecError:
        return None
    tokens, band_gap, magnetic = record_condition_labels(record, encoded.structure)
    return (
        encoded.tensor,
        tokens,
        band_gap,
        magnetic,
        record.material_id,
    )


def _cache_path(data_sha256: str, settings: CodecSettings) -> Path:
    codec_hash = hashlib.sha256(settings.model_dump_json().encode()).hexdigest()[:12]
    return get_settings().cache_dir / f"encoded-{data_sha256[:16]}-{codec_hash}.npz"


def load_encoded_dataset(
    path: str | Path, settings: CodecSettings = DEFAULT_CODEC, workers: int | None = None, limit: int | None = None,
    use_cache: bool = True,
) -> EncodedDataset:
    """Encode a data file (or read it from the cache); unencodable crystals are skipped and counted."""
    path = Path(path)
    data_sha256 = file_sha256(path)
    cache = _cache_path(data_sha256, settings) if limit is None and use_cache else None
    if cache is not None and cache.exists():
        stored = np.load(cache, allow_pickle=False)
        return EncodedDataset(
            stored["tensors"], stored["elements"], stored["band_gap"], stored["magnetic"],
            stored["material_ids"], int(stored["n_skipped"]), data_sha256,
        )
    work = partial(_encode_record, settings=settings)
    records = read_records(path, limit=limit)
    workers = workers or get_settings().workers
    if workers > 1:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            rows = list(pool.imap(work, records, chunksize=64))
    else:
        rows = list(map(work, records))
    kept = [row for row in rows if row is not None]
    if not kept:
        raise ValueError(f"{path}: no crystal in this file can be encoded")
    dataset = EncodedDataset(
        tensors=np.stack([row[0] for row in kept]),
        elements=np.stack([row[1] for row in kept]),
        band_gap=np.array([row[2] for row in kept], dtype=np.int64),
        magnetic=np.array([row[3] for row in kept], dtype=np.int64),
        material_ids=np.array([row[4] for row in kept]),
        n_skipped=len(rows) - len(kept),
        data_sha256=data_sha256,
    )
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, tensors=dataset.tensors, elements=dataset.elements, band_gap=dataset.band_gap,
                 magnetic=dataset.magnetic, material_ids=dataset.material_ids, n_skipped=dataset.n_skipped)
        tmp.replace(cache)
    return dataset
