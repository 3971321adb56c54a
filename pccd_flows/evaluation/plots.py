"""Figures like the paper's Fig. 1 (reconstruction): parity plots, atom-count heatmap, error box plots."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: runs on HPC nodes and CI without a display
import matplotlib.pyplot as plt
import numpy as np

from pccd_flows.evaluation.reconstruction import PairMeasures


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def lattice_parity(measures: list[PairMeasures], path: Path) -> Path:
    right = [m for m in measures if m.atom_count_right and m.reconstructed_lengths]
    original = np.array([m.original_lengths for m in right]).reshape(-1, 3)
    rebuilt = np.array([m.reconstructed_lengths for m in right]).reshape(-1, 3)
    fig, axes = plt.subplots(1, 3, figsize=(12, 4))
    for i, (ax, axis) in enumerate(zip(axes, "abc")):
        ax.scatter(original[:, i], rebuilt[:, i], s=6, alpha=0.5)
        top = max(original[:, i].max(initial=1), rebuilt[:, i].max(initial=1))
        ax.plot([0, top], [0, top], "k--", lw=0.8)
        ax.set(xlabel=f"original |{axis}| (A)", ylabel=f"reconstructed |{axis}| (A)", title=f"lattice {axis}")
    return _save(fig, path)


def coordinate_parity(measures: list[PairMeasures], path: Path) -> Path:
    original = [np.array(m.original_coords) for m in measures if m.original_coords is not None]
    rebuilt = [np.array(m.reconstructed_coords) for m in measures if m.reconstructed_coords is not None]
    original = np.concatenate(original) if original else np.zeros((0, 3))
    rebuilt = np.concatenate(rebuilt) if rebuilt else np.zeros((0, 3))
    fig, axes = plt.subplots(1, 3, figsize=(12, 4))
    for i, (ax, axis) in enumerate(zip(axes, "xyz")):
        ax.scatter(original[:, i], rebuilt[:, i], s=4, alpha=0.4)
        ax.plot([0, 1], [0, 1], "k--", lw=0.8)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel=f"original {axis}", ylabel=f"reconstructed {axis}",
               title=f"fractional {axis} (paired atoms)")
    return _save(fig, path)


def atom_count_heatmap(measures: list[PairMeasures], path: Path, max_atoms: int = 16) -> Path:
    counts = np.zeros((max_atoms + 1, max_atoms + 1), dtype=int)
    for m in measures:
        if m.reconstructed_atoms is not None:
            counts[min(m.reconstructed_atoms, max_atoms), min(m.original_atoms, max_atoms)] += 1
    fig, ax = plt.subplots(figsize=(6, 5))
    image = ax.imshow(np.log1p(counts), origin="lower", cmap="viridis")
    ax.set(xlabel="atoms in original", ylabel="atoms in reconstruction", title="atom counts (log(1 + n))")
    fig.colorbar(image, ax=ax)
    return _save(fig, path)


def error_boxplots(measures: list[PairMeasures], path: Path) -> Path:
    right = [m for m in measures if m.atom_count_right]
    lattice = np.array([m.lattice_rel_error for m in right if m.lattice_rel_error]).reshape(-1, 3)
    coords = [np.array(m.coordinate_errors) for m in right if m.coordinate_errors is not None]
    coords = np.concatenate(coords) if coords else np.zeros((0, 3))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, data, labels, title in (
        (axes[0], lattice, ["a", "b", "c"], "lattice length relative error"),
        (axes[1], coords, ["x", "y", "z"], "fractional coordinate error (minimum image)"),
    ):
        columns = [data[:, i] for i in range(3)] if len(data) else [np.zeros(1)] * 3
        ax.violinplot(columns, showextrema=False)  # the density, as in Fig. 1d-e
        ax.boxplot(columns, widths=0.15, showfliers=False)
        ax.set_xticks([1, 2, 3], labels)
        ax.axhline(0.05, color="grey", ls=":", lw=0.8)
        ax.axhline(-0.05, color="grey", ls=":", lw=0.8)
        ax.set_title(title)
    return _save(fig, path)


def reconstruction_figures(measures: list[PairMeasures], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    return [
        lattice_parity(measures, directory / "fig1a_lattice_parity.png"),
        coordinate_parity(measures, directory / "fig1b_coordinate_parity.png"),
        atom_count_heatmap(measures, directory / "fig1c_atom_count_heatmap.png"),
        error_boxplots(measures, directory / "fig1de_error_boxplots.png"),
    ]
