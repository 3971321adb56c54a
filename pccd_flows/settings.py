"""All user-tunable settings of pccd-flows, in one place.

Values come from environment variables (prefix ``PCCD_``; the Materials Project key also from ``MP_API_KEY``),
so HPC job scripts and laptops configure the package the same way.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

BUNDLED_DATA_DIR = Path(__file__).parent / "data" / "files"

# "Same crystal" everywhere (codec round trips, uniqueness, novelty): the tolerances of CDVAE and DiffCSP.
MATCHER_TOLERANCES = {"stol": 0.5, "ltol": 0.3, "angle_tol": 10.0}

# The default sampler (every command and maker that generates): 100 DDIM steps with the ancestral sampler's noise
# (eta = 1); measured against deterministic DDIM and the 1000-step DDPM in docs/model-card.md.
DEFAULT_SAMPLER_STEPS = 100
DEFAULT_SAMPLER_ETA = 1.0
# Overlap repulsion of the sampler (pccd_flows.model.repulsion): points of different elements closer than this
# fraction of their covalent radii's sum are pushed apart at steps t <= DEFAULT_REPULSION_BELOW_STEP.
DEFAULT_REPULSION_RATIO = 0.7
DEFAULT_REPULSION_BELOW_STEP = 300
# `pccd benchmark` (pccd_flows.benchmark): every generator's crystals relaxed alike, with the settings of the hull's
# reference phases (FIRE, 300 steps, fmax 0.05 eV/A: pccd_flows.stability.references), N per generator and system.
BENCHMARK_RELAX_STEPS = 300
BENCHMARK_RELAX_FMAX = 0.05
BENCHMARK_N = 10
# `pccd bench relax` (pccd_flows.bench): candidates generated in systems of the 746 study and relaxed by every method;
# steps, fmax and chunk size are the study's (StudySpec), so that it measures the study's relaxations.
BENCH_RELAX_CANDIDATES = 16
BENCH_RELAX_SYSTEMS = ("Mg-O", "Ca-O-Sn", "O-Sr-Ti", "Mg-O-Sc")


class PccdSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PCCD_", extra="ignore")

    data_file: Path = Field(
        BUNDLED_DATA_DIR / "mp_le16sites_le3el.jsonl.gz",
        description="Default training population used by every command that takes --data.",
    )
    elemental_references_file: Path = BUNDLED_DATA_DIR / "mp2020_elemental_reference_entries.json.gz"
    formation_energy_file: Path = BUNDLED_DATA_DIR / "mp_formation_energy_2019.csv.gz"
    band_gap_file: Path = BUNDLED_DATA_DIR / "mp_band_gap_2019.csv.gz"
    mp_api_key: str | None = Field(None, validation_alias=AliasChoices("PCCD_MP_API_KEY", "MP_API_KEY"))
    workers: int = Field(2, ge=1, description="Worker processes for batch work (codec checks, decoding).")
    cache_dir: Path = Field(Path.home() / ".cache" / "pccd-flows", description="Encoded data sets and other caches.")
    store_dir: Path = Field(
        Path("pccd-store"),
        description="Embedded (MontyDB/sqlite) candidate store; relative paths are relative to the working directory.",
    )
    store_file: Path | None = Field(
        None,
        description="JSON/YAML file of maggma store specs ({'candidates': {...}}, e.g. a MongoStore): production.",
    )
    reference_structures_file: Path | None = Field(
        None, description="MP structures for engine reference energies (default: data_file, the bundled <= 16-site set).")
    reference_energy_seed_file: Path | None = Field(
        BUNDLED_DATA_DIR / "reference_energies.jsonl.gz",
        description="Shipped engine energies of reference structures (keys as in the cache), used before computing.")
    reference: str = Field("mp-structures", description="Default reference phases of the convex hull.")
    engine: str = Field("chgnet", description="Default energy engine (relaxes every candidate).")
    # The DFT check of the 746 study (docs/stability.md, docs/stability/dft_validation.json): "stable at 0.1
    # eV/atom" held by GPAW PBE far more often where SevenNet-0 agreed with CHGNet than for CHGNet alone, so the
    # default verdict needs both (the numbers live in those docs, which the DFT run updates)
    confirm_with: str = Field(
        "sevennet", description="Force fields (comma-separated; '' or 'none' for none) that must agree with the "
                                "engine: each relaxes the candidate too and its E_hull counts as the higher one.")
    confirm_from: Literal["generated", "relaxed"] = Field(
        "generated", description="The structure a confirming force field relaxes: the generated one (an "
                                 "independent judge: higher precision against DFT) or the engine's relaxed one "
                                 "(higher recall, 4x fewer steps); measured in docs/stability.md.")
    confirm_below: float = Field(
        0.25, ge=0, description="Confirm only candidates the engine puts at most this far above the hull "
                                "(eV/atom): above it every reported threshold is already decided.")
    relax_chunk_size: int = Field(
        8, ge=1, description="Candidates relaxed per job (one FireWork each), on one loaded potential.")
    checkpoint: Path = Field(
        Path(__file__).parent / "models" / "pccd-default.pt", description="Checkpoint used when none is given."
    )

    @property
    def confirm_engines(self) -> list[str]:
        """``confirm_with`` as a list (empty for none)."""
        return parse_engines(self.confirm_with)


def parse_engines(value: str | list[str] | None) -> list[str]:
    """Engines given as ``a,b`` (or a list of them); ``''``/``none`` for none."""
    items = value if isinstance(value, list) else [value or ""]
    names = [name.strip().lower() for item in items for name in item.split(",")]
    return [name for name in dict.fromkeys(names) if name and name != "none"]


@lru_cache
def get_settings() -> PccdSettings:
    return PccdSettings()
