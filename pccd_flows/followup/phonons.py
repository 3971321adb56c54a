"""Harmonic phonons through atomate2's PhononMaker, and a dynamical-stability verdict that survives numerical noise.

atomate2 flags imaginary modes at 1e-5 THz, which calls MgO and Si unstable: finite displacements, a finite
supercell and a force field's (or an SCF's) noise leave the acoustic branches slightly below zero near Gamma. A real
instability (a soft mode, a wrong structure) gives frequencies of -0.5 to -10 THz. We call a structure dynamically
unstable when any frequency on the band path or the DOS mesh is below ``-IMAGINARY_TOLERANCE_THZ`` (see
docs/followup.md for the measurements behind the number).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from jobflow import job

from pccd_flows.schemas.followup import IMAGINARY_TOLERANCE_THZ, PhononSummary

PHONON_ENGINES = ("chgnet", "sevennet", "gpaw", "vasp")


def has_imaginary_modes(frequencies: np.ndarray, tolerance_thz: float = IMAGINARY_TOLERANCE_THZ) -> bool:
    return bool(np.min(frequencies) < -tolerance_thz)


def summarize_phonons(doc, engine: str, tolerance_thz: float = IMAGINARY_TOLERANCE_THZ,
                      mesh: tuple[int, int, int] = (16, 16, 16)) -> PhononSummary:
    """``doc``: atomate2's PhononBSDOSDoc (or its dict), with its force constants.

    The verdict is taken on force constants with the acoustic sum rule and the crystal's symmetry imposed (phonopy's
    ``symmetrize_force_constants``), on atomate2's band path and a Gamma-centred mesh: what remains below the
    tolerance is physics, not translational noise.
    """
    from atomate2.common.schemas.phonons import PhononBSDOSDoc

    doc = doc if isinstance(doc, PhononBSDOSDoc) else PhononBSDOSDoc.model_validate(doc)
    qpoints = np.array([q.frac_coords for q in doc.phonon_bandstructure.qpoints])
    if doc.force_constants is not None:
        phonon = _phonopy_with_sum_rule(doc)
        phonon.run_qpoints(qpoints)
        path = np.asarray(phonon.get_qpoints_dict()["frequencies"]).T
        phonon.run_mesh(list(mesh), is_gamma_center=True)
        mesh_min = float(np.min(phonon.get_mesh_dict()["frequencies"]))
    else:  # no force constants stored: atomate2's own frequencies, without the sum rule
        path, mesh_min = np.asarray(doc.phonon_bandstructure.bands), float("inf")
    away = np.linalg.norm(qpoints, axis=1) > 1e-6
    lowest = min(float(path.min()), mesh_min)
    return PhononSummary(
        engine=engine,
        has_imaginary_modes=lowest < -tolerance_thz,
        min_frequency_thz=lowest,
        min_frequency_away_from_gamma_thz=float(path[:, away].min()) if away.any() else None,
        tolerance_thz=tolerance_thz,
        supercell_matrix=np.asarray(doc.supercell_matrix).astype(int).tolist() if doc.supercell_matrix else None,
        n_displacements=len(doc.uuids.displacements_uuids or []) if doc.uuids else None,
    )


def _phonopy_with_sum_rule(doc):
    from phonopy import Phonopy
    from pymatgen.io.phonopy import get_phonopy_structure

    phonon = Phonopy(get_phonopy_structure(doc.structure), supercell_matrix=np.asarray(doc.supercell_matrix),
                     primitive_matrix=np.asarray(doc.primitive_matrix) if doc.primitive_matrix else None)
    phonon.force_constants = np.asarray(doc.force_constants.force_constants)
    phonon.symmetrize_force_constants()
    return phonon


@dataclass(frozen=True)
class PhononSettings:
    """Supercells of at least ``min_length`` A; force fields afford 12 A, DFT here 7 A (VASP on HPC: atomate2's)."""

    min_length: float | None = None
    displacement: float = 0.01
    tolerance_thz: float = IMAGINARY_TOLERANCE_THZ
    relax: bool = True

    def resolved_min_length(self, engine: str) -> float:
        if self.min_length is not None:
            return self.min_length
        return {"gpaw": 7.0, "vasp": 20.0}.get(engine, 12.0)


def symmetrized_primitive(structure, symprec: float = 0.01):
    """The standard primitive cell with symmetry refined at ``symprec`` (A): few displacements, standard paths,
    and no spurious symmetry breaking from the relaxation's noise (phonopy works at a far tighter tolerance)."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    return SpacegroupAnalyzer(structure, symprec=symprec).get_primitive_standard_structure()


@job
def symmetrized_relaxed_structure(structure, symprec: float = 0.01):
    """:func:`symmetrized_primitive` of a relaxed structure, as a job (the structure is another job's output).

    Parameters
    ----------
    structure : Structure or dict
        The structure a relaxation ended with.
    symprec : float
        Symmetry tolerance (A).

    Returns
    -------
    Structure
        Its standard primitive cell with the symmetry refined: a strained or noisy input has only the symmetry it
        finds after relaxing (rock salt from a strained P1 MgO cell), and phonons in a P1 cell of a cubic crystal
        come out with spurious imaginary branches (-1.5 THz for MgO).
    """
    from pymatgen.core import Structure

    structure = structure if isinstance(structure, Structure) else Structure.from_dict(structure)
    return symmetrized_primitive(structure, symprec)


def phonon_maker(engine: str = "chgnet", settings: PhononSettings | None = None, dft_settings=None):
    """atomate2's PhononMaker for the engine: force fields, VASP, or GPAW through the ASE code path."""
    settings = settings or PhononSettings()
    common = {
        "min_length": settings.resolved_min_length(engine),
        "displacement": settings.displacement,
        "store_force_constants": True,  # the verdict imposes the sum rule on them
        "generate_frequencies_eigenvectors_kwargs": {"tol_imaginary_modes": settings.tolerance_thz},
    }
    engine = engine.lower()
    if engine in ("chgnet", "sevennet"):
        from atomate2.forcefields.flows.phonons import PhononMaker

        from pccd_flows.stability.engines import FORCE_FIELDS

        maker = PhononMaker.from_force_field_name(FORCE_FIELDS[engine], relax_initial_structure=settings.relax,
                                                  **common)
        if maker.bulk_relax_maker is not None:
            # keep the symmetry of the structure under test: a saddle point must stay one to be found unstable
            maker.bulk_relax_maker.relax_kwargs = {"fmax": 1e-3}
            maker.bulk_relax_maker.fix_symmetry = True
            # a generated or strained cell needs more than atomate2's 500 FIRE steps to reach 1e-3 eV/A
            maker.bulk_relax_maker.steps = 2000
        return maker
    if engine == "gpaw":
        from pccd_flows.followup.gpaw import GpawPhononMaker, GpawRelaxMaker, GpawSettings, GpawStaticMaker

        dft = dft_settings or GpawSettings()
        return GpawPhononMaker(
            bulk_relax_maker=GpawRelaxMaker(settings=dft, relax_kwargs={"fmax": 0.005}) if settings.relax else None,
            static_energy_maker=GpawStaticMaker(settings=dft),
            phonon_displacement_maker=GpawStaticMaker(settings=dft),
            **common,
        )
    if engine == "vasp":
        from atomate2.vasp.flows.phonons import PhononMaker

        return PhononMaker(**common)
    raise ValueError(f"unknown phonon engine {engine!r}: choose one of {', '.join(PHONON_ENGINES)}")
