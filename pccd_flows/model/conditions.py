"""The conditions of the paper: the elements of the three slots, a band-gap class and a magnetic class.

Every condition has an "unknown" value, used where the data lack the label and, with all conditions unknown at once,
as the null condition of classifier-free guidance. Unused slots of binaries and unaries hold a distinct "empty"
token, so the model knows that no points belong there (and the decoder ignores such slots).
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
from pymatgen.core import Element

from pccd_flows.codec.encode import slot_elements
from pccd_flows.codec.errors import TooManyElementsError

EMPTY_SLOT = 0
UNKNOWN = 0  # index of "unknown" in every condition
ELEMENT_OFFSET = 2  # element tokens: 0 empty slot, 1 unknown (null), then Z + 1 for H (Z=1) ... Lr (Z=103)
MAX_Z = 103
N_ELEMENT_TOKENS = ELEMENT_OFFSET + MAX_Z
NULL_ELEMENT = 1


class BandGapClass(IntEnum):
    """The paper's band-gap classes (eV, PBE)."""

    unknown = 0
    metal = 1  # gap == 0
    small = 2  # 0 < gap < 1.5
    large = 3  # gap >= 1.5

    @classmethod
    def from_gap(cls, gap: float | None) -> BandGapClass:
        if gap is None or not np.isfinite(gap):
            return cls.unknown
        if gap <= 1e-3:
            return cls.metal
        return cls.small if gap < 1.5 else cls.large


class MagneticClass(IntEnum):
    """Magnetic classes. From MP orderings where known (fetched data), else from the total magnetisation."""

    unknown = 0
    non_magnetic = 1
    magnetic = 2  # net moment: ferro- or ferrimagnetic
    antiferromagnetic = 3

    @classmethod
    def from_record(cls, ordering: str | None, total_magnetization: float | None, n_sites: int) -> MagneticClass:
        if ordering:
            return {"NM": cls.non_magnetic, "FM": cls.magnetic, "FIM": cls.magnetic,
                    "AFM": cls.antiferromagnetic}.get(ordering.upper(), cls.unknown)
        if total_magnetization is None or not np.isfinite(total_magnetization):
            return cls.unknown
        # MP calls a material magnetic above ~0.05 muB per atom (its NM threshold); AFM has no net moment and so
        # cannot be told from NM with magnetisation alone.
        return cls.magnetic if abs(total_magnetization) / max(n_sites, 1) >= 0.05 else cls.non_magnetic


def element_token(symbol: str) -> int:
    return ELEMENT_OFFSET + Element(symbol).Z - 1


def token_element(token: int) -> str | None:
    if token < ELEMENT_OFFSET:
        return None
    return str(Element.from_Z(int(token) - ELEMENT_OFFSET + 1))


def element_tokens(elements) -> np.ndarray:
    """Slot tokens for 1-3 elements in canonical slot order; unused slots are EMPTY_SLOT."""
    ordered = slot_elements(elements)
    if not 1 <= len(ordered) <= 3:
        raise TooManyElementsError(f"{len(ordered)} elements ({'-'.join(ordered)}); PCCD generates 1 to 3")
    if any(Element(el).Z > MAX_Z for el in ordered):
        raise ValueError(f"elements beyond Z={MAX_Z} are not in the model's vocabulary: {ordered}")
    tokens = np.full(3, EMPTY_SLOT, dtype=np.int64)
    tokens[: len(ordered)] = [element_token(el) for el in ordered]
    return tokens


def element_vocabulary() -> list[str]:
    """Symbols of the element tokens (index = token), stored in checkpoints."""
    return ["<empty>", "<unknown>"] + [str(Element.from_Z(z)) for z in range(1, MAX_Z + 1)]


def record_condition_labels(record, structure) -> tuple[np.ndarray, int, int]:
    """Slot tokens, band-gap class and magnetic class of a data-set crystal (training, reconstruction)."""
    return (
        element_tokens({str(el) for el in structure.composition.elements}),
        int(BandGapClass.from_gap(record.band_gap)),
        int(MagneticClass.from_record(record.magnetic_ordering, record.total_magnetization, len(structure))),
    )
