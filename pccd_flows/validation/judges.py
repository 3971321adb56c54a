"""Other judges of the same candidates: relax the generated structure with another force field, judge it on that
force field's own hull, and keep the verdict beside the first (``CandidateDoc.judgements``) for the DFT comparison."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from pccd_flows.schemas.candidate import CandidateDoc
from pccd_flows.stability.engines import FORCE_FIELD_MODELS, RelaxSettings, check_engine


def rejudge(candidate_ids: Sequence[str], engine: str, relax: RelaxSettings, reference: str = "mp-structures",
            store=None, progress: Callable[[int], None] | None = None) -> list[CandidateDoc]:
    """Store ``engine``'s E_hull on each candidate (skipped where already there); errors are recorded as missing.

    Parameters
    ----------
    candidate_ids
        Candidates of the store, relaxed from their generated structure as the screening does.
    engine
        A force-field engine (``chgnet``, ``sevennet``, ``sevennet-l3i5``).
    relax
        The relaxation settings (those of the study being checked, so the judges differ only by the potential).
    """
    from pccd_flows.pipeline.judge import confirm_candidates
    from pccd_flows.stores.candidates import CandidateStore

    engine = check_engine(engine)
    candidates = CandidateStore(store)
    # one query: a get per candidate costs a second each on an embedded store
    found = {d.candidate_id: d for d in candidates.find({"candidate_id": {"$in": list(candidate_ids)}})}
    docs = [found[c] for c in candidate_ids if c in found]
    todo = [d for d in docs if engine not in d.judgements and d.structure]
    # the screening's own confirmation, with every candidate in the window and the study's relaxation settings;
    # only the new verdict is stored (the first judge's stays the candidate's, for the comparison)
    todo = [d.model_copy(update={"relaxation": d.relaxation.model_copy(update={"steps": relax.steps,
                                                                                "fmax": relax.fmax})})
            for d in todo if d.relaxation is not None]
    confirmed, _, _ = confirm_candidates(
        todo, [engine], math.inf, reference, progress=progress,
        on_result=lambda d: candidates.patch({d.candidate_id: {"judgements": {
            **found[d.candidate_id].judgements, engine: d.judgements[engine]}}}))
    judged = {d.candidate_id: found[d.candidate_id].model_copy(
        update={"judgements": {**found[d.candidate_id].judgements, engine: d.judgements[engine]}})
        for d in confirmed if engine in d.judgements}
    return [judged.get(d.candidate_id, d) for d in docs]


def judge_label(engine: str) -> str:
    return f"{engine} ({FORCE_FIELD_MODELS.get(engine, engine)})"
