"""Follow-up physics of promising candidates: DFT relaxation, band structure, phonons, and a DFT stability check."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from jobflow import Flow, Maker, OnMissing, Response, job
from maggma.core import Store
from pymatgen.core import Structure

from pccd_flows.followup.gpaw import GpawSettings
from pccd_flows.followup.phonons import (
    PhononSettings,
    phonon_maker,
    summarize_phonons,
    symmetrized_primitive,
    symmetrized_relaxed_structure,
)
from pccd_flows.makers.relax import RELAX_CATEGORY
from pccd_flows.schemas.candidate import CandidateDoc
from pccd_flows.schemas.followup import BandGapSummary, DftStabilityResult, FollowUpResult

DFT_ENGINES = ("gpaw", "vasp")


@dataclass
class FollowUpFlowMaker(Maker):
    """Relaxation -> line-mode band structure, and phonons, for one structure; results go to its CandidateDoc.

    ``dft``: ``gpaw`` (runs here), ``vasp`` (atomate2's MP GGA double relaxation and band structure, for HPC) or
    ``None`` (phonons only). ``phonons``: ``chgnet`` (fast default), ``sevennet``, ``gpaw``, ``vasp`` or ``None``.
    ``relax_with``: ``None`` relaxes with the DFT engine; a force field (``chgnet``, ``sevennet``) relaxes instead
    (cell and positions, symmetry kept, ``force_field_fmax``) and GPAW computes the band structure at that geometry
    - hours of GPAW relaxation saved on a laptop for low-symmetry cells, at the price of a force-field geometry.
    ``products`` given to :meth:`make` (decomposition products with their structures) add the DFT stability check:
    each product relaxed with the same GPAW settings, and the candidate's energy compared with theirs.
    """

    name: str = "pccd follow-up"
    dft: str | None = "gpaw"
    phonons: str | None = "chgnet"
    gpaw_settings: GpawSettings = field(default_factory=GpawSettings)
    phonon_settings: PhononSettings = field(default_factory=PhononSettings)
    relax_with: str | None = None
    # the phonons skip their own pre-relaxation after this one, so it is as tight as that (1e-3 eV/A)
    force_field_fmax: float = 1e-3
    category: str | None = RELAX_CATEGORY
    store: Store | None = None

    def make(self, structure: Structure, candidate_id: str | None = None,
             products: dict[str, tuple[float, Structure]] | None = None) -> Flow:
        if self.dft not in (None, *DFT_ENGINES):
            raise ValueError(f"unknown DFT engine {self.dft!r}: choose gpaw, vasp or none")
        if self.dft is None and self.phonons is None:
            raise ValueError("nothing to follow up: choose a DFT engine, a phonon engine, or both")
        force_field = self.relaxes_with_force_field
        if force_field and products:
            raise ValueError("the DFT stability check compares DFT-relaxed energies: it needs relax_with=None")
        structure = symmetrized_primitive(structure)
        jobs, relaxed, outputs = [], structure, {}
        if self.dft == "gpaw":
            from pccd_flows.followup.gpaw import GpawRelaxMaker, gpaw_band_structure

            if force_field:
                relax = self._force_field_relax_maker().make(structure)
                relax.name = f"{self.relax_with} relax {structure.composition.reduced_formula}"
            else:
                relax = GpawRelaxMaker(settings=self.gpaw_settings).make(structure)
                relax.name = f"gpaw relax {structure.composition.reduced_formula}"
            bands = gpaw_band_structure(relax.output.structure, self.gpaw_settings)
            bands.name = f"gpaw bands {structure.composition.reduced_formula}"
            jobs += [relax, bands]
            relaxed = relax.output.structure
            outputs.update(relaxed=relax.output.structure, energy=relax.output.output.energy,
                           bands=bands.output)
            if products:
                check = self._stability_check(relax, products)
                jobs.append(check)
                outputs["dft_stability"] = check.output
        elif self.dft == "vasp":
            from atomate2.vasp.flows.core import BandStructureMaker
            from atomate2.vasp.flows.mp import MPGGADoubleRelaxMaker

            relax = MPGGADoubleRelaxMaker().make(structure)
            bands = BandStructureMaker(bandstructure_type="line").make(relax.output.structure)
            jobs += [relax, bands]
            relaxed = relax.output.structure
            outputs.update(relaxed=relaxed, energy=relax.output.output.energy, bands=bands.output["line"])
        if self.phonons is not None:
            phonon_jobs, outputs["phonons"] = self._phonons(relaxed, structure.composition.reduced_formula)
            jobs += phonon_jobs
        record = record_follow_up(candidate_id, outputs, self.dft, self.phonons, self.settings_record(), self.store,
                                  relax_engine=(self.relax_with or self.dft) if self.dft else None)
        record.config.on_missing_references = OnMissing.NONE  # a failed phonon run must not lose the band gap
        jobs.append(record)
        flow = Flow(jobs, output=record.output, name=f"{self.name} {structure.composition.reduced_formula}")
        if self.category:
            flow.update_config({"manager_config": {"_category": self.category}})
        return flow

    def _phonons(self, relaxed, formula: str) -> tuple[list, object]:
        """Phonons of a structure relaxed with the phonon engine itself, in the symmetry it has once relaxed.

        A candidate's stored structure may be unrelaxed (strained, noisy); another engine's minimum is not the phonon
        engine's, and a cell symmetrized before relaxing keeps the low symmetry it had (rock-salt MgO in a P1 cell
        gave -1.5 THz). So: relax with the phonon engine (unless that engine relaxed it here already), refine the
        symmetry of the result, and let the phonon flow's own tight, symmetry-keeping relaxation finish it.
        """
        jobs = []
        relaxed_by_phonon_engine = self.dft is not None and self.phonons == (self.relax_with or self.dft)
        # the phonon flow always relaxes: symmetrizing moves atoms by up to symprec
        settings = replace(self.phonon_settings, relax=True)
        if not relaxed_by_phonon_engine:
            pre_relax = phonon_maker(self.phonons, settings, self.gpaw_settings).bulk_relax_maker.make(relaxed)
            pre_relax.name = f"{self.phonons} relax before phonons {formula}"
            jobs.append(pre_relax)
            relaxed = pre_relax.output.structure
        symmetrized = symmetrized_relaxed_structure(relaxed)
        symmetrized.name = f"symmetrize for phonons {formula}"
        phonon_flow = phonon_maker(self.phonons, settings, self.gpaw_settings).make(symmetrized.output)
        phonon_flow.name = f"{self.phonons} phonons {formula}"
        return [*jobs, symmetrized, phonon_flow], phonon_flow.output

    @property
    def relaxes_with_force_field(self) -> bool:
        from pccd_flows.stability.engines import FORCE_FIELDS

        if self.relax_with is None or self.relax_with == self.dft:
            return False
        if self.relax_with not in FORCE_FIELDS:
            raise ValueError(f"relax_with must be the DFT engine or a force field ({', '.join(FORCE_FIELDS)}), "
                             f"not {self.relax_with!r}")
        if self.dft != "gpaw":
            raise ValueError("a force-field relaxation before DFT bands is offered for GPAW only (VASP relaxes on HPC)")
        return True

    def _force_field_relax_maker(self):
        from pccd_flows.stability.engines import RelaxSettings, force_field_maker

        maker = force_field_maker(self.relax_with, RelaxSettings(steps=2000, fmax=self.force_field_fmax))
        maker.fix_symmetry = True
        return maker

    def _stability_check(self, candidate_relax, products: dict[str, tuple[float, Structure]]):
        from pccd_flows.followup.gpaw import GpawRelaxMaker

        product_jobs, product_outputs = [], {}
        for formula, (fraction, product) in products.items():
            relax = GpawRelaxMaker(settings=self.gpaw_settings).make(symmetrized_primitive(product))
            relax.name = f"gpaw relax product {formula}"
            product_jobs.append(relax)
            product_outputs[formula] = {"fraction": fraction, "energy": relax.output.output.energy,
                                        "structure": relax.output.structure}
        check = dft_energy_above_products(
            {"energy": candidate_relax.output.output.energy, "structure": candidate_relax.output.structure},
            product_outputs, self.gpaw_settings)
        check.name = "gpaw stability check"
        check.config.on_missing_references = OnMissing.NONE
        return Flow([*product_jobs, check], output=check.output, name="gpaw stability check")

    def settings_record(self) -> dict:
        return {"gpaw": self.gpaw_settings.model_dump() if self.dft == "gpaw" or self.phonons == "gpaw" else None,
                "phonons": vars(self.phonon_settings) if self.phonons else None,
                "relax": {"engine": self.relax_with, "fmax": self.force_field_fmax} if self.relaxes_with_force_field
                else None}


@job
def dft_energy_above_products(candidate: dict | None, products: dict[str, dict],
                              settings: GpawSettings) -> DftStabilityResult:
    """E_hull = E(candidate)/atom - sum_i x_i E(product_i)/atom, x_i the atom fractions of the decomposition."""
    result = DftStabilityResult(engine="gpaw", settings=settings.model_dump(),
                                decomposition={f: p["fraction"] for f, p in products.items()})
    missing = [f for f, p in products.items() if p.get("energy") is None]
    if candidate is None or candidate.get("energy") is None or missing:
        result.error = f"relaxation failed for {', '.join(missing) or 'the candidate'}"
        return result
    per_atom = {f: p["energy"] / len(_structure(p["structure"])) for f, p in products.items()}
    energy = candidate["energy"] / len(_structure(candidate["structure"]))
    return result.model_copy(update={
        "energy_per_atom": energy, "product_energies_per_atom": per_atom,
        "e_above_hull": energy - sum(products[f]["fraction"] * e for f, e in per_atom.items())})


@job
def record_follow_up(candidate_id: str | None, outputs: dict, dft: str | None, phonons: str | None,
                     settings: dict, store: Store | None = None, relax_engine: str | None = None) -> FollowUpResult:
    """Summarise what finished (a missing part is recorded as an error) and update the candidate's document."""
    relax_engine = relax_engine or dft
    result = FollowUpResult(dft_engine=dft, phonon_engine=phonons, relax_engine=relax_engine, settings=settings)
    if dft is not None:
        if outputs.get("relaxed") is None:
            result.errors.append(f"{relax_engine} relaxation failed")
        else:
            result.relaxed_structure = _structure(outputs["relaxed"]).as_dict()
            result.energy_per_atom = outputs["energy"] / len(_structure(outputs["relaxed"]))
        result.bands = _band_gap(outputs.get("bands"), dft)
        if result.bands is None:
            result.errors.append(f"{dft} band structure failed")
        if outputs.get("dft_stability") is not None:
            result.dft_stability = DftStabilityResult.model_validate(outputs["dft_stability"])
    if phonons is not None:
        if outputs.get("phonons") is None:
            result.errors.append(f"{phonons} phonons failed")
        else:
            result.phonons = summarize_phonons(outputs["phonons"], phonons,
                                               settings["phonons"]["tolerance_thz"])
    if candidate_id is not None:
        from pccd_flows.stores.candidates import CandidateStore

        candidates = CandidateStore(store)
        doc = candidates.get(candidate_id)
        if doc is not None:
            candidates.upsert([doc.with_follow_up(result)])
    return result


