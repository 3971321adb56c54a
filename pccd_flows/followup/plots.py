"""Band structure and phonon dispersion/DOS as PNG, with pymatgen's plotters (the paper's Fig. 4)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt


def _from_store(store, name_regex: str):
    doc = store.query_one({"name": {"$regex": name_regex}}, properties=["output"], load=True)
    return None if doc is None else doc["output"]


def _as(cls, value):
    return value if isinstance(value, cls) else cls.from_dict(value)


def follow_up_plots(store, flow, out_dir: Path, formula: str) -> list[Path]:
    """Plots of the finished parts of a follow-up run with ``store`` as its JobStore."""
    from pymatgen.electronic_structure.bandstructure import BandStructureSymmLine
    from pymatgen.electronic_structure.plotter import BSPlotter
    from pymatgen.phonon.bandstructure import PhononBandStructureSymmLine
    from pymatgen.phonon.dos import PhononDos
    from pymatgen.phonon.plotter import PhononBSPlotter, PhononDosPlotter

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    bands = _from_store(store, "^gpaw bands")
    if bands and bands.get("band_structure"):
        ax = BSPlotter(_as(BandStructureSymmLine, bands["band_structure"])).get_plot(ylim=(-6, 8), zero_to_efermi=True)
        ax.set_title(f"{formula}: GPAW PBE, gap {bands['band_gap']:.2f} eV")
        written.append(_save(ax.figure, out_dir / f"{formula}_band_structure.png"))
    phonons = _from_store(store, "^generate_frequencies_eigenvectors")
    if phonons and phonons.get("phonon_bandstructure"):
        ax = PhononBSPlotter(_as(PhononBandStructureSymmLine, phonons["phonon_bandstructure"])).get_plot()
        ax.set_title(f"{formula}: phonon dispersion")
        written.append(_save(ax.figure, out_dir / f"{formula}_phonon_dispersion.png"))
    if phonons and phonons.get("phonon_dos"):
        plotter = PhononDosPlotter()
        plotter.add_dos("total", _as(PhononDos, phonons["phonon_dos"]))
        ax = plotter.get_plot()
        ax.set_title(f"{formula}: phonon DOS")
        written.append(_save(ax.figure, out_dir / f"{formula}_phonon_dos.png"))
    return written


def _save(figure, path: Path) -> Path:
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)
    return path
