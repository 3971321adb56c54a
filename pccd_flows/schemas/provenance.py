"""The records of how a crystal was generated: conditions, sampler settings and provenance.

Plain pydantic documents, importable without torch (the sampling itself is in pccd_flows.model.generate, which
re-exports these names).
"""

from __future__ import annotations

import re
from enum import IntEnum
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field, field_validator, model_validator
from pymatgen.core import Composition, Element, Structure

from pccd_flows.codec.encode import DEFAULT_CODEC, element_channel, slot_elements
from pccd_flows.codec.errors import TooManyElementsError
from pccd_flows.codec.settings import CodecSettings
from pccd_flows.settings import (
    DEFAULT_REPULSION_BELOW_STEP,
    DEFAULT_REPULSION_RATIO,
    DEFAULT_SAMPLER_ETA,
    DEFAULT_SAMPLER_STEPS,
)

MAX_Z = 103  # the heaviest element in the model's vocabulary (Lr)


class BandGapClass(IntEnum):
    """The paper's band-gap classes (eV, PBE)."""

    unknown = 0
    metal = 1  # gap == 0
    small = 2  # 0 < gap < 1.5
    large = 3  # gap >= 1.5

    @classmethod
    def from_gap(cls, gap: float | None) -> BandGapClass:
        if gap is None or not np.isfinite(gap):
            return cls.unknown
        if gap <= 1e-3:
            return cls.metal
        return cls.small if gap < 1.5 else cls.large


class MagneticClass(IntEnum):
    """Magnetic classes. From MP orderings where known (fetched data), else from the total magnetisation."""

    unknown = 0
    non_magnetic = 1
    magnetic = 2  # net moment: ferro- or ferrimagnetic
    antiferromagnetic = 3

    @classmethod
    def from_record(cls, ordering: str | None, total_magnetization: float | None, n_sites: int) -> MagneticClass:
        if ordering:
            return {"NM": cls.non_magnetic, "FM": cls.magnetic, "FIM": cls.magnetic,
                    "AFM": cls.antiferromagnetic}.get(ordering.upper(), cls.unknown)
        if total_magnetization is None or not np.isfinite(total_magnetization):
            return cls.unknown
        # MP calls a material magnetic above ~0.05 muB per atom (its NM threshold); AFM has no net moment and so
        # cannot be told from NM with magnetisation alone.
        return cls.magnetic if abs(total_magnetization) / max(n_sites, 1) >= 0.05 else cls.non_magnetic


def checked_elements(elements) -> tuple[str, ...]:
    """1 to 3 known elements up to Z = MAX_Z, in canonical slot order; a ValueError (CodecError) otherwise."""
    ordered = slot_elements(elements)
    if not 1 <= len(ordered) <= 3:
        raise TooManyElementsError(f"{len(ordered)} elements ({'-'.join(ordered)}); PCCD generates 1 to 3")
    if any(Element(el).Z > MAX_Z for el in ordered):
        raise ValueError(f"elements beyond Z={MAX_Z} are not in the model's vocabulary: {ordered}")
    return ordered


class SamplerSettings(BaseModel):
    sampler: Literal["ddim", "ddpm"] = "ddim"
    steps: int = Field(DEFAULT_SAMPLER_STEPS, ge=1, description="Network evaluations of DDIM (DDPM always takes T).")
    guidance: float = Field(1.0, description="Classifier-free guidance scale; 1 = conditional model, no guidance.")
    eta: float = Field(
        DEFAULT_SAMPLER_ETA, ge=0, description="DDIM stochasticity: 0 is deterministic DDIM; 1 (default) adds the ancestral "
        "sampler's noise at every step, which gave fewer overlapping atoms (docs/model-card.md).")
    repulsion_ratio: float = Field(
        DEFAULT_REPULSION_RATIO, ge=0, description="Overlap repulsion: during the last steps, points of different "
        "elements closer than this fraction of the sum of their covalent radii are pushed apart (0 = off; "
        "pccd_flows.model.repulsion).")
    repulsion_below_step: int = Field(
        DEFAULT_REPULSION_BELOW_STEP, ge=0, description="Overlap repulsion acts at diffusion steps t <= this (of T).")
    repulsion_iterations: int = Field(5, ge=0, description="Push iterations per denoising step.")
    batch_size: int = Field(256, ge=1)


