"""``CandidateDoc``: everything known about one generated crystal, from its provenance to its stability."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

from pydantic import BaseModel, Field
from pymatgen.core import Structure

from pccd_flows.schemas.followup import DftStabilityResult, FollowUpResult
from pccd_flows.schemas.provenance import GeneratedCrystal, Provenance
from pccd_flows.schemas.structure import StructureDict

# the paper's screening thresholds (0.25, 0.08 eV/atom) and MatterGen's (0.0)
STABILITY_THRESHOLDS = (0.25, 0.08, 0.0)


def _now() -> datetime:
    return datetime.now(UTC)


def candidate_id(structure: dict | None, provenance: Provenance) -> str:
    """Stable id: the same crystal from the same checkpoint, seed, index and settings always gets the same id."""
    record = provenance.model_dump(mode="json", exclude={"checkpoint_path"})
    if record["conditions"].get("composition") is None:  # ids from before composition targeting stay the same
        record["conditions"].pop("composition", None)
    payload = json.dumps({"provenance": record, "structure": _rounded_structure(structure)}, sort_keys=True)
    return "pccd-" + hashlib.sha256(payload.encode()).hexdigest()[:16]


def _rounded_structure(structure: dict | None):
    if structure is None:
        return None
    s = Structure.from_dict(structure)
    return {"lattice": [round(x, 4) for x in s.lattice.parameters],
            "sites": sorted((site.specie.symbol, *(round(float(c) % 1.0, 4) for c in site.frac_coords)) for site in s)}


# a study's name also names its progress record and LaunchPad folder in the store directory: no path separator,
# no leading dot
STUDY_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"


class PrefilterResult(BaseModel):
    structurally_valid: bool | None = None
    compositionally_valid: bool | None = Field(None, description="SMACT charge neutrality + electronegativity.")
    closest_covalent_ratio: float | None = Field(
        None, description="Shortest interatomic distance over the sum of the two atoms' covalent radii.")
    icsd_charge_balanced: bool | None = Field(
        None, description="Charge-neutral with oxidation states seen in the ICSD (pymatgen oxi_state_guesses).")
    element_match: bool | None = None
    unique: bool | None = Field(None, description="No earlier candidate of the batch or the store is the same crystal.")
    duplicate_of: str | None = None
    novel: bool | None = Field(None, description="No MP structure matches (StructureMatcher).")
    matched_mp_id: str | None = None
    passed: bool | None = None
    reject_reason: str | None = None


# what a relaxation's outcome depends on besides the structure: a stored relaxation is reused only if all agree
RELAXATION_SETTINGS = ("engine", "model", "optimizer", "steps", "fmax")


class RelaxationResult(BaseModel):
    engine: str
    model: str | None = Field(None, description="The potential's model (e.g. 'CHGNet 0.3.0'); the VASP flow for VASP.")
    optimizer: str | None = Field(None, description="ASE optimizer of a force-field relaxation (e.g. 'FIRE').")
    steps: int | None = Field(None, description="Most optimizer steps allowed.")
    fmax: float | None = Field(None, description="Force convergence criterion (eV/A).")
    structure: StructureDict = Field(None, description="Relaxed structure (pymatgen dict).")
    energy_per_atom: float | None = Field(None, description="eV/atom on the MP2020 scale (corrected where needed).")
    uncorrected_energy_per_atom: float | None = None
    converged: bool | None = None
    task_uuid: str | None = Field(None, description="jobflow uuid of the relaxation job, to find its task document.")
    error: str | None = None

    def settings(self) -> dict:
        """The settings this relaxation ran with (:data:`RELAXATION_SETTINGS`); None where not recorded."""
        return {name: getattr(self, name) for name in RELAXATION_SETTINGS}

    def ran_with(self, settings: dict) -> bool:
        """Whether this relaxation ran with exactly ``settings``; one recorded before the settings were (None)
        never did, so a re-run relaxes it again rather than trust settings nobody wrote down."""
        return self.settings() == {name: settings.get(name) for name in RELAXATION_SETTINGS}


class StabilityResult(BaseModel):
    e_above_hull: float = Field(description="eV/atom above the reference convex hull (negative: below it).")
    formation_energy_per_atom: float | None = None
    decomposition: dict[str, float] = Field(default_factory=dict, description="Hull phases (formula -> fraction).")
    reference: str = Field(description="Reference set name.")
    reference_fingerprint: str = Field(description="Hash of the reference entries, to recompute when they change.")
    engine: str
    model: str | None = Field(None, description="The engine's model (e.g. 7net-0), where it has a choice.")
    stable_at: dict[str, bool] = Field(default_factory=dict, description="e_above_hull <= threshold, per threshold.")
    relaxed_from: str | None = Field(None, description="A confirming force field's start: 'relaxed' (the first "
                                                       "engine's relaxed structure); None: the generated one.")

    @property
    def start(self) -> str:
        """What a confirming force field relaxed: ``generated`` (also for verdicts recorded before it was said)
        or ``relaxed``."""
        return self.relaxed_from or "generated"

    @classmethod
    def from_hull(cls, e_above_hull: float, **kwargs) -> StabilityResult:
        stable_at = {f"{t:g}": e_above_hull <= t + 1e-9 for t in STABILITY_THRESHOLDS}
        return cls(e_above_hull=e_above_hull, stable_at=stable_at, **kwargs)


class RelaxedNoveltyResult(BaseModel):
    """Novelty and uniqueness judged again on the relaxed structure: a generated crystal that is new can relax onto
    a known one (MP's anatase TiO2) or onto another candidate's crystal."""

    novel: bool | None = Field(None, description="No MP structure matches the relaxed structure (StructureMatcher).")
    matched_mp_id: str | None = None
    unique: bool | None = Field(None, description="No lower-energy candidate of the same run relaxed onto the "
                                                  "same crystal.")
    duplicate_of: str | None = None
    source: str | None = Field(None, description="The known-structure file novelty was judged against.")


class CandidateDoc(BaseModel):
    candidate_id: str
    formula: str | None
    chemsys: str = Field(description="Requested elements, sorted and joined by '-' (as MP).")
    nsites: int | None = None
    structure: StructureDict = Field(None, description="Generated structure (pymatgen dict).")
    provenance: Provenance
    decode_error: str | None = None
    study: str | None = Field(None, description="The study run that generated it (e.g. paper-746), if any.")
    study_batch: int | None = None
    prefilter: PrefilterResult = Field(default_factory=PrefilterResult)
    relaxation: RelaxationResult | None = None
    stability: StabilityResult | None = None
    e_above_hull: float | None = Field(None, description="Copy of stability.e_above_hull, for flat queries.")
    judgements: dict[str, StabilityResult] = Field(
        default_factory=dict, description="E_hull by other judges (key 'engine:model'), for the DFT validation.")
    dft_check: DftStabilityResult | None = Field(
        None, description="DFT E_hull of the relaxed candidate against its decomposition products "
                          "(`pccd validate dft`).")
    relaxed_novelty: RelaxedNoveltyResult | None = Field(
        None, description="Novelty and uniqueness of the relaxed structure: what queries, reports and S.U.N. use.")
    follow_up: FollowUpResult | None = Field(None, description="DFT relaxation, band structure, phonons.")
    band_gap: float | None = Field(None, description="Copy of follow_up.bands.band_gap (eV), for flat queries.")
    phonon_stable: bool | None = Field(None, description="Copy of follow_up: no imaginary modes.")
    last_updated: datetime = Field(default_factory=_now)

    @classmethod
    def from_generated(cls, crystal: GeneratedCrystal) -> CandidateDoc:
        structure = crystal.to_structure()
        return cls(
            candidate_id=candidate_id(crystal.structure, crystal.provenance),
            formula=crystal.formula,
            chemsys="-".join(sorted(crystal.provenance.conditions.elements)),
            nsites=len(structure) if structure is not None else None,
            structure=crystal.structure,
            provenance=crystal.provenance,
            decode_error=crystal.error,
        )

    def generated_structure(self) -> Structure | None:
        return Structure.from_dict(self.structure) if self.structure else None

    def final_structure(self) -> Structure | None:
        """The relaxed structure where there is one, else the generated one."""
        if self.relaxation is not None and self.relaxation.structure:
            return Structure.from_dict(self.relaxation.structure)
        return self.generated_structure()

    @property
    def novel(self) -> bool | None:
        """Novel against MP: judged on the relaxed structure where it was, else on the generated one."""
        if self.relaxed_novelty is not None and self.relaxed_novelty.novel is not None:
            return self.relaxed_novelty.novel
        return self.prefilter.novel

    @property
    def matched_mp_id(self) -> str | None:
        """The MP crystal that the relaxed (else the generated) structure matches."""
        if self.relaxed_novelty is not None and self.relaxed_novelty.novel is not None:
            return self.relaxed_novelty.matched_mp_id
        return self.prefilter.matched_mp_id

    @property
    def own_stability(self) -> StabilityResult | None:
        """The verdict of the force field that relaxed the candidate alone; ``stability`` itself where it is not
        combined with a confirming force field's (``stability.engine`` like ``chgnet+sevennet``)."""
        if (self.stability is not None and "+" in self.stability.engine and self.relaxation is not None
                and self.relaxation.engine in self.judgements):
            return self.judgements[self.relaxation.engine]
        return self.stability

    def with_stability(self, stability: StabilityResult) -> CandidateDoc:
        # the relaxed structure is unchanged (a new relaxation drops relaxed_novelty itself: makers/relax.py), so
        # its novelty verdict still holds
        return self.model_copy(update={"stability": stability, "e_above_hull": stability.e_above_hull,
                                       "last_updated": _now()})

    def with_follow_up(self, follow_up: FollowUpResult) -> CandidateDoc:
        return self.model_copy(update={
            "follow_up": follow_up,
            "band_gap": follow_up.bands.band_gap if follow_up.bands else self.band_gap,
            "phonon_stable": (not follow_up.phonons.has_imaginary_modes) if follow_up.phonons else self.phonon_stable,
            "last_updated": _now()})
