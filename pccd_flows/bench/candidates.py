"""The structures a relaxation benchmark relaxes: generated with a checkpoint and a seed and screened as the study
screens, or read from CIF files."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, Field
from pymatgen.core import Structure

# generation attempts per chemical system before giving up on finding enough candidates that pass the prefilter
MAX_ATTEMPTS = 8


class BenchCandidate(BaseModel):
    """One structure of the benchmark, with where it came from.

    Attributes
    ----------
    label : str
        Candidate id (generated) or file name (CIF).
    formula : str
        Reduced formula.
    chemsys : str
        Elements, sorted and joined by ``-``.
    nsites : int
        Sites of the cell.
    structure : dict
        The unrelaxed structure (pymatgen dict).
    """

    label: str
    formula: str
    chemsys: str
    nsites: int
    structure: dict = Field(repr=False)

    @classmethod
    def from_structure(cls, label: str, structure: Structure) -> BenchCandidate:
        """A candidate of a pymatgen structure.

        Parameters
        ----------
        label : str
            Its name in the report.
        structure : Structure
            The unrelaxed structure.

        Returns
        -------
        BenchCandidate
        """
        return cls(label=label, formula=structure.composition.reduced_formula,
                   chemsys=structure.composition.chemical_system, nsites=len(structure),
                   structure=structure.as_dict())

    def to_structure(self) -> Structure:
        """The unrelaxed structure.

        Returns
        -------
        Structure
        """
        return Structure.from_dict(self.structure)


def split_evenly(n: int, systems: Sequence[str]) -> dict[str, int]:
    """How many of ``n`` candidates each chemical system gets: round robin, the first systems one more.

    Parameters
    ----------
    n : int
        Candidates in all.
    systems : sequence of str
        Chemical systems, e.g. ``("Mg-O", "Ca-O-Sn")``.

    Returns
    -------
    dict
        System -> count (systems that get none are left out).
    """
    counts = {system: n // len(systems) + (i < n % len(systems)) for i, system in enumerate(systems)}
    return {system: count for system, count in counts.items() if count}


def generated_candidates(n: int, seed: int, systems: Sequence[str], checkpoint: str | Path | None = None,
                         min_covalent_ratio: float | None = None, require_icsd_oxidation_states: bool | None = None,
                         ) -> list[BenchCandidate]:
    """Generate candidates with a checkpoint and screen them as the paper-746 study does, until ``n`` pass.

    Parameters
    ----------
    n : int
        Candidates wanted, split evenly over ``systems``.
    seed : int
        Generation seed; attempt ``k`` of system ``i`` samples with seed ``seed * 1_000_003 + k * 1000 + i``.
    systems : sequence of str
        Chemical systems such as ``Mg-O`` or ``Ca-Sn-O`` (any order of the elements).
    checkpoint : str or Path, optional
        Model checkpoint; default :attr:`PccdSettings.checkpoint` (the shipped one).
    min_covalent_ratio, require_icsd_oxidation_states : float, bool, optional
        Prefilter of the candidates; default the study's (:class:`pccd_flows.study.paper746.StudySpec`).

    Returns
    -------
    list of BenchCandidate
        ``n`` distinct candidates that passed the prefilter, in system order.

    Raises
    ------
    ValueError
        A system whose generations pass too few candidates after :data:`MAX_ATTEMPTS` attempts.
    """
    from pccd_flows.makers.prefilter import prefilter
    from pccd_flows.model.checkpoint import load_model
    from pccd_flows.model.generate import GenerationConditions, generate
    from pccd_flows.schemas.candidate import CandidateDoc
    from pccd_flows.settings import get_settings
    from pccd_flows.study.paper746 import StudySpec, chemsys

    spec = StudySpec()
    min_covalent_ratio = spec.min_covalent_ratio if min_covalent_ratio is None else min_covalent_ratio
    if require_icsd_oxidation_states is None:
        require_icsd_oxidation_states = spec.require_icsd_oxidation_states
    model, codec, payload = load_model(checkpoint or get_settings().checkpoint)
    chosen: list[BenchCandidate] = []
    for index, (system, wanted) in enumerate(split_evenly(n, [chemsys(*s.split("-")) for s in systems]).items()):
        conditions = GenerationConditions(elements=tuple(system.split("-")))
        passed: list[CandidateDoc] = []
        for attempt in range(MAX_ATTEMPTS):
            batch_seed = seed * 1_000_003 + attempt * 1000 + index
            docs = [CandidateDoc.from_generated(c) for c in generate(
                model, codec, payload, conditions, max(2 * (wanted - len(passed)), 4), batch_seed,
                spec.sampler_settings())]
            with warnings.catch_warnings():  # pymatgen warns for every noble gas it meets in SMACT's tables
                warnings.simplefilter("ignore")
                judged = prefilter(docs, passed, None, min_covalent_ratio=min_covalent_ratio,
                                   require_icsd_oxidation_states=require_icsd_oxidation_states)
            passed += [doc for doc in judged if doc.prefilter.passed][: wanted - len(passed)]
            if len(passed) >= wanted:
                break
        else:
            raise ValueError(f"{system}: only {len(passed)} of {wanted} generated candidates passed the prefilter "
                             f"in {MAX_ATTEMPTS} attempts")
        chosen += [BenchCandidate.from_structure(doc.candidate_id, doc.generated_structure()) for doc in passed]
    return chosen


def candidates_from_cifs(directory: str | Path, n: int | None = None) -> list[BenchCandidate]:
    """Candidates read from the CIF files of a folder, in name order.

    Parameters
    ----------
    directory : str or Path
        A folder of ``*.cif`` files (one structure each; the first of a file with several).
    n : int, optional
        Use only the first ``n`` files.

    Returns
    -------
    list of BenchCandidate
        Labelled by file name.

    Raises
    ------
    ValueError
        A folder without CIF files, or a file pymatgen cannot read.
    """
    paths = sorted(Path(directory).glob("*.cif"))[:n]
    if not paths:
        raise ValueError(f"{directory}: no .cif files")
    candidates = []
    for path in paths:
        try:
            with warnings.catch_warnings():  # rounded coordinates and the like, once per file
                warnings.simplefilter("ignore")
                structure = Structure.from_file(path)
        except Exception as exc:
            raise ValueError(f"{path}: not a readable CIF ({type(exc).__name__}: {exc})") from exc
        candidates.append(BenchCandidate.from_structure(path.stem, structure))
    return candidates
