"""The record of one crystal in a data set, as stored in the jsonl.gz files."""

from __future__ import annotations

import warnings

from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from pymatgen.core import Structure

from pccd_flows.codec.errors import MalformedStructureError


class MaterialRecord(BaseModel):
    """One crystal: identity, P1 CIF of its cell, and the MP properties known for it.

    The bundled file names its properties with the MP release they come from (``band_gap_mp2018``...); these are
    accepted as aliases so that fetched and bundled data share one schema.
    """

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    material_id: str
    cif: str
    formula: str | None = None
    nsites: int | None = Field(None, description="Sites in the CIF's cell; None where the source does not say.")
    nelements: int | None = None
    formation_energy_per_atom: float | None = Field(
        None, validation_alias=AliasChoices("formation_energy_per_atom", "formation_energy_per_atom_mp2018")
    )
    band_gap: float | None = Field(None, validation_alias=AliasChoices("band_gap", "band_gap_mp2018"))
    total_magnetization: float | None = Field(
        None, validation_alias=AliasChoices("total_magnetization", "total_magnetization_mp2018")
    )
    magnetic_ordering: str | None = Field(None, description="MP ordering: NM, FM, FiM or AFM.")
    properties_source: str | None = Field(None, description="Which MP release the properties come from.")

    def to_structure(self) -> Structure:
        """Parse the CIF; a malformed one raises :class:`MalformedStructureError` naming the material."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pymatgen warns on every rounded coordinate
                structure = Structure.from_str(self.cif, fmt="cif")
        except Exception as exc:  # CifParser raises many types for one meaning: unreadable
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise MalformedStructureError(f"malformed CIF ({message})", self.material_id) from exc
        return structure

    @classmethod
    def from_structure(cls, material_id: str, structure: Structure, **properties) -> MaterialRecord:
        return cls(
            material_id=material_id,
            formula=structure.composition.formula.replace(" ", ""),
            nsites=len(structure),
            nelements=len(structure.composition.elements),
            cif=structure.to(fmt="cif"),
            **properties,
        )