class GenerationConditions(BaseModel):
    elements: tuple[str, ...] = Field(description="1 to 3 elements, stored in slot order (slot_elements).")
    composition: str | None = Field(
        None, description="Exact cell composition to generate, e.g. Mg3CdO4 (at most the codec's 16 sites): the "
        "sampler fixes the element channel to this composition's and lets the model fill in positions and lattice "
        "(inpainting). None: any composition of the elements.")
    band_gap_class: BandGapClass = BandGapClass.unknown
    magnetic_class: MagneticClass = MagneticClass.unknown

    @model_validator(mode="before")
    @classmethod
    def _elements_of_the_composition(cls, values):
        if isinstance(values, dict) and values.get("composition") and not values.get("elements"):
            values = {**values, "elements": tuple(str(el) for el in parse_composition(values["composition"]))}
        return values

    @field_validator("elements")
    @classmethod
    def _slot_order(cls, elements):
        return checked_elements(elements)  # slot order; refuses unknown elements and more than 3

    @model_validator(mode="after")
    def _composition_of_the_elements(self):
        if self.composition is None:
            return self
        composition = parse_composition(self.composition)
        if {str(el) for el in composition} != set(self.elements):
            raise ValueError(f"composition {self.composition} has elements "
                             f"{'-'.join(sorted(str(el) for el in composition))}, not the requested "
                             f"{'-'.join(sorted(self.elements))}")
        counts = {el: int(composition[el]) for el in self.elements}
        self.composition = "".join(f"{el}{count if count > 1 else ''}" for el, count in counts.items())
        return self

    def element_channel(self, codec: CodecSettings) -> np.ndarray | None:
        """The codec's element channel (n_points, 3) of this composition, or None where it is free."""
        if self.composition is None:
            return None
        composition = parse_composition(self.composition)
        if composition.num_atoms > codec.max_sites:
            raise ValueError(f"composition {self.composition} has {int(composition.num_atoms)} atoms; the codec "
                             f"encodes at most {codec.max_sites}")
        return element_channel([composition[el] for el in self.elements], codec.n_points)


def parse_composition(formula: str) -> Composition:
    """A cell's exact composition: known elements, whole atoms, within the default codec's site limit."""
    try:
        composition = Composition(formula)
    except (ValueError, KeyError) as exc:
        raise ValueError(f"cannot read composition {formula!r}: {exc}") from exc
    unknown = [getattr(species, "symbol", str(species)) for species in composition
               if not isinstance(species, Element)]
    if unknown:
        raise ValueError(f"unknown element in composition {formula!r}: {', '.join(unknown)}")
    # pymatgen drops elements counted 0 ("Mg0O" reads as O): a requested element must not vanish silently
    vanished = sorted(set(re.findall(r"[A-Z][a-z]*", formula)) - {str(el) for el in composition})
    if vanished:
        raise ValueError(f"composition {formula!r} counts no {', '.join(vanished)} atoms: every element needs >= 1")
    if any(not float(amount).is_integer() or amount < 1 for amount in composition.values()):
        raise ValueError(f"composition {formula!r} must count whole atoms (e.g. Mg3CdO4, not Mg0.75Cd0.25O)")
    if composition.num_atoms > DEFAULT_CODEC.max_sites:
        raise ValueError(f"composition {formula!r} has {int(composition.num_atoms)} atoms; at most "
                         f"{DEFAULT_CODEC.max_sites} sites are generated")
    return composition


class Provenance(BaseModel):
    checkpoint_sha256: str
    checkpoint_path: str | None = None
    seed: int
    index: int = Field(description="Position in the seeded run; the initial noise is drawn from (seed, index).")
    conditions: GenerationConditions
    sampler: SamplerSettings


class GeneratedCrystal(BaseModel):
    formula: str | None
    structure: dict | None = Field(None, description="pymatgen Structure.as_dict(), None if decoding failed.")
    error: str | None = None
    provenance: Provenance

    def to_structure(self) -> Structure | None:
        return Structure.from_dict(self.structure) if self.structure is not None else None
