"""Generation: seeded crystals of one chemical system from a PCCD checkpoint, as candidate documents."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from pccd_flows.schemas.candidate import CandidateDoc
from pccd_flows.schemas.provenance import BandGapClass, GenerationConditions, MagneticClass, SamplerSettings


@lru_cache(maxsize=2)
def _loaded(path: str, stamp: tuple[int, int]):
    from pccd_flows.model.checkpoint import load_model

    return load_model(path)


def load_generator(checkpoint: str | Path | None = None):
    """The model, codec and checkpoint payload of ``checkpoint``, loaded once per process.

    Parameters
    ----------
    checkpoint : str or Path, optional
        A PCCD checkpoint; default: the configured one (``PCCD_CHECKPOINT``, else the shipped one).

    Returns
    -------
    tuple
        ``(model, codec, payload)`` as :func:`pccd_flows.model.checkpoint.load_model` returns them; the payload's
        ``sha256`` pins the weights every candidate's provenance records.
    """
    from pccd_flows.settings import get_settings

    path = Path(checkpoint or get_settings().checkpoint).expanduser().resolve()
    try:
        stat = path.stat()
    except OSError:  # load_model names the missing file
        return _loaded.__wrapped__(str(path), (0, 0))
    # a FireWorks worker runs many generation jobs in one process: the weights are read once (again only if the
    # file at that path was replaced)
    return _loaded(str(path), (stat.st_mtime_ns, stat.st_size))


def generate_candidates(chemsys: str, n: int, seed: int, sampler: SamplerSettings | None = None,
                        checkpoint: str | Path | None = None, composition: str | None = None,
                        band_gap_class: BandGapClass = BandGapClass.unknown,
                        magnetic_class: MagneticClass = MagneticClass.unknown, tags: dict | None = None,
                        progress: Callable[[int], None] | None = None) -> list[CandidateDoc]:
    """Sample and decode ``n`` crystals of a chemical system.

    Parameters
    ----------
    chemsys : str
        Elements joined by ``-`` (any order), e.g. ``Ca-O-Sn``.
    n, seed : int
        How many crystals, and the seed they are drawn with (candidate ``i`` depends on ``(seed, i)`` only).
    sampler : SamplerSettings, optional
        Sampler settings; default: the package's default sampler.
    checkpoint : str or Path, optional
        See :func:`load_generator`.
    composition : str, optional
        An exact cell composition (element channel fixed, e.g. ``Mg3CdO4``); its elements must be ``chemsys``'s.
    band_gap_class, magnetic_class : BandGapClass, MagneticClass
        Property conditions.
    tags : dict, optional
        Fields set on every document (e.g. ``{"study": "paper-746", "study_batch": 3}``).
    progress : callable, optional
        Called with the number of network evaluations done, for progress bars.

    Returns
    -------
    list of CandidateDoc
        One per sample, decoding failures included (with ``decode_error``); not stored.
    """
    from pccd_flows.model.generate import generate

    model, codec, payload = load_generator(checkpoint)
    conditions = GenerationConditions(elements=tuple(chemsys.replace(",", "-").split("-")), composition=composition,
                                      band_gap_class=band_gap_class, magnetic_class=magnetic_class)
    crystals = generate(model, codec, payload, conditions, n, seed, sampler or SamplerSettings(), progress=progress)
    return [CandidateDoc.from_generated(crystal).model_copy(update=tags or {}) for crystal in crystals]
