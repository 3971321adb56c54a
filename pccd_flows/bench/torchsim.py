"""Batched relaxation with torch-sim (``torch-sim-atomistic``, 0.3.0 on Python 3.11): its FIRE with the Frechet cell
filter on a SevenNet model, every structure of a chunk in one batch."""

from __future__ import annotations

import importlib.metadata
import math

from pymatgen.core import Structure

from pccd_flows.bench.schemas import RelaxOutcome
from pccd_flows.stability.engines import FORCE_FIELDS, calculator_kwargs_for, error_line

# Engines torch-sim can run here: it wraps SevenNet (and others), not CHGNet.
TORCH_SIM_ENGINES = tuple(engine for engine, name in FORCE_FIELDS.items() if name == "SevenNet")
# torch-sim 0.3.0's SevenNet wrapper imports this name, which sevenn 0.13 no longer has (it was the TorchScript
# module class the wrapper tests deployed models against); without it the wrapper's import fails half-way and its
# forward pass raises NameError.
SEVENN_REMOVED_NAME = "torch_script_type"


def torch_sim_version() -> str | None:
    """The installed torch-sim's version.

    Returns
    -------
    str or None
        None when ``torch-sim-atomistic`` is not installed.
    """
    try:
        return importlib.metadata.version("torch-sim-atomistic")
    except importlib.metadata.PackageNotFoundError:
        return None


def compatibility_notes() -> list[str]:
    """What it takes to run torch-sim's SevenNet wrapper with the installed sevenn, found by looking.

    Returns
    -------
    list of str
        One line per workaround :func:`relax_with_torch_sim` applies (empty when none is needed).
    """
    import sevenn.calculator

    if hasattr(sevenn.calculator, SEVENN_REMOVED_NAME):
        return []
    version = importlib.metadata.version("sevenn")
    return [(f"torch-sim {torch_sim_version()}'s SevenNet wrapper imports sevenn.calculator.{SEVENN_REMOVED_NAME}, "
            f"which sevenn {version} does not have (ImportError at import, NameError at the first forward pass); "
            f"pccd sets it to torch.jit.ScriptModule (the wrapper's test for TorchScript models, which 7net-0 "
            f"is not) before importing torch_sim.models.sevennet")]


def unavailable_reason(engine: str) -> str | None:
    """Why torch-sim cannot relax with ``engine`` here.

    Parameters
    ----------
    engine : str
        An engine name of :data:`pccd_flows.stability.engines.ENGINES`.

    Returns
    -------
    str or None
        None when it can.
    """
    if engine not in TORCH_SIM_ENGINES:
        return f"torch-sim has no {engine} model here (it runs {', '.join(TORCH_SIM_ENGINES)})"
    if torch_sim_version() is None:
        return "torch-sim-atomistic is not installed (pip install 'pccd-flows[torchsim]', Python 3.11: 0.3.0)"
    return None


def _sevennet_model(engine: str):
    """torch-sim's wrapper of the engine's SevenNet model, loaded as atomate2's calculator loads it."""
    import sevenn.calculator
    import torch

    if not hasattr(sevenn.calculator, SEVENN_REMOVED_NAME):  # see compatibility_notes
        setattr(sevenn.calculator, SEVENN_REMOVED_NAME, torch.jit.ScriptModule)
    from sevenn.calculator import SevenNetCalculator
    from torch_sim.models.sevennet import SevenNetModel

    kwargs = calculator_kwargs_for(engine)
    calculator = SevenNetCalculator(**kwargs)
    return SevenNetModel(model=calculator.model, device=kwargs.get("device", "cpu"))


def relax_with_torch_sim(structures: list[Structure], engine: str, steps: int, fmax: float
                         ) -> tuple[list[RelaxOutcome], int]:
    """Relax structures in one batch with torch-sim's FIRE and Frechet cell filter, the model loaded once.

    Parameters
    ----------
    structures : list of Structure
        One chunk; all relax together.
    engine : str
        A SevenNet engine (:data:`TORCH_SIM_ENGINES`).
    steps : int
        Most optimizer steps of a structure.
    fmax : float
        Convergence: largest atomic force and cell force below this (eV/A), as ASE's criterion on a cell filter.

    Returns
    -------
    list of RelaxOutcome
        In the order of ``structures``; the whole chunk carries the error when the batch fails.
    int
        Structure-evaluations of the potential: each forward pass counts the structures of its batch (torch-sim
        drops converged structures from the batch, so this over all structures is their mean step count).
    """
    reason = unavailable_reason(engine)
    if reason is not None:
        return [RelaxOutcome(error=reason) for _ in structures], 0
    evaluations = []
    try:
        import torch
        import torch_sim as ts

        model = _sevennet_model(engine)
        forward = model.forward

        def counted_forward(state, *args, **kwargs):
            evaluations.append(int(state.n_systems))
            return forward(state, *args, **kwargs)

        model.forward = counted_forward
        converged_after = ts.generate_force_convergence_fn(force_tol=fmax, include_cell_forces=True)
        final = ts.optimize(system=list(structures), model=model, optimizer=ts.frechet_cell_fire,
                            convergence_fn=converged_after, max_steps=steps, autobatcher=False)
        converged = converged_after(final).tolist()
        energies = final.energy.detach().tolist()
        atoms = torch.bincount(final.system_idx, minlength=len(structures)).tolist()
    except Exception as error:  # noqa: BLE001 - recorded on each structure of the chunk, never raised
        return [RelaxOutcome(error=error_line(error)) for _ in structures], sum(evaluations)
    outcomes = []
    for energy, count, ok in zip(energies, atoms, converged, strict=True):
        if not math.isfinite(energy):
            outcomes.append(RelaxOutcome(error=f"non-finite energy {energy}"))
        else:
            outcomes.append(RelaxOutcome(energy_per_atom=energy / count, converged=bool(ok)))
    return outcomes, sum(evaluations)
