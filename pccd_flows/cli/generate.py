"""``pccd generate``: sample candidate crystals for a chemical system."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from pccd_flows.cli.common import (
    SEED_MAX,
    EtaOption,
    RepulsionOption,
    SamplerStepsOption,
    fail,
    finite,
    gather_values,
    progress_bar,
    require_output_dir,
    stdout,
    validation_message,
)
from pccd_flows.model.conditions import BandGapClass, MagneticClass
from pccd_flows.settings import DEFAULT_REPULSION_RATIO, DEFAULT_SAMPLER_ETA, DEFAULT_SAMPLER_STEPS

CheckpointOption = Annotated[
    Path | None, typer.Option("--checkpoint", help="Model checkpoint. Default: the shipped one.")
]


def load_checkpoint_or_fail(checkpoint: Path | None):
    from pccd_flows.model.checkpoint import CheckpointError, load_model
    from pccd_flows.settings import get_settings

    path = checkpoint or get_settings().checkpoint
    if path.is_dir():
        fail(f"--checkpoint {path}: is a directory; name a checkpoint file (.pt)")
    try:
        return load_model(path)
    except CheckpointError as exc:
        fail(str(exc))


def generate_command(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="Directory for the CIFs and candidates.json.")],
    elements: Annotated[list[str] | None, typer.Option(
        "--elements", help="1 to 3 elements, e.g. --elements Ca Sn O (or give --composition).")] = None,
    composition: Annotated[str | None, typer.Option(
        "--composition", help="Exact cell composition, e.g. Mg3CdO4 (<= 16 atoms): the element channel is fixed to "
        "it while the model generates positions and lattice.")] = None,
    n: Annotated[int, typer.Option("--n", min=1, help="How many crystals.")] = 64,
    band_gap_class: Annotated[BandGapClass, typer.Option("--band-gap-class")] = BandGapClass.unknown,
    magnetic: Annotated[MagneticClass, typer.Option("--magnetic")] = MagneticClass.unknown,
    sampler: Annotated[str, typer.Option("--sampler", help="ddim (fast) or ddpm (the paper's 1000 steps).")] = "ddim",
    steps: SamplerStepsOption = DEFAULT_SAMPLER_STEPS,
    eta: EtaOption = DEFAULT_SAMPLER_ETA,
    repulsion: RepulsionOption = DEFAULT_REPULSION_RATIO,
    guidance: Annotated[float, typer.Option(
        "--guidance", callback=finite, help="Classifier-free guidance scale (1 = none).")] = 1.0,
    seed: Annotated[int, typer.Option("--seed", min=0, max=SEED_MAX)] = 0,
    checkpoint: CheckpointOption = None,
) -> None:
    """Generate crystals with PCCD: one CIF each and candidates.json with provenance and validity flags."""
    from pymatgen.core import Composition

    from pccd_flows.evaluation.metrics import compositional_validity, element_match, structural_validity
    from pccd_flows.model.generate import GenerationConditions, SamplerSettings, generate, network_evaluations

    try:
        if not elements and not composition:
            fail("give --elements (e.g. --elements Ca Sn O) or --composition (e.g. --composition Ca2SnO4)")
        conditions = GenerationConditions(elements=tuple(gather_values(elements, ctx)) if elements else (),
                                          composition=composition, band_gap_class=band_gap_class,
                                          magnetic_class=magnetic)
        sampler_settings = SamplerSettings(sampler=sampler, steps=steps, guidance=guidance, eta=eta,
                                           repulsion_ratio=repulsion)
    except ValidationError as exc:
        fail(validation_message(exc))
    require_output_dir(out, "--out")  # before the sampling, not after it
    model, codec, payload = load_checkpoint_or_fail(checkpoint)
    total_ticks = n * network_evaluations(sampler_settings, model.config.timesteps)
    with progress_bar(f"sampling {conditions.composition or '-'.join(conditions.elements)}", total_ticks) as advance:
        crystals = generate(model, codec, payload, conditions, n, seed, sampler_settings, progress=advance)

    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for crystal in crystals:
        row = crystal.model_dump(mode="json", exclude={"structure"})
        structure = crystal.to_structure()
        if structure is not None:
            name = f"{crystal.provenance.index:05d}_{structure.composition.reduced_formula}.cif"
            structure.to(filename=str(out / name))
            row["cif"] = name
            row["valid"] = {
                "structural": structural_validity(structure),
                "compositional": compositional_validity(structure.composition),
                "element_match": element_match(structure, conditions.elements),
            }
        rows.append(row)
    (out / "candidates.json").write_text(json.dumps(rows, indent=2))
    decoded = sum(c.structure is not None for c in crystals)
    valid = sum(bool(r.get("valid", {}).get("structural")) for r in rows)
    matching = ""
    if conditions.composition:
        target = Composition(conditions.composition).reduced_formula
        hits = sum(c.formula == target for c in crystals)
        matching = f", {hits} of composition {target}"
    stdout.print(f"wrote {decoded}/{n} crystals to {out} ({valid} structurally valid{matching}); see candidates.json")
