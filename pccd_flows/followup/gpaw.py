"""GPAW (PBE, PAW, plane waves) wrapped the atomate2 way: an ``AseRelaxMaker`` and a static maker, a line-mode band
structure job, and atomate2's phonon flow with GPAW forces. The open DFT engine that runs on a laptop and in CI.

Settings shared by every GPAW calculation of a comparison (cutoff, k-point density, smearing) live in
:class:`GpawSettings`, so that a candidate and its decomposition products are computed identically.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
from atomate2.ase.jobs import AseRelaxMaker
from atomate2.common.flows.phonons import BasePhononMaker
from jobflow import job
from pydantic import BaseModel, Field
from pymatgen.core import Structure

from pccd_flows.schemas.followup import BandGapSummary
from pccd_flows.schemas.structure import MSONDict

# threaded OpenBLAS made GPAW 2-10x slower on 2 cores (issue 7): one thread per process, set before GPAW loads
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


class GpawMissingError(RuntimeError):
    """GPAW is an optional extra."""


def require_gpaw():
    try:
        import gpaw  # noqa: F401
    except ImportError as exc:
        raise GpawMissingError(
            "GPAW is not installed: `pip install 'pccd-flows[dft]'` (build deps on Debian: apt-get install "
            "libxc-dev libopenblas-dev libfftw3-dev; with GPAW >= 26 set GPAW_CONFIG to the repository's "
            "gpaw-siteconfig.py), or `make install-dft`"
        ) from exc


class GpawSettings(BaseModel, frozen=True):
    """One set of numerical settings. 800 eV: lower cutoffs leave a spurious Pulay stress that shrinks cells."""

    xc: str = "PBE"
    ecut: float = Field(800.0, description="Plane-wave cutoff (eV).")
    kpoint_density: float = Field(2.5, description="k-points per reciprocal A (ASE's density), Gamma-centred.")
    smearing: float = Field(0.05, description="Fermi-Dirac width (eV).")
    band_kpoint_density: int = Field(6, description="Points per reciprocal A along the band-structure path.")
    extra_bands: int = Field(8, description="Empty bands computed above the valence for the band structure.")
    # looser than GPAW's default (4e-8, set for total energies): a non-SCF iteration of a 14-atom P1 cell cost
    # 10-20 s here and converging Ca2SnO4 to 1e-6 took 29 of them
    band_eigenstates: float = Field(1e-6, description="Eigenstate convergence of the non-SCF band run "
                                                      "(eV^2 per valence electron).")

    def calculator_kwargs(self) -> dict:
        return {"xc": self.xc, "ecut": self.ecut, "kpoint_density": self.kpoint_density, "smearing": self.smearing}


def gpaw_calculator(xc: str = "PBE", ecut: float = 800.0, kpoint_density: float = 2.5, smearing: float = 0.05,
                    txt: str | None = "gpaw.txt", **kwargs):
    require_gpaw()
    from gpaw import GPAW, PW, FermiDirac

    return GPAW(mode=PW(ecut), xc=xc, kpts={"density": kpoint_density, "gamma": True},
                occupations=FermiDirac(smearing), txt=txt, **kwargs)


# MP's initial moments (MPRelaxSet); GPAW turns spin polarisation on only where a site carries a moment, so
# closed-shell oxides (Mg, Ca, Sn, Al...) stay spin-restricted and cost half
def with_initial_magmoms(structure: Structure) -> Structure:
    from pymatgen.io.vasp.sets import MPRelaxSet

    if "magmom" in structure.site_properties:
        return structure
    defaults = MPRelaxSet.CONFIG["INCAR"]["MAGMOM"]
    magnetic = [defaults.get(site.specie.symbol, 0.6) if _open_shell(site.specie) else 0.0 for site in structure]
    return structure.copy(site_properties={"magmom": magnetic}) if any(magnetic) else structure


def _open_shell(element) -> bool:
    return element.is_transition_metal and element.symbol not in {"Zn", "Cd", "Hg", "Sc", "Y"} or \
        element.is_rare_earth and element.symbol not in {"La", "Lu", "Y", "Sc"}


@dataclass
class GpawRelaxMaker(AseRelaxMaker):
    """Relax positions and cell with GPAW (ASE's FIRE/BFGS through atomate2's ``AseRelaxer``)."""

    name: str = "GPAW relaxation"
    settings: GpawSettings = field(default_factory=GpawSettings)
    # the k-point symmetry reduction is most of GPAW's speed: a relaxation must not lose the crystal's symmetry
    fix_symmetry: bool = True
    # BFGS: 4 steps for MgO from MP's cell where FIRE took 22 (each step is a full SCF)
    optimizer_kwargs: dict = field(default_factory=lambda: {"optimizer": "BFGS"})
    relax_kwargs: dict = field(default_factory=lambda: {"fmax": 0.02})

    def _get_calculator(self):
        return gpaw_calculator(**self.settings.calculator_kwargs(), **self.calculator_kwargs)

    @job(data=["trajectory"])
    def make(self, structure: Structure | list[Structure], prev_dir=None):
        """atomate2's phonon flows call ``make(structure=...)``, as for the force-field makers."""
        return AseRelaxMaker.make.original(self, structure, prev_dir=prev_dir)

    def run_ase(self, mol_or_struct, prev_dir=None):
        return super().run_ase(with_initial_magmoms(mol_or_struct), prev_dir=prev_dir)


