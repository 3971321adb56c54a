"""Stability job: energy above hull of a relaxed batch against the chosen reference phases, stored."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from jobflow import Maker, job
from maggma.core import Store

from pccd_flows.pipeline.judge import JudgedCandidates
from pccd_flows.schemas.candidate import CandidateDoc

logger = logging.getLogger(__name__)


@dataclass
class StabilityMaker(Maker):
    """Place relaxed candidates on the hull of their reference phases and judge their relaxed novelty.

    A thin wrapper of :func:`pccd_flows.pipeline.judge_candidates`. A chemical system without references is
    recorded in the output's ``reference_errors`` (the job completes; the commands exit non-zero at the end).

    Parameters
    ----------
    name : str
        The job's name.
    reference : str, optional
        Reference phases (default: the configured ``reference``).
    engine : str
        The engine the candidates were relaxed with (reference energies are computed with it).
    relaxed_novelty : bool
        Also judge the relaxed structures' novelty against MP.
    confirm_with : str, optional
        Force fields that must agree (comma-separated, ``none`` for none; default: the configured ones): each
        relaxes the candidates under ``confirm_below`` too, and the verdict is the highest E_hull.
    confirm_below : float, optional
        eV/atom; default: the configured one.
    confirm_from : str, optional
        ``generated`` or ``relaxed``: what the confirming force fields relax; default: the configured one.
    store : Store, optional
        The candidate store.
    """

    name: str = "judge stability"
    reference: str | None = None
    engine: str = "chgnet"
    relaxed_novelty: bool = True
    confirm_with: str | None = None
    confirm_below: float | None = None
    confirm_from: str | None = None
    store: Store | None = None

    @job
    def make(self, candidates: list[CandidateDoc]) -> JudgedCandidates:
        """Judge and store the relaxed ones among ``candidates``; returns all of them and any reference errors."""
        from pccd_flows.pipeline.judge import judge_candidates, write_judgements

        result = judge_candidates(candidates, self.reference, self.engine, relaxed_novelty=self.relaxed_novelty,
                                  confirm_with=self.confirm_with, confirm_below=self.confirm_below,
                                  confirm_from=self.confirm_from)
        write_judgements(self.store, [d for d in result.candidates if d.relaxation is not None
                                       and d.chemsys not in result.reference_errors])
        for chemsys, error in result.reference_errors.items():
            logger.warning("no hull for %s: %s", chemsys, error)
        for candidate, error in result.confirmation_errors.items():
            logger.warning("%s judged without confirmation: %s", candidate, error)
        return result
