"""Other judges of the same candidates: relax the generated structure with another force field, judge it on that
force field's own hull, and keep the verdict beside the first (``CandidateDoc.judgements``) for the DFT comparison."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pccd_flows.schemas.candidate import CandidateDoc
from pccd_flows.stability.engines import FORCE_FIELD_MODELS, RelaxSettings, check_engine, run_force_field
from pccd_flows.stability.entries import entry_from_force_field_doc


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
    from pccd_flows.stability.assess import hull_calculators
    from pccd_flows.stores.candidates import CandidateStore

    engine = check_engine(engine)
    candidates = CandidateStore(store)
    # one query: a get per candidate costs a second each on an embedded store
    found = {d.candidate_id: d for d in candidates.find({"candidate_id": {"$in": list(candidate_ids)}})}
    docs = [found.get(c) for c in candidate_ids]
    todo = [d for d in docs if d is not None and engine not in d.judgements and d.structure]
    calculators = hull_calculators([d.chemsys for d in todo], reference, engine) if todo else {}
    done = {}

    def record(doc: CandidateDoc, outcome) -> None:
        if outcome.ok:
            entry = entry_from_force_field_doc(outcome.task_doc, engine, entry_id=doc.candidate_id)
            stability = calculators[doc.chemsys].stability(entry)
            doc = doc.model_copy(update={"judgements": {**doc.judgements, engine: stability}})
            candidates.patch({doc.candidate_id: {"judgements": doc.judgements}})
        done[doc.candidate_id] = doc
        if progress:
            progress(1)

    # one call: the potential loads once; each verdict is stored as its relaxation finishes
    pending = iter(todo)
    run_force_field([d.generated_structure() for d in todo], engine, relax,
                    progress=lambda outcome: record(next(pending), outcome))
    return [done.get(d.candidate_id, d) for d in docs if d is not None]


def judge_label(engine: str) -> str:
    return f"{engine} ({FORCE_FIELD_MODELS.get(engine, engine)})"