@dataclass
class GpawStaticMaker(GpawRelaxMaker):
    """Energy, forces and stress of one structure (a relaxation of one step, as atomate2's static makers)."""

    name: str = "GPAW static"
    relax_cell: bool = False
    steps: int = 1


@dataclass
class GpawPhononMaker(BasePhononMaker):
    """atomate2's phonon flow (phonopy finite displacements) with GPAW forces, through its ASE code path."""

    name: str = "GPAW phonon"
    code: str = "ase"
    min_length: float | None = 7.0
    bulk_relax_maker: GpawRelaxMaker | None = field(
        default_factory=lambda: GpawRelaxMaker(relax_kwargs={"fmax": 0.005}))
    static_energy_maker: GpawStaticMaker | None = field(default_factory=GpawStaticMaker)
    phonon_displacement_maker: GpawStaticMaker = field(default_factory=GpawStaticMaker)

    @property
    def prev_calc_dir_argname(self):
        return None


class BandStructureResult(BandGapSummary):
    """A line-mode band structure with the gap the follow-up records."""

    band_structure: MSONDict = Field(description="pymatgen BandStructureSymmLine (as_dict).")
    settings: dict = Field(default_factory=dict)


@job(data=["band_structure"])
def gpaw_band_structure(structure: Structure, settings: GpawSettings | None = None) -> BandStructureResult:
    """Self-consistent ground state on a uniform mesh, then a non-self-consistent run along pymatgen's
    high-symmetry path (Setyawan-Curtarolo, on the standard primitive cell)."""
    require_gpaw()
    from pymatgen.io.ase import AseAtomsAdaptor
    from pymatgen.symmetry.bandstructure import HighSymmKpath

    settings = settings or GpawSettings()
    structure = structure if isinstance(structure, Structure) else Structure.from_dict(structure)
    kpath = HighSymmKpath(structure.copy(site_properties={}) if structure.site_properties else structure,
                          path_type="setyawan_curtarolo", symprec=0.01)
    primitive = with_initial_magmoms(kpath.prim)
    atoms = AseAtomsAdaptor.get_atoms(primitive)
    atoms.calc = gpaw_calculator(**settings.calculator_kwargs(), txt="gpaw_scf.txt")
    atoms.get_potential_energy()
    scf = atoms.calc
    n_occupied = int(np.ceil(scf.get_number_of_electrons() / 2))
    kpoints, labels = kpath.get_kpoints(line_density=settings.band_kpoint_density, coords_are_cartesian=False)
    kpoints = np.array(kpoints)
    nscf = scf.fixed_density(nbands=n_occupied + settings.extra_bands, symmetry="off", kpts=kpoints,
                             convergence={"bands": n_occupied + settings.extra_bands // 2,
                                          "eigenstates": settings.band_eigenstates}, txt="gpaw_bands.txt")
    return _band_structure_result(nscf, primitive, kpoints, labels, settings)


def _band_structure_result(calc, primitive, kpoints, labels, settings) -> BandStructureResult:
    from pymatgen.electronic_structure.bandstructure import BandStructureSymmLine
    from pymatgen.electronic_structure.core import Spin

    spins = [Spin.up, Spin.down][: calc.get_number_of_spins()]
    eigenvalues = {spin: np.array([calc.get_eigenvalues(kpt=k, spin=s) for k in range(len(kpoints))]).T
                   for s, spin in enumerate(spins)}
    # the Fermi level of a smeared insulator sits anywhere in the gap; pymatgen wants it between VBM and CBM
    labels_dict = {label: kpt for kpt, label in zip(kpoints, labels) if label}
    bands = BandStructureSymmLine(kpoints, eigenvalues, primitive.lattice.reciprocal_lattice, calc.get_fermi_level(),
                                  labels_dict, structure=primitive)
    gap = bands.get_band_gap()
    return BandStructureResult(
        engine="gpaw", band_gap=float(gap["energy"]), is_gap_direct=bool(gap["direct"]) if gap["energy"] else None,
        transition=gap["transition"], is_metal=bool(bands.is_metal()), band_structure=bands.as_dict(),
        settings=settings.model_dump())
