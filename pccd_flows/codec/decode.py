"""Point cloud -> crystal: periodic clustering of the points (paper: DBSCAN, then KMeans).

The lattice is read first (medians of the two halves of channel 2), so that points are clustered by their
minimum-image Cartesian distance: points near 0 and 1 are the same place, and the DBSCAN radius is in Angstrom
whatever the cell. Each element slot is clustered on its own; DBSCAN's noise label is never an atom.

How many atoms a cluster holds follows from the codec's even repetition: each of N atoms owns about
``n_points / N`` points, so a cluster of twice that size is two atoms that came too close (split with KMeans), and
a handful of stray points is noise, not an atom. Two atoms of one element left far closer than any two such atoms
in a real crystal (half the sum of their covalent radii, ``merge_same_element_below``; real crystals come within
0.593 of it) are merged into one.
"""

from __future__ import annotations

import numpy as np
from pymatgen.analysis.molecule_structure_comparator import CovalentRadius
from pymatgen.core import Element, Lattice, Structure
from sklearn.cluster import DBSCAN, KMeans

from pccd_flows.codec.encode import DEFAULT_CODEC
from pccd_flows.codec.errors import InvalidTensorError
from pccd_flows.codec.settings import CodecSettings

# A cluster is "a whole number of atoms" if its size is within a quarter atom of one; exact tensors deviate by at
# most n_sites / n_points = 1/8, from the uneven (+-1) repetition.
WHOLE_ATOM_TOLERANCE = 0.25


def decode_lattice(tensor: np.ndarray, settings: CodecSettings = DEFAULT_CODEC, source: str | None = None) -> Lattice:
    half = settings.lattice_rows
    angles = np.clip(settings.denormalise_angles(np.median(tensor[2, :half], axis=0)), 1.0, 179.0)
    lengths = settings.denormalise_lengths(np.median(tensor[2, half:], axis=0))
    lattice = Lattice.from_parameters(*lengths, *angles)
    volume = lattice.volume
    if not np.isfinite(volume) or volume < 1e-3 or not np.isfinite(lattice.matrix).all():
        raise InvalidTensorError(
            f"lattice a,b,c={np.round(lengths, 3).tolist()} alpha,beta,gamma={np.round(angles, 1).tolist()} "
            "does not span a cell",
            source,
        )
    return lattice


