"""Where the lattice error at t = 200 comes from: the noisy sample, the model, the sampler or the positions?

Held-out crystals (seed 0, as `pccd reconstruct`), noised to step t with the same noise as `pccd reconstruct`. For
each estimate of the lattice lengths: the fraction within +-5% of the original and the standard deviation of the
relative error, per axis.

- noisy copies alone: the mean of the 64 noisy copies of each length in x_t (rescaled by 1/sqrt(alpha_bar)), no model
- model, one step: the model's predicted clean sample at step t (the posterior mean under the model)
- model, DDIM 50 from t: the reverse process (deterministic)
- true positions clamped: DDIM 50 from x_t with positions and elements replaced at every step by the original's,
  noised to that step (the noise of x_t): the model's lattice if it knew the atoms' true positions
- true positions, lattice from pure noise: the same from t = T, the lattice drawn afresh (100 DDIM steps)
- per longest axis: the one-step errors grouped by the original's longest lattice length

    python docs/reconstruction/diagnostics/lattice_at_t200.py --n 1024 --out docs/reconstruction/diagnostics/x.json
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from pccd_flows.cli.data import resolve_data
from pccd_flows.codec.encode import DEFAULT_CODEC, encode_structure
from pccd_flows.data.io import read_records
from pccd_flows.model.checkpoint import load_model
from pccd_flows.model.conditions import record_condition_labels
from pccd_flows.model.dataset import is_validation
from pccd_flows.model.diffusion import Conditions, GaussianDiffusion, from_features, to_features
from pccd_flows.model.generate import initial_noise
from pccd_flows.settings import get_settings

HALF = DEFAULT_CODEC.lattice_rows


def lengths(features: torch.Tensor) -> np.ndarray:
    return DEFAULT_CODEC.denormalise_lengths(np.median(from_features(features).numpy()[:, 2, HALF:], axis=1))


def summary(errors: np.ndarray) -> dict:
    return {"within_5_percent": dict(zip("abc", np.mean(np.abs(errors) <= 0.05, axis=0).round(3).tolist())),
            "std": dict(zip("abc", errors.std(axis=0).round(3).tolist())), "n": len(errors)}


def ddim(diffusion, model, x, conditions, start, steps, known=None):
    """DDIM (eta 0) from step ``start``. With ``known`` (the originals) every step's predicted clean sample keeps the
    original positions and elements; since ``x`` is the originals noised with the noise of x_t, deterministic DDIM
    then keeps those channels exactly on the originals' noised path."""

    def clamp(x0, _t):
        return torch.cat([known[:, :6], x0[:, 6:]], 1)

    return diffusion.ddim_sample(model, x, conditions, steps=steps, start_step=start,
                                 x0_correction=clamp if known is not None else None)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1024)
    parser.add_argument("--t", type=int, default=200)
    parser.add_argument("--split", default="validation")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--out", required=True)
    parser.add_argument("--quick", action="store_true", help="only the noisy copies and the model's one step")
    args = parser.parse_args()

    model, _, checkpoint = load_model(args.checkpoint or get_settings().checkpoint)
    records = [r for r in read_records(resolve_data(None))
               if is_validation(r.material_id) == (args.split == "validation")]
    chosen = np.random.default_rng(0).choice(len(records), size=min(args.n, len(records)), replace=False)
    tensors, labels = [], []
    for index in chosen:
        structure = records[index].to_structure()
        tensors.append(encode_structure(structure).tensor)
        labels.append(record_condition_labels(records[index], structure))
    n = len(tensors)
    x0 = to_features(torch.from_numpy(np.stack(tensors)))
    conditions = Conditions(torch.from_numpy(np.stack([tokens for tokens, _, _ in labels])),
                            torch.tensor([gap for _, gap, _ in labels]), torch.tensor([mag for _, _, mag in labels]))
    diffusion = GaussianDiffusion(model.config.timesteps)
    noise = torch.stack([initial_noise(0, i, tuple(x0.shape[1:])) for i in range(n)])
    xt = diffusion.q_sample(x0, torch.full((n,), args.t), noise)
    true = lengths(x0)
    ab = diffusion.alpha_bar[args.t - 1]

    def error(features):
        return lengths(features) / true - 1

    # the noisy copies' mean, not their median: the mean is the sufficient statistic of Gaussian noise
    noisy = DEFAULT_CODEC.denormalise_lengths(((xt / ab.sqrt())[:, 6:, HALF:].mean(2) + 1) / 2) / true - 1
    one_step = error(ddim(diffusion, model, xt, conditions, args.t, 1))
    report = {
        "checkpoint": args.checkpoint or "shipped", "checkpoint_sha256": checkpoint.get("sha256"), "t": args.t,
        "split": args.split, "n": n,
        "noisy_copies_alone": summary(noisy),
        "model_one_step": summary(one_step),
        "correlation_model_vs_noisy_copies": np.round(
            [np.corrcoef(one_step[:, k], noisy[:, k])[0, 1] for k in range(3)], 3).tolist(),
        "one_step_by_longest_axis": {},
    }
    if not args.quick:
        report["model_ddim50"] = summary(error(ddim(diffusion, model, xt, conditions, args.t, 50)))
        report["true_positions_clamped"] = summary(error(ddim(diffusion, model, xt, conditions, args.t, 50, x0)))
        pure_noise = diffusion.q_sample(x0, torch.full((n,), diffusion.timesteps), noise)
        report["true_positions_lattice_from_pure_noise"] = summary(error(ddim(
            diffusion, model, pure_noise, conditions, diffusion.timesteps, 100, x0)))
    longest = true.max(axis=1)
    for low, high in ((0, 4), (4, 6), (6, 8), (8, 12), (12, 1000)):
        inside = (longest >= low) & (longest < high)
        if inside.any():
            report["one_step_by_longest_axis"][f"{low}-{high} A"] = summary(one_step[inside])
    with open(args.out, "w") as handle:
        json.dump(report, handle, indent=1)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
