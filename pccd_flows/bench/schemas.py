"""Documents of the relaxation benchmark (``pccd bench relax --json``)."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, Field

from pccd_flows.bench.candidates import BenchCandidate


class RelaxOutcome(BaseModel):
    """One structure's relaxation by one method."""

    energy_per_atom: float | None = Field(None, description="The potential's final energy, eV/atom (uncorrected).")
    converged: bool | None = Field(None, description="Forces (and cell forces) below fmax at the end.")
    steps: int | None = Field(None, description="Optimizer steps taken, where the method reports them.")
    error: str | None = None


class EnergyAgreement(BaseModel):
    """Final energies of a method against those of one job per candidate, on the structures both relaxed."""

    compared: int = Field(description="Structures with an energy from both methods.")
    max_abs_ev_per_atom: float | None = None
    mean_abs_ev_per_atom: float | None = None


class MethodMeasurement(BaseModel):
    """One method with one engine on all candidates: convergence and cost."""

    method: str = Field(description="per-candidate (a), chunked (b) or torch-sim (c): METHODS.")
    label: str = Field(description="(a), (b) or (c).")
    engine: str
    description: str
    n: int = Field(description="Candidates given to the method.")
    relaxed: int = Field(0, description="Candidates with a final energy.")
    converged: int = 0
    converged_fraction: float | None = None
    cpu_seconds: float | None = Field(None, description="User + system CPU time of this process and its children.")
    wall_seconds: float | None = None
    relaxations_per_cpu_second: float | None = None
    relaxations_per_wall_second: float | None = None
    cpu_ratio_vs_per_candidate: float | None = Field(
        None, description="Relaxations per CPU-second over those of (a) with the same engine.")
    wall_ratio_vs_per_candidate: float | None = None
    energy_agreement: EnergyAgreement | None = Field(None, description="Against (a) with the same engine.")
    mean_steps: float | None = Field(
        None, description="Force evaluations per candidate: atomate2's trajectory length in (a)/(b); in (c) the "
                          "structures of every batched forward pass, summed, over n.")
    outcomes: list[RelaxOutcome] = Field(default_factory=list, description="Per candidate, in candidate order.")
    unavailable: str | None = Field(None, description="Why this method has no numbers here (measured).")


class RelaxBenchReport(BaseModel):
    """Relaxations per CPU-second and convergence of every method, side by side on the same candidates."""

    source: str = Field(description="Where the candidates came from (checkpoint and seed, or a folder of CIFs).")
    candidates: list[BenchCandidate]
    engines: list[str]
    steps: int
    fmax: float
    chunk_size: int
    optimizer: str = Field(description="FIRE with a cell filter in every method (ASE's in (a)/(b), torch-sim's in (c)).")
    torch_threads: int
    cpu_count: int | None
    machine: str
    versions: dict[str, str | None]
    notes: list[str] = Field(default_factory=list)
    cold_start_cpu_seconds: dict[str, float | None] = Field(
        default_factory=dict, description="Per engine: CPU-seconds of a fresh Python process that imports atomate2's "
        "maker and loads the potential, what a job run in a process of its own (a FireWork per queue job) adds: per "
        "candidate in (a), per chunk in (b). Not part of the methods' CPU seconds, which run in one warm process.")
    measurements: list[MethodMeasurement]
    fastest_at_equal_convergence: dict[str, str] = Field(
        default_factory=dict, description="Per engine: the method with the most relaxations per CPU-second among "
                                          "those that converge at least as many candidates as (a).")
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
