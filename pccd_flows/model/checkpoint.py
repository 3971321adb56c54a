"""Checkpoints: weights, config, codec settings, vocabulary, data hash and history, with clear errors."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import torch

from pccd_flows.codec.settings import CodecSettings
from pccd_flows.model.conditions import N_ELEMENT_TOKENS, BandGapClass, MagneticClass, element_vocabulary
from pccd_flows.model.config import ModelConfig
from pccd_flows.model.unet import PointCloudUNet

FORMAT = "pccd-flows-checkpoint"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("format", "format_version", "model_config", "codec_settings", "element_vocabulary", "ema_state",
                 "data_sha256", "history", "step")


class CheckpointError(ValueError):
    """A file that is not a usable pccd-flows checkpoint."""


def build_model(config: ModelConfig) -> PointCloudUNet:
    return PointCloudUNet(config, N_ELEMENT_TOKENS, len(BandGapClass), len(MagneticClass))


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write atomically: an interrupted save never leaves a half-written checkpoint behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "element_vocabulary": element_vocabulary(),
               **payload}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint")
    raw = path.read_bytes()
    if raw.startswith(b"version https://git-lfs"):
        raise CheckpointError(f"{path}: is a Git LFS pointer, not the checkpoint (run `git lfs pull`)")
    try:
        payload = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a truncated or foreign file
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}); corrupt or truncated?") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a pccd-flows checkpoint")
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {payload.get('format_version')}, expected {FORMAT_VERSION}")
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}")
    if payload["element_vocabulary"] != element_vocabulary():
        raise CheckpointError(f"{path}: element vocabulary differs from this version of pccd-flows")
    payload["sha256"] = hashlib.sha256(raw).hexdigest()
    payload["path"] = str(path)
    return payload


def load_model(path: str | Path, ema: bool = True):
    """The model of a checkpoint (EMA weights by default), in eval mode, with its codec settings and payload."""
    payload = load_checkpoint(path)
    try:
        config = ModelConfig.model_validate(payload["model_config"])
        codec = CodecSettings.model_validate(payload["codec_settings"])
        model = build_model(config)
        model.load_state_dict(payload["ema_state"] if ema else payload["model_state"])
    except Exception as exc:
        raise CheckpointError(f"{path}: weights do not fit the stored model config ({exc})".splitlines()[0]) from exc
    model.eval()
    return model, codec, payload


INFERENCE_DROPPED_KEYS = ("model_state", "optimizer_state")


def export_for_inference(source: str | Path, destination: str | Path) -> dict[str, Any]:
    """Copy a training checkpoint without optimiser state and raw weights (EMA weights only): a quarter the size.

    The result still resumes training (from its EMA weights, with a fresh optimiser).
    """
    payload = load_checkpoint(source)
    kept = {k: v for k, v in payload.items() if k not in (*INFERENCE_DROPPED_KEYS, "sha256", "path")}
    kept["exported_from"] = {"path": str(source), "sha256": payload["sha256"]}
    save_checkpoint(destination, kept)
    return load_checkpoint(destination)
