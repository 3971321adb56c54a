"""Crystal -> point cloud (paper, Methods: "Data preprocessing").

Channel 0 holds fractional coordinates: every atom is repeated over the points as evenly as possible (counts
differ by at most one, unlike the paper's 128//N copies padded with the last atom, which over-weights one site).
Channel 1 holds the one-hot element slot of each point. Channel 2 holds the lattice: normalised angles in the first
half of the rows, normalised lengths in the second half.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from pymatgen.core import DummySpecies, Element, Species, Structure

from pccd_flows.codec.errors import (
    MalformedStructureError,
    PartialOccupancyError,
    TooManyElementsError,
    TooManySitesError,
    UnknownSpeciesError,
)
from pccd_flows.codec.settings import CodecSettings

DEFAULT_CODEC = CodecSettings()


@dataclass(frozen=True)
class EncodedCrystal:
    """A point cloud, the elements of its slots (slot i holds ``elements[i]``) and the cell it encodes."""

    tensor: np.ndarray
    elements: tuple[str, ...]
    structure: Structure


def _electronegativity_key(element: Element) -> tuple[float, int]:
    chi = element.X
    return (chi if math.isfinite(chi) else math.inf, element.Z)


def slot_elements(elements) -> tuple[str, ...]:
    """Canonical slot order: increasing Pauling electronegativity (cation first), ties by atomic number.

    Both the codec and the model's conditioning use this order, so that "Ca Sn O" and "O Ca Sn" are the same request.
    """
    parsed = []
    for symbol in elements:
        try:
            parsed.append(Element(str(symbol)))
        except ValueError as exc:
            raise UnknownSpeciesError(f"unknown element {symbol!r}") from exc
    if len(set(parsed)) != len(parsed):
        raise UnknownSpeciesError(f"repeated element in {list(map(str, elements))}")
    return tuple(str(el) for el in sorted(parsed, key=_electronegativity_key))


def balanced_repeats(n_sites: int, n_points: int) -> np.ndarray:
    """How many points each site gets: as even as possible, counts differ by at most one."""
    base, extra = divmod(n_points, n_sites)
    return np.array([base + 1] * extra + [base] * (n_sites - extra), dtype=int)


def element_channel(slot_counts, n_points: int) -> np.ndarray:
    """Channel 1 of every crystal whose slot i holds ``slot_counts[i]`` atoms: one-hot slots, grouped in slot order,
    each atom repeated as :func:`balanced_repeats` says. It depends on the composition only, not on the structure."""
    slot_counts = [int(count) for count in slot_counts]
    slot_of_site = np.repeat(np.arange(len(slot_counts)), slot_counts)
    channel = np.zeros((n_points, 3), dtype=np.float32)
    channel[np.arange(n_points), np.repeat(slot_of_site, balanced_repeats(len(slot_of_site), n_points))] = 1.0
    return channel


def _to_element(species, source: str | None) -> Element:
    if isinstance(species, DummySpecies):
        raise UnknownSpeciesError(f"unknown species {species!s}", source)
    if isinstance(species, Species):
        return species.element
    if isinstance(species, Element):
        return species
    raise UnknownSpeciesError(f"unknown species {species!s}", source)


def prepare_structure(structure: Structure, settings: CodecSettings = DEFAULT_CODEC, source: str | None = None):
    """Check that a structure can be encoded and return it as a plain, ordered, (reduced) structure."""
    if not isinstance(structure, Structure):
        raise MalformedStructureError(f"expected a pymatgen Structure, got {type(structure).__name__}", source)
    if len(structure) == 0:
        raise MalformedStructureError("structure has no sites", source)
    if not structure.is_ordered:
        raise PartialOccupancyError("partial occupancies cannot be encoded; order the structure first", source)
    elements = [_to_element(site.specie, source) for site in structure]
    distinct = sorted({str(el) for el in elements})
    if len(distinct) > settings.max_elements:
        raise TooManyElementsError(
            f"{len(distinct)} elements ({'-'.join(distinct)}); at most {settings.max_elements} are supported", source
        )
    if len(structure) > settings.max_sites:
        raise TooManySitesError(f"{len(structure)} sites; at most {settings.max_sites} are supported", source)
    if not (np.isfinite(structure.lattice.matrix).all() and structure.volume > 1e-6):
        raise MalformedStructureError("degenerate lattice", source)
    lengths = np.array(structure.lattice.abc)
    plain = Structure(structure.lattice, elements, structure.frac_coords)
    if settings.cell_reduction == "niggli":
        try:
            plain = plain.get_reduced_structure("niggli")
        except Exception:  # noqa: BLE001 - pymatgen raises bare ValueErrors/RuntimeErrors on odd cells
            plain = plain.get_reduced_structure("LLL")
        lengths = np.array(plain.lattice.abc)
    if lengths.min() < settings.length_min or lengths.max() > settings.length_max:
        raise MalformedStructureError(
            f"lattice lengths {np.round(lengths, 3).tolist()} A outside the codec range "
            f"[{settings.length_min}, {settings.length_max}] A",
            source,
        )
    return plain


def encode_structure(
    structure: Structure, settings: CodecSettings = DEFAULT_CODEC, source: str | None = None
) -> EncodedCrystal:
    """Encode one crystal as a ``(3, n_points, 3)`` float32 point cloud."""
    plain = prepare_structure(structure, settings, source)
    elements = slot_elements({str(site.specie) for site in plain})
    slot_of = {el: i for i, el in enumerate(elements)}

    # Wrap in the tensor's precision: 0.99999999 would round to 1.0 in float32, outside [0, 1).
    frac = np.mod(plain.frac_coords.astype(np.float32), np.float32(1.0))
    frac[frac >= 1.0] = 0.0
    slots = np.array([slot_of[str(site.specie)] for site in plain])
    # Group the points of each element, then by position: a canonical order for identical crystals.
    order = np.lexsort((frac[:, 2], frac[:, 1], frac[:, 0], slots))
    frac, slots = frac[order], slots[order]

    n = settings.n_points
    repeats = balanced_repeats(len(plain), n)
    tensor = np.zeros((3, n, 3), dtype=np.float32)
    tensor[0] = np.repeat(frac, repeats, axis=0)
    tensor[1] = element_channel(np.bincount(slots, minlength=len(elements)), n)
    half = settings.lattice_rows
    tensor[2, :half] = settings.normalise_angles(plain.lattice.angles)
    tensor[2, half:] = settings.normalise_lengths(plain.lattice.abc)
    return EncodedCrystal(tensor=tensor, elements=elements, structure=plain)
