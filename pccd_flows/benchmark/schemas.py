"""Records of `pccd benchmark`: one document per generated crystal, the metrics of each generator, the report."""

from __future__ import annotations

from pydantic import BaseModel, Field
from pymatgen.core import Structure

GENERATORS = ("pccd", "random_search", "substitution")
# not run unless asked for (--generator), PCCD's yield levers (issue 25): keeping only charge-balanced compositions,
# and generate-and-rank (the novel samples of 4x as many lowest in E_hull, as generated or after a short relaxation)
OPTIONAL_GENERATORS = ("pccd_charge_balanced", "pccd_ranked", "pccd_prerelaxed")


class BenchmarkCandidate(BaseModel):
    """One crystal of one generator, from generation to the judge's verdict; a failure keeps its row."""

    generator: str
    chemsys: str
    index: int = Field(description="Position in the system's run (with --held-out: among the drawn crystals of "
                                   "the system); random_search and substitution take the cell composition of "
                                   "PCCD's crystal of the same index.")
    run_key: str = Field("", description="Fingerprint of the run settings; rows of other settings are not reused.")
    formula: str | None = None
    cell_composition: dict[str, int] | None = None
    structure: dict | None = Field(None, description="The generated structure (pymatgen as_dict).")
    origin: dict = Field(default_factory=dict, description="How it was made: PCCD's seed and index (with --held-out "
                                                           "also held_out_material_id and the requested "
                                                           "composition), PyXtal's space group, the substitution's "
                                                           "prototype and probability.")
    generation_error: str | None = None
    generation_cpu_seconds: float = 0.0
    judged: bool = False
    e_above_hull: float | None = None
    energy_per_atom: float | None = None
    relaxed_structure: dict | None = None
    relax_error: str | None = None
    relax_cpu_seconds: float = 0.0
    reference_fingerprint: str | None = Field(None, description="The hull's reference set it was judged against.")
    rmsd_to_relaxed: float | None = Field(None, description="MatterGen's RMSD (A) between generated and relaxed.")
    novel: bool | None = None
    matched_mp_id: str | None = None
    unique: bool | None = None
    sun: bool | None = None

    @property
    def key(self) -> str:
        return f"{self.generator}:{self.chemsys}:{self.index}"

    @property
    def error(self) -> str | None:
        return self.generation_error or self.relax_error

    def generated_structure(self) -> Structure | None:
        return Structure.from_dict(self.structure) if self.structure is not None else None

    def final_structure(self) -> Structure | None:
        return Structure.from_dict(self.relaxed_structure) if self.relaxed_structure is not None else None


class GeneratorMetrics(BaseModel):
    """MatterGen-style metrics of one generator; every rate is a fraction of ``n`` (failures count as misses)."""

    n: int = Field(description="Crystals asked for (PCCD: N per system, or one per held-out crystal drawn; the "
                               "baselines: one per PCCD composition).")
    n_generated: int
    n_judged: int = Field(description="Relaxed and placed on the hull.")
    n_failed: int
    failures: dict[str, int] = Field(default_factory=dict, description="Failures by kind (first words of the error).")
    stable_rate: float | None = Field(description="E_hull <= 0.1 eV/atom.")
    on_hull_rate: float | None = Field(description="E_hull <= 0 (to 1e-6 eV/atom).")
    novel_rate: float | None = Field(None, description="Relaxed structure matches no known (MP) crystal.")
    sun_rate: float | None = Field(description="Stable, novel against MP and unique within the generator's run.")
    n_sun: int
    median_e_above_hull: float | None
    rmsd_to_relaxed: float | None = Field(description="Mean RMSD (A) generated -> relaxed, MatterGen's definition.")
    cpu_seconds: float = Field(description="CPU seconds of generating and relaxing all of them (hull references, "
                                           "shared by all generators, not counted).")
    cpu_seconds_per_sun: float | None


class BenchmarkReport(BaseModel):
    systems: list[str] = Field(description="The chemical systems (with --held-out: the drawn crystals' distinct "
                                           "ones).")
    judge: dict
    generators: dict[str, GeneratorMetrics]
    per_system: dict[str, dict[str, GeneratorMetrics]] = Field(
        default_factory=dict, description="Metrics per system and generator; empty with --held-out (hundreds of "
                                          "systems of a few crystals each).")
    settings: dict = Field(default_factory=dict)
    wall_seconds: float | None = None