def _unwrap(frac: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return frac - np.round(frac - reference)


def _atoms_per_cluster(sizes: np.ndarray, element_of: np.ndarray, max_sites: int) -> np.ndarray:
    """How many atoms each cluster holds: the smallest N for which every cluster is a whole number of atoms.

    With N atoms each owns ``sizes.sum() / N`` points, so cluster i holds ``k_i = sizes_i * N / sizes.sum()`` atoms,
    which must be close to an integer for the right N (within N / n_points for exact tensors). The smallest such N
    wins: 2N would also fit, but it means every atom doubled onto itself. Tiny clusters (stray points) get k = 0.
    """
    total = sizes.sum()
    elements = np.unique(element_of)
    best, best_score = None, None
    for n_atoms in range(max(1, len(elements)), max_sites + 1):
        exact = sizes * n_atoms / total
        counts = np.rint(exact).astype(int)
        for element in elements:
            mine = np.flatnonzero(element_of == element)
            if counts[mine].sum() == 0:  # an element with points keeps at least its largest cluster
                counts[mine[np.argmax(sizes[mine])]] = 1
        deviation = float(np.max(np.abs(exact - counts)))
        if counts.sum() == n_atoms and deviation < WHOLE_ATOM_TOLERANCE:
            return counts
        score = (abs(int(counts.sum()) - n_atoms), deviation)
        if counts.sum() <= max_sites and (best_score is None or score < best_score):
            best, best_score = counts, score
    if best is None:  # more clusters than sites: keep the best-supported ones
        best = np.zeros(len(sizes), dtype=int)
        best[np.argsort(-sizes)[:max_sites]] = 1
    return best


def covalent_radius(element) -> float:
    """Cordero et al.'s (2008) covalent radius in A, as pymatgen tabulates it; the atomic radius for elements
    beyond Cm, which have none."""
    symbol = str(element)
    return float(CovalentRadius.radius.get(symbol) or Element(symbol).atomic_radius or 1.5)


def covalent_distance_ratios(lattice: Lattice, species, frac_coords) -> np.ndarray:
    """Periodic distances between sites over the sum of their covalent radii. The diagonal is inf."""
    radii = np.array([covalent_radius(el) for el in species])
    ratio = lattice.get_all_distances(frac_coords, frac_coords) / (radii[:, None] + radii[None, :])
    np.fill_diagonal(ratio, np.inf)
    return ratio


def merge_split_atoms(structure: Structure, fraction: float) -> Structure:
    """Merge atoms of one element closer than ``fraction`` of the sum of their covalent radii, closest pair first.

    The merged atom sits at the periodic midpoint (weighted by how many atoms each side already holds).
    """
    if fraction <= 0 or len(structure) < 2:
        return structure
    species = [str(site.specie) for site in structure]
    coords = [site.frac_coords.copy() for site in structure]
    weights = [1] * len(species)
    lattice = structure.lattice
    while len(species) > 1:
        ratio = covalent_distance_ratios(lattice, species, coords)
        ratio[np.array(species)[:, None] != np.array(species)[None, :]] = np.inf
        i, j = np.unravel_index(np.argmin(ratio), ratio.shape)
        if ratio[i, j] >= fraction:
            break
        partner = _unwrap(coords[j], coords[i])
        coords[i] = np.mod((weights[i] * coords[i] + weights[j] * partner) / (weights[i] + weights[j]), 1.0)
        weights[i] += weights[j]
        del species[j], coords[j], weights[j]
    if len(species) == len(structure):
        return structure
    return Structure(lattice, species, coords)


def decode_tensor(
    tensor: np.ndarray, elements, settings: CodecSettings = DEFAULT_CODEC, source: str | None = None
) -> Structure:
    """Decode one ``(3, n_points, 3)`` point cloud, exact or noisy, into a Structure.

    ``elements`` names the element of each slot (see :func:`pccd_flows.codec.encode.slot_elements`).
    """
    tensor = np.asarray(tensor, dtype=float)
    n = settings.n_points
    if tensor.shape != (3, n, 3):
        raise InvalidTensorError(f"expected shape (3, {n}, 3), got {tensor.shape}", source)
    if not np.isfinite(tensor).all():
        raise InvalidTensorError(f"{int((~np.isfinite(tensor)).sum())} non-finite values (NaN/inf) in tensor", source)
    elements = tuple(str(el) for el in elements)
    if not 1 <= len(elements) <= settings.max_elements:
        raise InvalidTensorError(f"{len(elements)} slot elements; expected 1 to {settings.max_elements}", source)

    lattice = decode_lattice(tensor, settings, source)
    frac = np.mod(tensor[0], 1.0)
    # Only the slots that hold an element can claim points: a binary's empty third slot is not an element.
    slots = np.argmax(tensor[1, :, : len(elements)], axis=1)

    clusters: list[np.ndarray] = []
    cluster_slot: list[int] = []
    for slot in range(len(elements)):
        points = frac[slots == slot]
        if len(points) == 0:
            continue
        distances = lattice.get_all_distances(points, points)
        labels = DBSCAN(
            eps=settings.cluster_eps, min_samples=min(settings.cluster_min_samples, len(points)), metric="precomputed"
        ).fit_predict(distances)
        if (labels < 0).all():  # too few points for a core: keep the densest point's neighbourhood
            labels = DBSCAN(eps=settings.cluster_eps, min_samples=1, metric="precomputed").fit_predict(distances)
        for label in np.unique(labels[labels >= 0]):
            members = points[labels == label]
            member_d = distances[np.ix_(labels == label, labels == label)]
            medoid = members[np.argmin(member_d.sum(axis=1))]
            clusters.append(_unwrap(members, medoid))
            cluster_slot.append(slot)

    sizes = np.array([len(c) for c in clusters], dtype=float)
    counts = _atoms_per_cluster(sizes, np.array(cluster_slot), settings.max_sites)

    species, coords = [], []
    for points, slot, k in zip(clusters, cluster_slot, counts):
        if k == 0:
            continue
        if k == 1:
            centres = points.mean(axis=0, keepdims=True)
        else:
            k = min(k, len(np.unique(np.round(points, 6), axis=0)))
            cart = lattice.get_cartesian_coords(points)
            km = KMeans(n_clusters=k, n_init=4, random_state=0).fit(cart)
            centres = lattice.get_fractional_coords(km.cluster_centers_)
        for centre in centres:
            species.append(elements[slot])
            coords.append(np.mod(centre, 1.0))
    if not species:
        raise InvalidTensorError("no atoms could be recovered from the point cloud", source)
    return merge_split_atoms(Structure(lattice, species, coords), settings.merge_same_element_below)
