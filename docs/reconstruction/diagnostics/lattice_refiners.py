"""How far could the lattice lengths at t = 200 get with knowledge of bond lengths? Two ceilings, measured.

Both start from the model's one-step estimate of the lattice at t = 200 (as good as the whole reverse process,
lattice_at_t200.py) and are given the crystals' TRUE fractional coordinates and elements, the best case for any
decode-time fix:

- learned refiner: gradient boosting (scikit-learn) trained on training crystals to predict log(true / estimated
  length) per axis from the estimate, the noisy copies and first-shell bonds measured in the estimated cell
  against a table of first-shell bond lengths per element pair (from the training crystals' true cells)
- CHGNet: the estimated cell with the true atoms relaxed (cell and positions, FIRE, fmax 0.05 eV/A, 300 steps), and,
  as the force field's own ceiling, the true crystal relaxed the same way

    python docs/reconstruction/diagnostics/lattice_refiners.py --n 1024 --n-train 30000 --n-relax 300 --out FILE
"""

from __future__ import annotations

import argparse
import collections
import json
import warnings

import numpy as np
import torch
from lattice_at_t200 import summary
from pymatgen.core import Element, Lattice, Structure
from rich.progress import track
from sklearn.ensemble import HistGradientBoostingRegressor

from pccd_flows.cli.data import resolve_data
from pccd_flows.codec.decode import decode_lattice
from pccd_flows.codec.encode import DEFAULT_CODEC
from pccd_flows.model.checkpoint import load_model
from pccd_flows.model.dataset import load_encoded_dataset
from pccd_flows.model.diffusion import Conditions, GaussianDiffusion, from_features, to_features
from pccd_flows.model.generate import initial_noise
from pccd_flows.settings import get_settings

HALF = DEFAULT_CODEC.lattice_rows


