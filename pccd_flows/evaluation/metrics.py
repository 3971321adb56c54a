"""Generation-quality metrics of CDVAE / DiffCSP: validity, uniqueness, novelty and property distributions.

Conventions, shared by every rate in :class:`GenerationMetrics`:

* A generation is a list of ``n`` requested samples. An entry of ``None`` is a sample that produced no
  structure (sampling or decoding failed); it counts as a failure in *every* rate, and every rate is a
  fraction of ``n``, not of the decoded structures only.
* Structure matching uses pymatgen's ``StructureMatcher(stol=0.5, ltol=0.3, angle_tol=10)`` (the CDVAE /
  DiffCSP tolerances; primitive reduction and scaling as pymatgen's defaults), for uniqueness and novelty
  alike.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, Field
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Composition, Element, Lattice, Structure
from pymatgen.core.periodic_table import get_el_sp
from scipy.stats import wasserstein_distance

from pccd_flows.settings import MATCHER_TOLERANCES

if TYPE_CHECKING:
    from pccd_flows.evaluation.novelty import NoveltyIndex

_IMAGES = np.array([image for image in itertools.product((-1, 0, 1), repeat=3) if image != (0, 0, 0)])

# The oxidation-state table CDVAE's smact_validity used: it ran on smact 2.2, whose Element.oxidation_states
# was the original SMACT (2014) list; smact >= 3 defaults to an ICSD-2024 list, named "icsd24", instead.
SMACT_OXIDATION_STATES = "smact14"


def structure_matcher() -> StructureMatcher:
    """The matcher of every uniqueness and novelty test: CDVAE / DiffCSP tolerances."""
    return StructureMatcher(**MATCHER_TOLERANCES)


def reduced_formula(structure_or_composition: Structure | Composition | str) -> str:
    """Reduced formula of the elements (oxidation states dropped): the key under which crystals can match."""
    if isinstance(structure_or_composition, Structure):
        composition = structure_or_composition.composition
    else:
        composition = Composition(structure_or_composition)
    return composition.element_composition.reduced_formula


# --- validity -----------------------------------------------------------------------------------------------


def shortest_lattice_translation(lattice_matrix: np.ndarray) -> float:
    """Length of the shortest non-zero lattice vector: the distance from an atom to its own periodic image.

    The basis is LLL-reduced first; in three dimensions the shortest vector of a reduced basis is among the
    combinations with coefficients in {-1, 0, 1}.
    """
    reduced = Lattice(lattice_matrix).get_lll_reduced_lattice().matrix
    return float(np.linalg.norm(_IMAGES @ reduced, axis=1).min())


def structural_validity(structure: Structure, min_distance: float = 0.5, min_volume: float = 0.1) -> bool:
    """CDVAE's structure validity: no atoms closer than ``min_distance`` (A), volume >= ``min_volume`` (A^3).

    Distances are periodic (pymatgen ``distance_matrix``, the minimum image between distinct sites). The
    distance of an atom to its own periodic image, i.e. the shortest lattice translation, is checked as well:
    for a one-atom cell it is the only interatomic distance there is, and in a larger cell a 0.3 A lattice
    vector overlaps atoms just as much (for real crystals this extra test never binds, so rates stay
    comparable with CDVAE's). An empty structure, a degenerate lattice or non-finite coordinates are invalid.
    """
    if structure is None or len(structure) == 0:
        return False
    matrix = structure.lattice.matrix
    if not np.all(np.isfinite(matrix)) or not np.all(np.isfinite(structure.frac_coords)):
        return False
    volume = abs(float(np.linalg.det(matrix)))
    if not volume >= min_volume:
        return False
    try:
        if shortest_lattice_translation(matrix) < min_distance:
            return False
        if len(structure) > 1:
            distances = structure.distance_matrix
            np.fill_diagonal(distances, np.inf)
            if float(distances.min()) < min_distance:
                return False
    except (ValueError, ArithmeticError, np.linalg.LinAlgError):
        return False
    return True


def closest_covalent_ratio(structure: Structure) -> float:
    """The shortest distance between two atoms (or an atom and its own image) over the sum of their covalent radii.

    A physical counterpart of the 0.5 A test: in every tenth crystal of the bundled MP data no pair comes closer
    than 0.50 of it, 0.01% of the pairs closer than 0.65 and 0.1% of the pairs of different elements closer than 0.72.
    """
    from pccd_flows.codec.decode import covalent_distance_ratios, covalent_radius

    ratios = covalent_distance_ratios(structure.lattice, structure.species, structure.frac_coords)
    largest_radius = max(covalent_radius(el) for el in structure.composition.elements)
    return float(min(ratios.min(), shortest_lattice_translation(structure.lattice.matrix) / (2 * largest_radius)))


def icsd_charge_balanced(composition: Composition | Structure | str) -> bool:
    """Whether pymatgen finds a charge-neutral assignment of the oxidation states seen in the ICSD (stricter
    than SMACT's 2014 table, which admits rarer states such as O-1: CaSnO5 passes SMACT, not this)."""
    if isinstance(composition, Structure):
        composition = composition.composition
    composition = Composition(composition)
    if len(composition.elements) == 1:
        return True
    return bool(composition.oxi_state_guesses(max_sites=-1))


def compositional_validity(composition: Composition | Structure | str) -> bool:
    """CDVAE's ``smact_validity``: charge neutrality plus the Pauling electronegativity test, via SMACT.

    Exactly CDVAE's rule (``cdvae/common/data_utils.py``, ``smact_validity(comp, count, use_pauling_test=True,
    include_alloys=True)``), computed by ``smact.screening.smact_validity`` with the same options:

    * element counts are divided by their greatest common divisor (CDVAE's ``get_composition``);
    * a unary (elemental) composition is valid;
    * a composition of metals only (``smact.metals``) is valid: an alloy needs no charge balance
      (``include_alloys=True``, CDVAE's default, kept here);
    * otherwise some assignment of one oxidation state per element must give a charge-neutral compound at
      these exact counts (``smact.neutral_ratios``) and pass the Pauling test (cations less electronegative
      than anions, ``smact.screening.pauling_test``); an element without electronegativity data passes the
      Pauling test, as in CDVAE. Mixed valence (Fe3O4) is therefore invalid, as in CDVAE.

    The oxidation states are those CDVAE used: SMACT's original 2014 table
    (``oxidation_states_set="smact14"``); smact >= 3 would otherwise default to its ICSD-2024 table, which
    moves the rates away from published CDVAE / DiffCSP numbers. A non-integer composition (disordered) is
    first scaled to its integer formula. An unknown element (no SMACT data) makes the composition invalid.
    """
    from smact.screening import smact_validity

    if isinstance(composition, Structure):
        composition = composition.composition
    composition = Composition(composition).element_composition
    if len(composition) == 0:
        return False
    if any(abs(amount - round(amount)) > 1e-6 for amount in composition.values()):
        composition = Composition(composition.get_integer_formula_and_factor()[0])
    else:
        composition = Composition({element: round(amount) for element, amount in composition.items()})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # smact warns about elements without Pauling electronegativity
            return bool(
                smact_validity(
                    composition,
                    use_pauling_test=True,
                    include_alloys=True,
                    oxidation_states_set=SMACT_OXIDATION_STATES,
                )
            )
    except (KeyError, ValueError, NameError):
        return False


def _element_symbol(element) -> str:
    species = get_el_sp(element)
    return species.element.symbol if hasattr(species, "element") else species.symbol


def element_match(structure: Structure, requested_elements: Iterable[str | Element]) -> bool:
    """Exactly the requested elements are present: none missing, none extra; counts do not matter."""
    if structure is None:
        return False
    present = {element.symbol for element in structure.composition.element_composition.elements}
    return present == {_element_symbol(element) for element in requested_elements}


# --- uniqueness ---------------------------------------------------------------------------------------------


def match_groups(structures: Sequence[Structure], matcher: StructureMatcher | None = None) -> list[list[int]]:
    """Indices of ``structures`` grouped into sets of matching crystals.

    Structures are bucketed by reduced formula first (different formulas never match), then each joins the
    first group whose representative (its first member) it matches, or starts a new group.
    """
    matcher = matcher or structure_matcher()
    by_formula: dict[str, list[int]] = defaultdict(list)
    for index, structure in enumerate(structures):
        by_formula[reduced_formula(structure)].append(index)
    groups: list[list[int]] = []
    for indices in by_formula.values():
        local: list[list[int]] = []
        for index in indices:
            for group in local:
                if fits(matcher, structures[group[0]], structures[index]):
                    group.append(index)
                    break
            else:
                local.append([index])
        groups.extend(local)
    return sorted(groups, key=lambda group: group[0])


def fits(matcher: StructureMatcher, first: Structure, second: Structure) -> bool:
    """Whether ``matcher`` matches the two crystals; False where either cell is degenerate, never an error."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return bool(matcher.fit(first, second))
    except (ValueError, ArithmeticError, np.linalg.LinAlgError):
        return False  # a degenerate cell matches nothing


def uniqueness(structures: Sequence[Structure]) -> float:
    """Fraction of unique structures: each group of matching crystals counts once; 0.0 for an empty list."""
    if not structures:
        return 0.0
    return len(match_groups(structures)) / len(structures)


# --- distributions ------------------------------------------------------------------------------------------


def wasserstein(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Earth mover's distance between two 1-D samples (scipy); None where either sample is empty."""
    a = np.asarray(list(a), dtype=float)
    b = np.asarray(list(b), dtype=float)
    if a.size == 0 or b.size == 0:
        return None
    return float(wasserstein_distance(a, b))


def atom_count_wasserstein(generated: Sequence[Structure], reference: Sequence[Structure]) -> float | None:
    """Wasserstein distance between the number-of-sites distributions."""
    return wasserstein([len(s) for s in generated], [len(s) for s in reference])


def _density(structure: Structure) -> float:
    try:
        return float(structure.density)
    except (ValueError, ZeroDivisionError, ArithmeticError):
        return math.nan


def density_wasserstein(generated: Sequence[Structure], reference: Sequence[Structure]) -> float | None:
    """Wasserstein distance between the density distributions (g/cm^3); non-finite densities are left out."""
    generated_density = [d for d in map(_density, generated) if math.isfinite(d)]
    reference_density = [d for d in map(_density, reference) if math.isfinite(d)]
    return wasserstein(generated_density, reference_density)


# --- the report ---------------------------------------------------------------------------------------------


class GenerationMetrics(BaseModel):
    """Quality of one generation run; every rate is a fraction of the ``n`` requested samples."""

    n: int = Field(description="Samples requested.")
    n_decoded: int = Field(description="Samples that produced a structure at all; the others are failures.")
    structural_validity: float = Field(description="Fraction with no atoms < 0.5 A apart, volume >= 0.1 A^3.")
    compositional_validity: float = Field(
        description="Fraction passing SMACT charge neutrality and the Pauling electronegativity test."
    )
    validity: float = Field(description="Fraction both structurally and compositionally valid.")
    element_match_rate: float = Field(description="Fraction made of exactly the requested elements.")
    uniqueness: float = Field(description="Distinct crystals (matcher groups) among the decoded, over n.")
    novelty: float | None = Field(
        description="Fraction decoded and matching no known crystal of its formula; None without an index."
    )
    novelty_source: str | None = Field(None, description="Data file (name) the novelty was checked against.")
    atom_count_wasserstein: float | None = Field(
        description="Wasserstein distance of the sites-per-cell distributions, decoded vs reference."
    )
    density_wasserstein: float | None = Field(
        description="Wasserstein distance of the density (g/cm^3) distributions, decoded vs reference."
    )
    structures_per_second: float | None = Field(
        description="n / seconds of generation (requested samples, failures included); None when not timed."
    )


def evaluate_generation(
    structures: Sequence[Structure | None],
    requested: Sequence[Sequence[str]],
    reference: Sequence[Structure],
    novelty_index: NoveltyIndex | None = None,
    seconds: float | None = None,
) -> GenerationMetrics:
    """All metrics of one generation: ``structures[i]`` was generated for the element set ``requested[i]``.

    ``None`` entries are failures: they count as invalid, non-matching, non-unique and non-novel, and every
    rate is over ``n = len(structures)``. Uniqueness counts the distinct crystals among all decoded structures
    (valid or not); novelty counts decoded structures that match no crystal of ``novelty_index``. The
    Wasserstein distances compare the decoded structures with ``reference`` (e.g. the test set).
    """
    if len(structures) != len(requested):
        raise ValueError(f"{len(structures)} structures but {len(requested)} requested element sets")
    n = len(structures)
    decoded = [s for s in structures if s is not None]

    def rate(count: int) -> float:
        return count / n if n else 0.0

    structural = [s is not None and structural_validity(s) for s in structures]
    compositional = [s is not None and compositional_validity(s.composition) for s in structures]
    matched = [s is not None and element_match(s, elements) for s, elements in zip(structures, requested)]
    novelty = None
    if novelty_index is not None:
        novelty = rate(sum(1 for s in decoded if novelty_index.is_novel(s)))
    if seconds is not None and seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    return GenerationMetrics(
        n=n,
        n_decoded=len(decoded),
        structural_validity=rate(sum(structural)),
        compositional_validity=rate(sum(compositional)),
        validity=rate(sum(a and b for a, b in zip(structural, compositional))),
        element_match_rate=rate(sum(matched)),
        uniqueness=rate(len(match_groups(decoded))),
        novelty=novelty,
        novelty_source=novelty_index.source.name if novelty_index is not None else None,
        atom_count_wasserstein=atom_count_wasserstein(decoded, reference),
        density_wasserstein=density_wasserstein(decoded, reference),
        structures_per_second=n / seconds if seconds else None,
    )
