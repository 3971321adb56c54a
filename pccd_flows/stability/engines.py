"""Energies of structures from atomate2 force-field makers, one engine name for each way of computing them.

Force fields run here, through atomate2's ``ForceFieldRelaxMaker``/``ForceFieldStaticMaker`` (the same makers the
screening flows use), so that `pccd ehull` and the flows produce the same task documents. VASP runs only on users'
HPC through the flows; its task documents are turned into entries by :mod:`pccd_flows.stability.entries`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from pymatgen.core import Structure

logger = logging.getLogger(__name__)

# engine name -> atomate2 force_field_name; all load their weights from the installed wheels (no network).
# Each SevenNet model is an engine of its own, so that reference energies are cached per model.
FORCE_FIELDS = {"chgnet": "CHGNet", "sevennet": "SevenNet", "sevennet-l3i5": "SevenNet"}
# engine name -> the model its weights are (recorded on every result; passed to the calculator where it has a choice)
FORCE_FIELD_MODELS = {"chgnet": "chgnet-0.3.0", "sevennet": "7net-0", "sevennet-l3i5": "7net-l3i5"}
ENGINES = (*FORCE_FIELDS, "vasp")


class EngineError(ValueError):
    """An engine that does not exist or cannot run here."""


@dataclass(frozen=True)
class RelaxSettings:
    relax: bool = True
    steps: int = 500
    fmax: float = 0.05


def check_engine(engine: str) -> str:
    engine = engine.lower()
    if engine not in ENGINES:
        raise EngineError(f"unknown engine {engine!r}: choose one of {', '.join(ENGINES)}")
    return engine


def force_field_maker(engine: str = "chgnet", settings: RelaxSettings | None = None):
    """The atomate2 maker that relaxes (or single-points) structures with a force field."""
    from atomate2.forcefields.jobs import ForceFieldRelaxMaker, ForceFieldStaticMaker

    engine = check_engine(engine)
    if engine not in FORCE_FIELDS:
        raise EngineError(f"{engine} does not run inside pccd; it runs through the screening flows on HPC")
    settings = settings or RelaxSettings()
    calculator_kwargs = calculator_kwargs_for(engine)
    if not settings.relax:
        return ForceFieldStaticMaker(force_field_name=FORCE_FIELDS[engine], calculator_kwargs=calculator_kwargs)
    return ForceFieldRelaxMaker(
        force_field_name=FORCE_FIELDS[engine], steps=settings.steps, relax_kwargs={"fmax": settings.fmax},
        calculator_kwargs=calculator_kwargs,
    )


def calculator_kwargs_for(engine: str) -> dict:
    """The ASE calculator's arguments of an engine: the model of SevenNet's engines, on the CPU."""
    if FORCE_FIELDS.get(engine) == "SevenNet":
        return {"model": FORCE_FIELD_MODELS[engine], "device": "cpu"}
    return {}


@dataclass
class EngineResult:
    """One structure's outcome: the task document, or why there is none."""

    structure: Structure
    task_doc: object | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.task_doc is not None


@contextlib.contextmanager
def quiet_scratch() -> Iterator[None]:
    """Force fields print banners on stdout (which must stay clean for --json output), and atomate2 writes files
    (final_atoms_object.xyz...) into the working directory: both are kept away from the user's."""
    cwd = os.getcwd()
    with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr), \
            tempfile.TemporaryDirectory(prefix="pccd-relax-") as scratch:
        warnings.simplefilter("ignore")
        os.chdir(scratch)
        try:
            yield
        finally:
            os.chdir(cwd)


def run_force_field(structures: Sequence[Structure], engine: str = "chgnet", settings: RelaxSettings | None = None,
                     progress: Callable[[EngineResult], None] | None = None) -> list[EngineResult]:
    """Relax (or single-point) structures with a force field, one after another on one loaded potential.

    The structures go through atomate2's ``ForceFieldRelaxMaker`` (``ForceFieldStaticMaker`` without relaxation),
    the same task documents as its jobs write, but in this process: one maker, whose calculator (the model) is
    loaded with the first structure and kept for the others, and no job store of its own.

    Parameters
    ----------
    structures : sequence of Structure
        What to relax.
    engine : str
        A force field of ``FORCE_FIELDS``.
    settings : RelaxSettings, optional
        Relax or not, step limit, force criterion.
    progress : callable, optional
        Called with each structure's result as it is done (to store it at once, or advance a bar).

    Returns
    -------
    list of EngineResult
        In order; a structure that fails has its error (one line) instead of a task document, and costs only itself.
    """
    if not structures:
        return []
    if check_engine(engine) not in FORCE_FIELDS:
        raise EngineError(f"{engine} does not run inside pccd; it runs through the screening flows on HPC")
    maker = force_field_maker(engine, settings or RelaxSettings())
    # the function under atomate2's @job: runs the relaxation here, with the maker's cached calculator
    run = type(maker).make.original
    results = []
    with quiet_scratch():
        for structure in structures:
            try:
                result = EngineResult(structure, run(maker, structure))
            except Exception as error:  # noqa: BLE001 - recorded on the structure, never dropped
                result = EngineResult(structure, error=error_line(error))
            results.append(result)
            if progress is not None:
                progress(result)
    return results


def error_line(error: BaseException) -> str:
    """An exception as one line (type and last line of its message), for records and logs."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[-1] if text else ''}"[:300]