def cell(tensor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lattice = decode_lattice(tensor)
    return np.array(lattice.abc), np.array(lattice.angles)


def true_atoms(tensor: np.ndarray, tokens: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """The atoms of an exact point cloud: its distinct (position, slot) rows (token = Z + 1)."""
    rows = np.concatenate([np.round(np.mod(tensor[0], 1), 5), np.argmax(tensor[1], axis=1)[:, None]], 1)
    unique = np.unique(rows, axis=0)
    return unique[:, :3], [Element.from_Z(int(tokens[int(slot)]) - 1).symbol for slot in unique[:, 3]]


def one_step_estimates(dataset, indices, model, t: int, noise_seed: int) -> dict:
    diffusion = GaussianDiffusion(model.config.timesteps)
    ab = diffusion.alpha_bar[t - 1]
    estimates, noisy = [], []
    for start in track(range(0, len(indices), 256), description="one step", transient=True):
        chosen = indices[start:start + 256]
        x0 = to_features(torch.from_numpy(dataset.tensors[chosen]))
        conditions = Conditions(torch.from_numpy(dataset.elements[chosen]), torch.from_numpy(dataset.band_gap[chosen]),
                                torch.from_numpy(dataset.magnetic[chosen]))
        noise = torch.stack([initial_noise(noise_seed, int(i), tuple(x0.shape[1:])) for i in chosen])
        xt = diffusion.q_sample(x0, torch.full((len(chosen),), t), noise)
        estimates.append(from_features(diffusion.ddim_sample(model, xt, conditions, steps=1, start_step=t)).numpy())
        noisy.append(DEFAULT_CODEC.denormalise_lengths((((xt / ab.sqrt())[:, 6:, HALF:].mean(2) + 1) / 2).numpy()))
    return {"tensors": np.concatenate(estimates), "noisy_lengths": np.concatenate(noisy)}


def first_shell(frac, species, lattice) -> tuple[list[tuple[str, str]], np.ndarray]:
    """Each atom's bonds up to 1.15 x its shortest one: element pairs and fractional bond vectors (image included)."""
    structure = Structure(lattice, species, frac)
    centres, partners, images, distances = structure.get_neighbor_list(max(6.0, 1.2 * min(lattice.abc)))
    pairs, vectors = [], []
    for i in range(len(structure)):
        mine = (centres == i) & (distances > 1e-6)
        if mine.any():
            for bond in np.flatnonzero(mine & (distances <= 1.15 * distances[mine].min())):
                pairs.append(tuple(sorted((species[i], species[partners[bond]]))))
                vectors.append(frac[partners[bond]] + images[bond] - frac[i])
    return pairs, np.array(vectors).reshape(-1, 3)


def bond_lengths_and_axis_weights(vectors, lengths, angles):
    """Bond lengths in a cell and d ln(bond) / d ln(length k) of each bond (they sum to 1 over k)."""
    matrix = Lattice.from_parameters(*lengths, *angles).matrix
    cartesian = vectors @ matrix
    d = np.linalg.norm(cartesian, axis=1)
    weights = np.stack([((vectors[:, k:k + 1] * matrix[k]) * cartesian).sum(1) / d**2 for k in range(3)], 1)
    return d, weights


def features(crystal, table) -> list[float]:
    lengths, angles = crystal["estimate"]
    radii = np.array([Element(e).atomic_radius or 1.5 for e in crystal["species"]])
    volume = Lattice.from_parameters(*lengths, *angles).volume
    row = [*np.log(lengths), *angles, *np.log(crystal["noisy"] / lengths), len(radii), len(set(crystal["species"])),
           np.mean([Element(e).Z for e in crystal["species"]]), radii.mean(),
           np.log(volume / len(radii)) - 3 * np.log(radii.mean())]
    if not len(crystal["vectors"]):
        return row + [np.nan] * 13
    d, weights = bond_lengths_and_axis_weights(crystal["vectors"], lengths, angles)
    reference = np.array([table.get(pair, np.nan) for pair in crystal["pairs"]])
    known = np.isfinite(reference)
    if not known.any():
        return row + [np.nan] * 12 + [0.0]
    misfit = np.log(reference[known] / d[known])  # > 0: bonds shorter than is typical for their element pair
    positive = np.clip(weights[known], 0, None)
    per_axis = (positive * misfit[:, None]).sum(0) / (positive.sum(0) + 1e-9)
    scale = np.linalg.solve(weights[known].T @ weights[known] + 0.5 * np.eye(3), weights[known].T @ misfit)
    return row + [*per_axis, *(positive.sum(0) / known.sum()), *scale, misfit.mean(), misfit.std(), misfit.min(),
                  known.mean()]


def crystals(dataset, indices, estimates) -> list[dict]:
    out = []
    for k, index in enumerate(track(indices, description="bonds", transient=True)):
        tensor = dataset.tensors[index]
        frac, species = true_atoms(tensor, dataset.elements[index])
        estimate = cell(estimates["tensors"][k])
        pairs, vectors = first_shell(frac, species, Lattice.from_parameters(*estimate[0], *estimate[1]))
        out.append({"true": cell(tensor), "estimate": estimate, "noisy": estimates["noisy_lengths"][k],
                    "frac": frac, "species": species, "pairs": pairs, "vectors": vectors})
    return out


def relaxed_error(crystal, lengths, angles, optimizer) -> np.ndarray:
    structure = Structure(Lattice.from_parameters(*lengths, *angles), crystal["species"], crystal["frac"])
    try:
        relaxed = optimizer.relax(structure, fmax=0.05, steps=300, verbose=False)["final_structure"]
    except Exception:  # noqa: BLE001 - a failed relaxation counts as a miss (error 100%), not as a crash
        return np.ones(3)
    return np.array(relaxed.lattice.abc) / crystal["true"][0] - 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1024, help="held-out crystals")
    parser.add_argument("--n-train", type=int, default=30000, help="training crystals for the learned refiner")
    parser.add_argument("--n-relax", type=int, default=300, help="held-out crystals relaxed with CHGNet")
    parser.add_argument("--t", type=int, default=200)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    model, _, checkpoint = load_model(get_settings().checkpoint)
    dataset = load_encoded_dataset(resolve_data(None))
    held_out = dataset.validation_mask()
    rng = np.random.default_rng(0)
    validation = rng.choice(np.flatnonzero(held_out), size=min(args.n, int(held_out.sum())), replace=False)
    training = rng.choice(np.flatnonzero(~held_out), size=min(args.n_train, int((~held_out).sum())), replace=False)
    valid = crystals(dataset, validation, one_step_estimates(dataset, validation, model, args.t, noise_seed=0))
    train = crystals(dataset, training, one_step_estimates(dataset, training, model, args.t, noise_seed=1))

    bonds = collections.defaultdict(list)
    for crystal in train:
        d, _ = bond_lengths_and_axis_weights(crystal["vectors"], *crystal["true"])
        for pair, length in zip(crystal["pairs"], d):
            bonds[pair].append(length)
    table = {pair: float(np.median(v)) for pair, v in bonds.items() if len(v) >= 3}

    def target(rows):
        return np.log(np.array([c["true"][0] / c["estimate"][0] for c in rows]))

    x_train = np.array([features(c, table) for c in train])
    x_valid = np.array([features(c, table) for c in valid])
    y_train, y_valid = target(train), target(valid)
    predicted = np.zeros_like(y_valid)
    for axis in range(3):
        booster = HistGradientBoostingRegressor(max_iter=600, learning_rate=0.05, max_leaf_nodes=63,
                                                l2_regularization=1.0, loss="absolute_error", random_state=0)
        predicted[:, axis] = booster.fit(x_train, y_train[:, axis]).predict(x_valid)

    report = {"checkpoint_sha256": checkpoint.get("sha256"), "t": args.t, "n": len(valid), "n_train": len(train),
              "bond_table_pairs": len(table),
              "model_one_step": summary(np.exp(-y_valid) - 1),
              "learned_refiner_true_positions": summary(np.exp(predicted - y_valid) - 1)}

    from chgnet.model import StructOptimizer

    warnings.filterwarnings("ignore")
    optimizer = StructOptimizer()
    subset = valid[:args.n_relax]
    report["chgnet_from_estimate_true_positions"] = summary(np.array(
        [relaxed_error(c, *c["estimate"], optimizer) for c in track(subset, description="CHGNet from the estimate")]))
    report["chgnet_from_true_crystal"] = summary(np.array(
        [relaxed_error(c, *c["true"], optimizer) for c in track(subset, description="CHGNet from the true crystal")]))
    report["model_one_step_same_subset"] = summary(np.exp(-y_valid[:args.n_relax]) - 1)
    with open(args.out, "w") as handle:
        json.dump(report, handle, indent=1)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