def _structure(value) -> Structure:
    return value if isinstance(value, Structure) else Structure.from_dict(value)


def _band_gap(output, engine: str) -> BandGapSummary | None:
    if output is None:
        return None
    if engine == "gpaw":
        return BandGapSummary.model_validate(output if isinstance(output, dict) else output.model_dump())
    task = output  # an atomate2 VASP TaskDoc of the line-mode run
    task_output = task["output"] if isinstance(task, dict) else task.output
    get = task_output.get if isinstance(task_output, dict) else lambda key: getattr(task_output, key, None)
    return BandGapSummary(engine=engine, band_gap=float(get("bandgap") or 0.0), is_gap_direct=get("is_gap_direct"),
                          is_metal=bool(get("is_metal")))


@dataclass
class FollowUpCandidatesMaker(Maker):
    """Attach a :class:`FollowUpFlowMaker` flow to every judged candidate at or under ``max_e_above_hull``.

    With a GPAW follow-up, each candidate's decomposition products on the offline hull are recomputed at the same
    settings (``check_stability``), so its stability is confirmed by DFT and not only by the force field.
    """

    name: str = "follow up candidates"
    follow_up: FollowUpFlowMaker = field(default_factory=FollowUpFlowMaker)
    max_e_above_hull: float = 0.08
    check_stability: bool = True

    @job
    def make(self, candidates: list[CandidateDoc]):
        candidates = [CandidateDoc.model_validate(c) if isinstance(c, dict) else c for c in candidates]
        chosen = [d for d in candidates if d.e_above_hull is not None and d.e_above_hull <= self.max_e_above_hull]
        flows = []
        for doc in chosen:
            products = None
            if self.check_stability and self.follow_up.dft == "gpaw" and not self.follow_up.relaxes_with_force_field:
                from pccd_flows.stability.products import decomposition_products

                products = decomposition_products(doc)
            flows.append(self.follow_up.make(doc.final_structure(), doc.candidate_id, products))
        if not flows:
            return None
        return Response(addition=Flow(flows, name=self.name))
