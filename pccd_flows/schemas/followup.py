"""Documents of the follow-up physics: band gap, phonons, and a DFT check of the force field's stability call."""

from __future__ import annotations

from pydantic import BaseModel, Field

from pccd_flows.schemas.structure import StructureDict

IMAGINARY_TOLERANCE_THZ = 0.1


class BandGapSummary(BaseModel):
    engine: str
    band_gap: float = Field(description="eV along the line-mode path; 0 for a metal.")
    is_gap_direct: bool | None = None
    transition: str | None = Field(None, description="e.g. '\\Gamma-X'.")
    is_metal: bool


class PhononSummary(BaseModel):
    engine: str
    has_imaginary_modes: bool
    min_frequency_thz: float = Field(description="Lowest frequency on the band path and DOS mesh (negative: "
                                                 "imaginary), acoustic sum rule imposed.")
    min_frequency_away_from_gamma_thz: float | None = None
    tolerance_thz: float = IMAGINARY_TOLERANCE_THZ
    supercell_matrix: list[list[int]] | None = None
    n_displacements: int | None = None


class DftStabilityResult(BaseModel):
    """E_hull of the candidate against its decomposition products (from the offline hull), all recomputed with the
    same DFT settings: a force field's call confirmed, or not, by DFT."""

    engine: str
    e_above_hull: float | None = Field(None, description="eV/atom above the products (negative: below them).")
    energy_per_atom: float | None = None
    decomposition: dict[str, float] = Field(default_factory=dict, description="Product formula -> atom fraction.")
    product_energies_per_atom: dict[str, float] = Field(default_factory=dict)
    product_material_ids: dict[str, str] = Field(default_factory=dict, description="Product formula -> MP id.")
    settings: dict = Field(default_factory=dict)
    protocol: str | None = Field(None, description="single-point, relax-positions or relax-cell "
                                                   "(pccd_flows.validation.dft).")
    fingerprint: str | None = Field(None, description="Hash of protocol and settings: a result is reused only "
                                                      "when it matches.")
    judge_engine: str | None = Field(None, description="The force field whose verdict is checked.")
    judge_e_above_hull: float | None = Field(None, description="That force field's E_hull (eV/atom), for parity.")
    seconds: float | None = Field(None, description="Wall time of the candidate's DFT (products cached apart).")
    error: str | None = None


class FollowUpResult(BaseModel):
    dft_engine: str | None = Field(None, description="Band structure (and relaxation unless relax_engine differs): "
                                                     "gpaw, vasp, or none.")
    phonon_engine: str | None = None
    relax_engine: str | None = Field(None, description="What relaxed the structure: the DFT engine, or a force field "
                                                       "(chgnet) where GPAW computed only the bands.")
    relaxed_structure: StructureDict = None
    energy_per_atom: float | None = Field(None, description="Total energy per atom of the relax_engine (eV, "
                                                            "uncorrected).")
    bands: BandGapSummary | None = None
    phonons: PhononSummary | None = None
    dft_stability: DftStabilityResult | None = None
    settings: dict = Field(default_factory=dict, description="Engine settings (GPAW cutoff, k-points, phonons).")
    errors: list[str] = Field(default_factory=list, description="Parts that failed, one line each.")

    def summary(self) -> dict:
        """The flat record `pccd followup --json` prints."""
        return {
            "band_gap": self.bands.band_gap if self.bands else None,
            "is_gap_direct": self.bands.is_gap_direct if self.bands else None,
            "transition": self.bands.transition if self.bands else None,
            "has_imaginary_modes": self.phonons.has_imaginary_modes if self.phonons else None,
            "min_frequency_thz": self.phonons.min_frequency_thz if self.phonons else None,
            "dft_e_above_hull": self.dft_stability.e_above_hull if self.dft_stability else None,
            "engine": self.dft_engine,
            "relax_engine": self.relax_engine,
            "phonon_engine": self.phonon_engine,
        }
