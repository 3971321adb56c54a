"""The conditions of the paper: the elements of the three slots, a band-gap class and a magnetic class.

Every condition has an "unknown" value, used where the data lack the label and, with all conditions unknown at once,
as the null condition of classifier-free guidance. Unused slots of binaries and unaries hold a distinct "empty"
token, so the model knows that no points belong there (and the decoder ignores such slots).
"""

from __future__ import annotations

import numpy as np
from pymatgen.core import Element

# the condition classes are schema records (torch-free); re-exported here, where they were first defined
from pccd_flows.schemas.provenance import MAX_Z, BandGapClass, MagneticClass, checked_elements

EMPTY_SLOT = 0
UNKNOWN = 0  # index of "unknown" in every condition
ELEMENT_OFFSET = 2  # element tokens: 0 empty slot, 1 unknown (null), then Z + 1 for H (Z=1) ... Lr (Z=103)
N_ELEMENT_TOKENS = ELEMENT_OFFSET + MAX_Z
NULL_ELEMENT = 1


def element_token(symbol: str) -> int:
    return ELEMENT_OFFSET + Element(symbol).Z - 1


def token_element(token: int) -> str | None:
    if token < ELEMENT_OFFSET:
        return None
    return str(Element.from_Z(int(token) - ELEMENT_OFFSET + 1))


def element_tokens(elements) -> np.ndarray:
    """Slot tokens for 1-3 elements in canonical slot order; unused slots are EMPTY_SLOT."""
    ordered = checked_elements(elements)
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
