"""Structures (and other pymatgen objects) inside stored documents: plain dicts."""

from __future__ import annotations

from typing import Annotated

from monty.json import jsanitize
from pydantic import BeforeValidator


def _structure_as_dict(value):
    """jobflow decodes stored MSON dicts into objects; documents keep plain dicts (MongoDB-friendly), without the
    numpy scalars force fields leave in site properties (magnetic moments as float32)."""
    return jsanitize(value.as_dict() if hasattr(value, "as_dict") else value)


StructureDict = Annotated[dict | None, BeforeValidator(_structure_as_dict)]
# a band structure, a phonon DOS...: the same treatment
MSONDict = StructureDict
