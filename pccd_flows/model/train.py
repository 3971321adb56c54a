"""Training: epsilon-prediction DDPM loss, condition dropout for guidance, EMA weights, time budgets, resume."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel

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


def learning_rate_factor(step: int, progress: float, settings: TrainingSettings, anneal: bool) -> float:
    """Linear warm-up, then constant, or with ``anneal`` a cosine decay to ``final_lr_fraction`` over the run."""
    warm = min(1.0, (step + 1) / settings.warmup_steps)
    if not anneal:
        return warm
    progress = min(max(progress, 0.0), 1.0)
    floor = settings.final_lr_fraction
    return float(warm * (floor + (1 - floor) * 0.5 * (1 + np.cos(np.pi * progress))))


def _batch(dataset: EncodedDataset, index: np.ndarray):
    x0 = to_features(torch.from_numpy(dataset.tensors[index]))
    conditions = Conditions(
        torch.from_numpy(dataset.elements[index]),
        torch.from_numpy(dataset.band_gap[index]),
        torch.from_numpy(dataset.magnetic[index]),
    )
    return x0, conditions


@torch.no_grad()
def validation_loss(model, diffusion: GaussianDiffusion, dataset: EncodedDataset, index: np.ndarray,
                    batch_size: int = 256) -> float:
    """Loss on fixed validation crystals, timesteps and noise, so that values are comparable across runs."""
    generator = torch.Generator().manual_seed(1234)
    total, count = 0.0, 0
    for start in range(0, len(index), batch_size):
        x0, conditions = _batch(dataset, index[start : start + batch_size])
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
) -> dict:
    """Train (or continue training) and write the checkpoint to ``out``; returns the final checkpoint payload.

    The budget is this run's: ``hours`` of wall time, ``epochs`` over the training split, or ``max_steps`` steps,
    whichever ends first. With ``resume`` the checkpoint at ``out`` supplies weights, optimiser, step and history.
    With ``anneal_lr`` the learning rate decays (cosine) over this run's budget: use it for a final run.
    """
    out = Path(out)
    log_path = Path(log_path) if log_path else out.with_suffix(".log.jsonl")
    previous = load_checkpoint(out) if resume else None
    if previous is not None:
        config = ModelConfig.model_validate(previous["model_config"])
        settings = TrainingSettings.model_validate(previous.get("training_settings", {}))
        if previous["data_sha256"] != dataset.data_sha256:
            raise ValueError(f"{out} was trained on other data (sha256 {previous['data_sha256'][:12]}...)")
    config = config or ModelConfig()
    settings = settings or TrainingSettings()
    if hours is None and epochs is None and max_steps is None:
        raise ValueError("give a budget: hours, epochs or max_steps")

    torch.manual_seed(settings.seed)
    model = build_model(config)
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
    generator = torch.Generator().manual_seed(settings.seed * 1_000_003 + step)

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
            "model_state": model.state_dict(),
            "ema_state": ema.state_dict(),
            "optimizer_state": optimizer.state_dict(),
            "data_sha256": dataset.data_sha256,
            "n_train": int(len(train_index)),
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
            x0, conditions = _batch(dataset, index)
            conditions = conditions.dropped(config.condition_dropout, generator)
            progress = max(run_steps / budget_steps if np.isfinite(budget_steps) else 0.0,
                           (time.monotonic() - start) / (hours * 3600) if hours else 0.0)
            for group in optimizer.param_groups:
                group["lr"] = settings.learning_rate * learning_rate_factor(step, progress, settings, anneal_lr)
            loss = diffusion.loss(model, x0, conditions, generator=generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
            optimizer.step()
            decay = min(settings.ema_decay, (1 + step) / (10 + step))
            with torch.no_grad():
                for p_ema, p in zip(ema.parameters(), model.parameters()):
                    p_ema.lerp_(p, 1 - decay)
            step += 1
            run_steps += 1
            running_loss += loss.item()
            window_samples += len(index)

            now = time.monotonic()
            finished = run_steps >= budget_steps or now >= deadline
            if now - last_validation >= settings.validation_every_s or finished:
                elapsed = now - window_start
                trained_seconds += elapsed
                record = {
                    "step": step,
                    "epoch": round(step / steps_per_epoch, 3),
                    "train_loss": running_loss / max(1, window_samples / settings.batch_size),
                    "val_loss": validation_loss(ema, diffusion, dataset, val_index),
                    "samples_per_s": window_samples / max(elapsed, 1e-9),
                    "lr": float(optimizer.param_groups[0]["lr"]),
                    "trained_hours": trained_seconds / 3600,
                    "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
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
