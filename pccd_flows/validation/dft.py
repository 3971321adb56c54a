"""DFT check of the judge's stability verdicts: GPAW PBE energies of a candidate and of every phase of its
decomposition, computed with one protocol and one set of settings, give a DFT energy above the same products.

Why the reference phases go through the candidate's protocol: GPAW PBE single points (600 eV) put two study HfO2
candidates 8-10 meV/atom *below* MP's monoclinic HfO2 taken at MP's geometry, although one of them is that very
structure after a CHGNet relaxation (3% larger volume). A candidate at the force field's geometry is only comparable
with references at the same force field's geometry (or with both relaxed by DFT).

Protocols (measured against each other in docs/stability.md):

- ``single-point``: GPAW at the force-field geometry (the judge's relaxed candidate; the MP reference structure
  relaxed by the same force field with the reference-energy settings);
- ``relax-positions``: then atoms relaxed by GPAW in that cell;
- ``relax-cell``: then atoms and cell relaxed by GPAW (>= 800 eV: lower cutoffs leave a Pulay stress).

The DFT E_hull is measured against the judge's decomposition products only: the true DFT hull at the composition can
only lie lower, so this E_hull is a lower bound of the DFT E_hull against all phases.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

from pydantic import BaseModel, Field
from pymatgen.core import Structure

from pccd_flows.schemas.candidate import CandidateDoc
from pccd_flows.schemas.followup import DftStabilityResult
from pccd_flows.settings import PccdSettings, get_settings
from pccd_flows.stability.engines import error_line

logger = logging.getLogger(__name__)

Protocol = Literal["single-point", "relax-positions", "relax-cell"]
PROTOCOLS: tuple[str, ...] = ("single-point", "relax-positions", "relax-cell")

# MP runs GGA+U for oxides/fluorides of these: plain PBE is MP's functional only without them. f-electron
# lanthanides are unreliable in plain PBE (self-interaction puts the 4f at the Fermi level).
PLUS_U_ELEMENTS = frozenset({"Co", "Cr", "Fe", "Mn", "Mo", "Ni", "V", "W"})
F_ELECTRON_ELEMENTS = frozenset({"Ce", "Nd", "Sm", "Gd", "Pr", "Pm", "Eu", "Tb", "Dy", "Ho", "Er", "Tm", "Yb"})

# the stratified sample: judged stable at STABLE_BELOW, and the band just above it where verdicts may flip
STABLE_BELOW = 0.1
NEAR_ABOVE = 0.3


class DftValidationError(ValueError):
    """A validation that cannot start (bad protocol, nothing to validate)."""


class DftValidationSettings(BaseModel, frozen=True):
    """Every number of one DFT validation; its fingerprint decides whether a stored result is reused."""

    protocol: Protocol = "single-point"
    ecut: float = Field(500.0, description="Plane-wave cutoff (eV); relax-cell raises it to >= 800.")
    kpoint_density: float = Field(2.5, description="k-points per reciprocal A (ASE), Gamma-centred.")
    smearing: float = Field(0.05, description="Fermi-Dirac width (eV).")
    xc: str = "PBE"
    # GPAW's defaults (eigenstates 4e-8, density 1e-4) are set for forces; these gave the same energy to 1e-5
    # eV/atom on a 5-atom SrZrO3 candidate, 15% faster
    convergence: dict[str, float] = Field(default_factory=lambda: {"eigenstates": 1e-6, "density": 1e-3},
                                          description="GPAW SCF convergence criteria.")
    dft_fmax: float = Field(0.05, description="Force threshold of the DFT relaxations (eV/A).")
    dft_steps: int = Field(60, description="Most optimizer steps of a DFT relaxation.")
    reference_steps: int = Field(300, description="Force-field relaxation of the reference structures: the "
                                                  "settings of the hull's reference energies.")
    reference_fmax: float = 0.05

    def effective_ecut(self) -> float:
        return max(self.ecut, 800.0) if self.protocol == "relax-cell" else self.ecut

    def gpaw_kwargs(self) -> dict:
        return {"xc": self.xc, "ecut": self.effective_ecut(), "kpoint_density": self.kpoint_density,
                "smearing": self.smearing, "convergence": dict(self.convergence)}

    def fingerprint(self) -> str:
        payload = self.model_dump(mode="json") | {"ecut": self.effective_ecut()}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def plain_pbe_chemistry(chemsys: str | Iterable[str]) -> bool:
    """True where plain PBE is MP's own functional (no +U element, no f-electron lanthanide)."""
    elements = set(chemsys.split("-") if isinstance(chemsys, str) else chemsys)
    return not elements & (PLUS_U_ELEMENTS | F_ELECTRON_ELEMENTS)


