"""The screening pipeline, once, for every command: generate -> prefilter -> relax a chunk -> judge -> store.

Plain typed functions (like atomate2's ``common/``), with no workflow manager in them. The jobflow Makers of
:mod:`pccd_flows.makers` are thin wrappers of these functions, and ``pccd screen``, ``pccd study``, ``pccd ehull`` and
the case studies all run through them, so a fix lands once.

One behaviour everywhere:

- **Relaxations run in chunks** with the potential loaded once per chunk (:func:`relax_candidates`).
- **A failed relaxation** is recorded on its candidate (``relaxation.error``) and the others of the chunk go on. It
  is final for those settings: a re-run or a resume with the same relaxation settings does not retry it (a force
  field fails the same way again); other settings relax it again (:func:`needs_relaxation`). A relaxation that never
  finished (its job or process was killed) recorded nothing and is run again.
- **A reference error** (no hull for a chemical system) is recorded in the judge's output
  (:class:`JudgedCandidates`), its candidates stay unjudged, the other systems are judged, and the command exits
  non-zero at the end.
- **The candidate store** is the record of what is done: every step writes its candidates as it finishes them.
"""

from pccd_flows.pipeline.generate import generate_candidates, load_generator
from pccd_flows.pipeline.judge import JudgedCandidates, judge_candidates, needs_judging, unjudged_reasons
from pccd_flows.pipeline.prefilter import PrefilterSettings, prefilter, prefilter_against_store
from pccd_flows.pipeline.relax import (
    chunked,
    needs_relaxation,
    relax_candidates,
    relax_structures,
    relaxation_settings,
    with_relaxation,
)

__all__ = ["JudgedCandidates", "PrefilterSettings", "chunked", "generate_candidates", "judge_candidates",
           "load_generator", "needs_judging", "needs_relaxation", "prefilter", "prefilter_against_store", "relax_candidates",
           "relax_structures", "relaxation_settings", "unjudged_reasons", "with_relaxation"]
