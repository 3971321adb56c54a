"""The structures of a candidate's decomposition products on the offline hull, for recomputing them with DFT."""

from __future__ import annotations

from typing import NamedTuple

from pymatgen.core import Structure

from pccd_flows.schemas.candidate import CandidateDoc
from pccd_flows.settings import PccdSettings, get_settings
from pccd_flows.stability.references import ReferenceError, reference_set


class Product(NamedTuple):
    fraction: float
    material_id: str
    structure: Structure


def decomposition_phases(doc: CandidateDoc, settings: PccdSettings | None = None) -> dict[str, Product]:
    """Formula -> (atom fraction, MP id, structure) of the hull phases the candidate is judged against.

    The structure of each product is the MP polymorph the reference set used (``mp-structures``), else the
    smallest MP cell of that formula. Raises ``ReferenceError`` for a product with no structure (a phase placed on
    the hull only by its MP formation energy): its DFT energy cannot be recomputed.
    """
    from pccd_flows.evaluation.novelty import known_structure_index

    if doc.stability is None:
        raise ReferenceError(f"{doc.candidate_id} has no stability result to take its decomposition from")
    settings = settings or get_settings()
    # the relaxing force field's own verdict: its hull's phases (a confirmed verdict is named like chgnet+sevennet)
    stability = doc.own_stability
    references = reference_set(stability.reference, doc.chemsys.split("-"), stability.engine, settings)
    chosen = references.notes.get("computed", {})
    index = known_structure_index(settings.reference_structures_file or settings.data_file)
    products = {}
    for formula, fraction in stability.decomposition.items():
        known = dict(index.known_structures(formula))
        if not known:
            raise ReferenceError(f"decomposition product {formula} has no structure in {index.source.name}")
        material_id = chosen.get(formula) if chosen.get(formula) in known else min(known, key=lambda m: len(known[m]))
        products[formula] = Product(fraction, material_id, known[material_id])
    return products


def decomposition_products(doc: CandidateDoc, settings: PccdSettings | None = None
                           ) -> dict[str, tuple[float, Structure]]:
    """Formula -> (atom fraction, structure) of the hull phases (see :func:`decomposition_phases`)."""
    return {formula: (p.fraction, p.structure) for formula, p in decomposition_phases(doc, settings).items()}