def eligible(doc: CandidateDoc, judge_engine: str | None = None) -> bool:
    """A relaxed, judged candidate of a plain-PBE chemistry (judged by ``judge_engine`` when given)."""
    return (doc.stability is not None and doc.relaxation is not None and doc.relaxation.structure is not None
            and doc.relaxation.error is None and plain_pbe_chemistry(doc.chemsys)
            and (judge_engine is None or doc.own_stability.engine == judge_engine))


def sampled_e_above_hull(doc: CandidateDoc) -> float | None:
    """What the sample is stratified by: the verdict of the force field that relaxed the candidate, not combined
    with a confirmation (a store judged again with a second force field keeps its sample and its strata)."""
    own = doc.own_stability
    return own.e_above_hull if own is not None else None


def stratified_sample(docs: Sequence[CandidateDoc], n: int, seed: int = 0, stable_below: float = STABLE_BELOW,
                      near_above: float = NEAR_ABOVE) -> list[CandidateDoc]:
    """Half judged stable (E_hull <= stable_below), half in (stable_below, near_above], seeded, interleaved.

    Interleaving keeps any prefix of the list balanced, so a run stopped early is still a stratified sample. A
    stratum with too few candidates gives its share to the other.
    """
    if n < 1:
        raise DftValidationError("the sample needs at least one candidate")
    ordered = sorted(docs, key=lambda d: d.candidate_id)  # the store's order must not change the sample
    value = {d.candidate_id: sampled_e_above_hull(d) for d in ordered}
    stable = [d for d in ordered if value[d.candidate_id] is not None and value[d.candidate_id] <= stable_below]
    near = [d for d in ordered if value[d.candidate_id] is not None
            and stable_below < value[d.candidate_id] <= near_above]
    rng = random.Random(seed)
    rng.shuffle(stable)
    rng.shuffle(near)
    n_stable = min(len(stable), max(n - len(near), (n + 1) // 2))
    n_near = min(len(near), n - n_stable)
    picked_stable, picked_near = stable[:n_stable], near[:n_near]
    interleaved = []
    for i in range(max(n_stable, n_near)):
        interleaved += picked_stable[i:i + 1] + picked_near[i:i + 1]
    return interleaved


class GpawEnergy(BaseModel):
    energy_per_atom: float
    structure: dict
    seconds: float
    steps: int = 0


def gpaw_energy(structure: Structure, settings: DftValidationSettings) -> GpawEnergy:
    """GPAW PBE energy per atom (eV, uncorrected) of a structure under the protocol of ``settings``."""
    from ase.constraints import FixSymmetry
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS
    from pymatgen.io.ase import AseAtomsAdaptor

    from pccd_flows.followup.gpaw import gpaw_calculator, with_initial_magmoms

    started = time.perf_counter()
    atoms = AseAtomsAdaptor.get_atoms(with_initial_magmoms(structure))
    if "initial_magmoms" not in atoms.arrays:
        atoms.set_initial_magnetic_moments(None)
    atoms.calc = gpaw_calculator(**settings.gpaw_kwargs(), txt=None)
    steps = 0
    if settings.protocol != "single-point":
        # symmetry kept: the k-point reduction is most of GPAW's speed, and the verdict is about this crystal
        atoms.set_constraint(FixSymmetry(atoms, symprec=1e-3))
        target = FrechetCellFilter(atoms) if settings.protocol == "relax-cell" else atoms
        optimizer = BFGS(target, logfile=None)
        optimizer.run(fmax=settings.dft_fmax, steps=settings.dft_steps)
        steps = optimizer.nsteps
    energy = float(atoms.get_potential_energy())
    atoms.set_constraint()
    relaxed = AseAtomsAdaptor.get_structure(atoms)
    if "magmom" in relaxed.site_properties:
        relaxed.remove_site_property("magmom")
    return GpawEnergy(energy_per_atom=energy / len(atoms), structure=relaxed.as_dict(),
                      seconds=time.perf_counter() - started, steps=steps)


class ReferenceDftCache:
    """DFT energies of reference phases, keyed by protocol fingerprint, force field and MP id: computed once per
    store and shared by every candidate (and every process) that decomposes into them."""

    def __init__(self, settings: PccdSettings | None = None):
        from pccd_flows.stores.config import dft_reference_store

        self.store = dft_reference_store(settings or get_settings())

    @staticmethod
    def key(fingerprint: str, engine: str, material_id: str) -> str:
        return f"dft:{fingerprint}:{engine}:{material_id}"

    def get(self, key: str) -> dict | None:
        from pccd_flows.stores.config import open_store

        with open_store(self.store) as store:
            row = store.query_one({"key": key})
        return {k: v for k, v in row.items() if k != "_id"} if row else None

    def put(self, row: dict) -> None:
        from pccd_flows.stores.config import open_store

        with open_store(self.store) as store:
            store.update([row], key="key")


def reference_dft_energy(formula: str, material_id: str, structure: Structure, engine: str,
                         settings: DftValidationSettings, cache: ReferenceDftCache) -> float:
    """DFT energy per atom of a reference phase at the judge's geometry (relaxed by the same force field with the
    hull's reference settings), then the protocol; cached."""
    from pccd_flows.stability.engines import RelaxSettings, run_force_field

    key = cache.key(settings.fingerprint(), engine, material_id)
    row = cache.get(key)
    if row is not None:
        if row.get("error"):
            raise RuntimeError(f"reference {formula} ({material_id}): {row['error']}")
        return row["energy_per_atom"]
    relax = RelaxSettings(steps=settings.reference_steps, fmax=settings.reference_fmax)
    outcome = run_force_field([structure], engine, relax)[0]
    if not outcome.ok:
        raise RuntimeError(f"{engine} relaxation of reference {formula} ({material_id}) failed: {outcome.error}")
    row = {"key": key, "material_id": material_id, "formula": formula, "engine": engine, "kind": "dft-reference",
           "protocol": settings.protocol, "settings": settings.model_dump(mode="json")}
    try:
        result = gpaw_energy(outcome.task_doc.output.structure, settings)
    except Exception as exc:
        cache.put(row | {"error": error_line(exc)})
        raise RuntimeError(f"reference {formula} ({material_id}): {error_line(exc)}") from exc
    cache.put(row | {"energy_per_atom": result.energy_per_atom, "seconds": result.seconds, "nsites": len(structure)})
    return result.energy_per_atom


def check_candidate(doc: CandidateDoc, settings: DftValidationSettings | None = None,
                    cache: ReferenceDftCache | None = None, pccd_settings: PccdSettings | None = None
                    ) -> DftStabilityResult:
    """DFT E_hull of one judged candidate against its decomposition products; failures are recorded, not raised.

    Parameters
    ----------
    doc
        A candidate with a relaxation and a stability result (the judge's verdict).
    settings
        Protocol and GPAW settings, shared by the candidate and its products.
    cache
        Where the products' DFT energies are kept between candidates and runs.

    Returns
    -------
    DftStabilityResult
        ``e_above_hull`` (eV/atom) with the energies that make it, or ``error`` naming what failed.
    """
    from pccd_flows.stability.products import decomposition_phases

    settings = settings or DftValidationSettings()
    cache = cache or ReferenceDftCache(pccd_settings)
    if doc.stability is None or doc.relaxation is None or not doc.relaxation.structure:
        raise DftValidationError(f"{doc.candidate_id} has no relaxed structure with a verdict to check")
    own = doc.own_stability  # the relaxing force field's: the strata; the others' are in judgements
    engine = own.engine
    result = DftStabilityResult(
        engine="gpaw", protocol=settings.protocol, fingerprint=settings.fingerprint(),
        settings=settings.model_dump(mode="json"), judge_engine=engine,
        judge_e_above_hull=own.e_above_hull, decomposition=dict(doc.stability.decomposition))
    started = time.perf_counter()
    try:
        products = decomposition_phases(doc, pccd_settings)
        candidate = gpaw_energy(doc.final_structure(), settings)
        energies = {formula: reference_dft_energy(formula, p.material_id, p.structure, engine, settings, cache)
                    for formula, p in products.items()}
    except Exception as exc:  # noqa: BLE001 - a failed SCF or reference is this candidate's result; the batch goes on
        return result.model_copy(update={"error": error_line(exc), "seconds": time.perf_counter() - started})
    hull = sum(products[f].fraction * e for f, e in energies.items())
    return result.model_copy(update={
        "energy_per_atom": candidate.energy_per_atom, "product_energies_per_atom": energies,
        "product_material_ids": {f: p.material_id for f, p in products.items()},
        "e_above_hull": candidate.energy_per_atom - hull, "seconds": time.perf_counter() - started})


def is_done(doc: CandidateDoc, settings: DftValidationSettings, retry_failed: bool = False) -> bool:
    check = doc.dft_check
    if check is None or check.fingerprint != settings.fingerprint():
        return False
    return not (retry_failed and check.error)


def validate_candidates(candidate_ids: Sequence[str], settings: DftValidationSettings | None = None,
                        store=None, retry_failed: bool = False,
                        progress: Callable[[int], None] | None = None,
                        on_result: Callable[[CandidateDoc], None] | None = None) -> list[CandidateDoc]:
    """Check each candidate and store its result at once, so an interrupted run resumes where it stopped.

    Candidates already checked with the same settings are skipped (failed ones too, unless ``retry_failed``).
    """
    from pccd_flows.stores.candidates import CandidateStore

    settings = settings or DftValidationSettings()
    candidates = CandidateStore(store)
    cache = ReferenceDftCache()
    done = []
    for candidate_id in candidate_ids:
        doc = candidates.get(candidate_id)
        if doc is None:
            raise DftValidationError(f"no candidate {candidate_id} in the store")
        if not is_done(doc, settings, retry_failed):
            doc = doc.model_copy(update={"dft_check": check_candidate(doc, settings, cache)})
            candidates.patch({candidate_id: {"dft_check": doc.dft_check}})
            if on_result:
                on_result(doc)
        done.append(doc)
        if progress:
            progress(1)
    return done


def select_candidates(n: int, seed: int = 0, judge_engine: str | None = None, store=None,
                      candidate_ids: Sequence[str] | None = None, shard: tuple[int, int] = (0, 1),
                      study: str | None = None) -> list[str]:
    """The ids to validate: the given ones, else the seeded stratified sample of eligible judged candidates (of
    ``study`` only, when given: candidates added to the store later, e.g. a case study's, must not change it)."""
    from pccd_flows.stores.candidates import CandidateStore

    candidates = CandidateStore(store)
    if candidate_ids:
        missing = [c for c in candidate_ids if candidates.get(c) is None]
        if missing:
            raise DftValidationError(f"no candidate {missing[0]} in the store")
        ids = list(candidate_ids)
    else:
        criteria = {"e_above_hull": {"$ne": None}, **({"study": study} if study else {})}
        docs = [d for d in candidates.find(criteria) if eligible(d, judge_engine)]
        if not docs:
            raise DftValidationError("the store has no relaxed, judged candidate of a plain-PBE chemistry")
        ids = [d.candidate_id for d in stratified_sample(docs, n, seed)]
    index, count = shard
    # by pairs: the sample alternates stable / near-hull, so every shard keeps both strata
    return [c for k, c in enumerate(ids) if (k // 2) % count == index]
