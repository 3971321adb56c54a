"""Training: epsilon-prediction DDPM loss, condition dropout for guidance, EMA weights, time budgets, resume."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, Field

from pccd_flows.codec.encode import DEFAULT_CODEC
from pccd_flows.model.checkpoint import build_model, load_checkpoint, save_checkpoint
from pccd_flows.model.config import ModelConfig
from pccd_flows.model.dataset import EncodedDataset
from pccd_flows.model.diffusion import Conditions, GaussianDiffusion, to_features


class TrainingSettings(BaseModel):
    batch_size: int = 128
    learning_rate: float = 5e-4
    warmup_steps: int = 500
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    seed: int = 0
    validation_every_s: float = 300.0
    checkpoint_every_s: float = 600.0
    validation_samples: int = 1024
    final_lr_fraction: float = 0.05
    # Weight of the lattice features (channel 2) in the loss against the positions' and elements': each lattice
    # value is one of 64 copies, so an error the copies share costs the loss little but moves every length.
    lattice_loss_weight: float = Field(1.0, gt=0)


def feature_weights(settings: TrainingSettings) -> torch.Tensor | None:
    """Per-feature loss weights (None: the plain loss): features 6-8 are the lattice (see ``to_features``)."""
    if settings.lattice_loss_weight == 1.0:
        return None
    weights = torch.ones(9)
    weights[6:] = settings.lattice_loss_weight
    return weights


def learning_rate_factor(step: int, progress: float, settings: TrainingSettings, anneal: bool) -> float:
    """Linear warm-up, then constant, or with ``anneal`` a cosine decay to ``final_lr_fraction`` over the run."""
    warm = min(1.0, (step + 1) / settings.warmup_steps)
    if not anneal:
        return warm
    progress = min(max(progress, 0.0), 1.0)
    floor = settings.final_lr_fraction
    return float(warm * (floor + (1 - floor) * 0.5 * (1 + np.cos(np.pi * progress))))


class _TrainingArrays:
    """The data set as torch tensors on the training device, copied there once."""

    def __init__(self, dataset: EncodedDataset, device: torch.device):
        self.device = device
        self.tensors = torch.from_numpy(dataset.tensors).to(device)
        self.elements = torch.from_numpy(dataset.elements).to(device)
        self.band_gap = torch.from_numpy(dataset.band_gap).to(device)
        self.magnetic = torch.from_numpy(dataset.magnetic).to(device)

    def batch(self, index: np.ndarray):
        rows = torch.from_numpy(index).to(self.device)
        conditions = Conditions(self.elements[rows], self.band_gap[rows], self.magnetic[rows])
        return to_features(self.tensors[rows]), conditions


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` is the GPU where torch sees one, else the CPU; naming a GPU that is not there is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but torch sees no CUDA GPU here")
    return device


@torch.no_grad()
def validation_loss(model, diffusion: GaussianDiffusion, arrays: _TrainingArrays, index: np.ndarray,
                    batch_size: int = 256) -> float:
    """Loss on fixed validation crystals, timesteps and noise, so that values are comparable across runs
    (on one device: a GPU's random stream differs from the CPU's)."""
    generator = torch.Generator(device=arrays.device).manual_seed(1234)
    total, count = 0.0, 0
    for start in range(0, len(index), batch_size):
        x0, conditions = arrays.batch(index[start : start + batch_size])
        total += diffusion.loss(model, x0, conditions, generator=generator).item() * len(x0)
        count += len(x0)
    return total / max(count, 1)


def train(
    dataset: EncodedDataset,
    out: str | Path,
    config: ModelConfig | None = None,
    settings: TrainingSettings | None = None,
    hours: float | None = None,
    epochs: float | None = None,
    max_steps: int | None = None,
    resume: bool = False,
    anneal_lr: bool = False,
    log_path: str | Path | None = None,
    on_step: Callable[[dict], None] | None = None,
    device: str | torch.device = "cpu",
) -> dict:
    """Train (or continue training) and write the checkpoint to ``out``; returns the final checkpoint payload.

    The budget is this run's: ``hours`` of wall time, ``epochs`` over the training split, or ``max_steps`` steps,
    whichever ends first. With ``resume`` the checkpoint at ``out`` supplies weights, optimiser, step and history.
    With ``anneal_lr`` the learning rate decays (cosine) over this run's budget: use it for a final run.
    ``device`` (``cpu``, ``cuda``, ``auto``) is where the model and the data set live during training; the
    checkpoint is the same either way.
    """
    device = resolve_device(str(device))
    out = Path(out)
    log_path = Path(log_path) if log_path else out.with_suffix(".log.jsonl")
    previous = load_checkpoint(out) if resume else None
    if previous is not None:
        config = ModelConfig.model_validate(previous["model_config"])
        # settings given for this run (batch size, learning rate) win over those the checkpoint was trained with
        settings = settings or TrainingSettings.model_validate(previous.get("training_settings", {}))
        if previous["data_sha256"] != dataset.data_sha256:
            raise ValueError(f"{out} was trained on other data (sha256 {previous['data_sha256'][:12]}...)")
    config = config or ModelConfig()
    settings = settings or TrainingSettings()
    if hours is None and epochs is None and max_steps is None:
        raise ValueError("give a budget: hours, epochs or max_steps")

    torch.manual_seed(settings.seed)
    model = build_model(config).to(device)
    ema = copy.deepcopy(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=0.0)
    step, history, trained_seconds = 0, [], 0.0
    rng = np.random.default_rng(settings.seed)
    if previous is not None:
        # an exported (inference) checkpoint has only EMA weights: training continues from them
        model.load_state_dict(previous.get("model_state", previous["ema_state"]))
        ema.load_state_dict(previous["ema_state"])
        if "optimizer_state" in previous:
            optimizer.load_state_dict(previous["optimizer_state"])
        step, history = previous["step"], previous["history"]
        trained_seconds = previous.get("trained_seconds", 0.0)
        rng = np.random.default_rng([settings.seed, step])  # a fresh, reproducible stream for each resumed run
    ema.eval()
    diffusion = GaussianDiffusion(config.timesteps)
    generator = torch.Generator(device=device).manual_seed(settings.seed * 1_000_003 + step)
    arrays = _TrainingArrays(dataset, device)
    weights = feature_weights(settings)

    validation = dataset.validation_mask()
    train_index = np.flatnonzero(~validation)
    val_index = np.flatnonzero(validation)[: settings.validation_samples]
    steps_per_epoch = max(1, len(train_index) // settings.batch_size)
    budget_steps = min(
        max_steps if max_steps is not None else np.inf,
        int(epochs * steps_per_epoch) if epochs is not None else np.inf,
    )
    deadline = time.monotonic() + hours * 3600 if hours is not None else np.inf

    def payload() -> dict:
        return {
            "model_config": config.model_dump(),
            "codec_settings": DEFAULT_CODEC.model_dump(),
            "training_settings": settings.model_dump(),
            "model_state": {k: v.cpu() for k, v in model.state_dict().items()},
            "ema_state": {k: v.cpu() for k, v in ema.state_dict().items()},
            "optimizer_state": optimizer.state_dict(),
            "data_sha256": dataset.data_sha256,
            "n_train": len(train_index),
            "n_validation": int(validation.sum()),
            "step": step,
            "trained_seconds": trained_seconds,
            "history": history,
        }

    start = time.monotonic()
    last_validation = last_checkpoint = start
    run_steps, running_loss, window_samples, window_start = 0, 0.0, 0, start
    order = rng.permutation(train_index)
    cursor = 0
    model.train()
    with log_path.open("a") as log:
        while run_steps < budget_steps and time.monotonic() < deadline:
            if cursor + settings.batch_size > len(order):
                order, cursor = rng.permutation(train_index), 0
            index = np.sort(order[cursor : cursor + settings.batch_size])
            cursor += settings.batch_size
            x0, conditions = arrays.batch(index)
            conditions = conditions.dropped(config.condition_dropout, generator)
            progress = max(run_steps / budget_steps if np.isfinite(budget_steps) else 0.0,
                           (time.monotonic() - start) / (hours * 3600) if hours else 0.0)
            for group in optimizer.param_groups:
                group["lr"] = settings.learning_rate * learning_rate_factor(step, progress, settings, anneal_lr)
            loss = diffusion.loss(model, x0, conditions, generator=generator, feature_weights=weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
            optimizer.step()
            decay = min(settings.ema_decay, (1 + step) / (10 + step))
            with torch.no_grad():
                torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1 - decay)
            step += 1
            run_steps += 1
            running_loss += loss.detach()  # summed on the device: no synchronisation at every step
            window_samples += len(index)

            now = time.monotonic()
            finished = run_steps >= budget_steps or now >= deadline
            if now - last_validation >= settings.validation_every_s or finished:
                elapsed = now - window_start
                trained_seconds += elapsed
                record = {
                    "step": step,
                    "epoch": round(step / steps_per_epoch, 3),
                    "train_loss": float(running_loss) / max(1, window_samples / settings.batch_size),
                    "val_loss": validation_loss(ema, diffusion, arrays, val_index),
                    "samples_per_s": window_samples / max(elapsed, 1e-9),
                    "lr": float(optimizer.param_groups[0]["lr"]),
                    "trained_hours": trained_seconds / 3600,
                    "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                    "device": device.type,
                }
                history.append(record)
                log.write(json.dumps(record) + "\n")
                log.flush()
                running_loss, window_samples = 0.0, 0
                last_validation = window_start = time.monotonic()
            if on_step is not None:
                on_step({"step": step, "run_steps": run_steps, "loss": loss.item()})
            if time.monotonic() - last_checkpoint >= settings.checkpoint_every_s or finished:
                save_checkpoint(out, payload())
                last_checkpoint = time.monotonic()
    if run_steps == 0:
        save_checkpoint(out, payload())
    return payload()
