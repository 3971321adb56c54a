"""The DFT validation as a jobflow Flow: one job per candidate, so a LaunchPad spreads them over CPU nodes."""

from __future__ import annotations

from dataclasses import dataclass, field

from jobflow import Flow, Maker, job

from pccd_flows.validation.dft import DftValidationSettings


@job
def dft_check_job(candidate_id: str, settings: DftValidationSettings, retry_failed: bool = False) -> dict:
    """Check one candidate from the worker's candidate store and store the result on it."""
    from pccd_flows.validation.dft import validate_candidates

    settings = settings if isinstance(settings, DftValidationSettings) else DftValidationSettings(**settings)
    doc = validate_candidates([candidate_id], settings, retry_failed=retry_failed)[0]
    return doc.dft_check.model_dump(mode="json")


@dataclass
class DftValidationMaker(Maker):
    """GPAW PBE energy above hull of judged candidates, against their decomposition products.

    Parameters
    ----------
    name
        Name of the flow.
    settings
        Protocol and GPAW settings (:class:`~pccd_flows.validation.dft.DftValidationSettings`).
    retry_failed
        Recompute candidates whose stored check failed.
    """

    name: str = "dft validation"
    settings: DftValidationSettings = field(default_factory=DftValidationSettings)
    retry_failed: bool = False

    def make(self, candidate_ids: list[str]) -> Flow:
        """One job per candidate id; each reads the candidate from the store and writes its result back."""
        jobs = []
        for candidate_id in candidate_ids:
            check = dft_check_job(candidate_id, self.settings, self.retry_failed)
            check.name = f"dft check {candidate_id}"
            jobs.append(check)
        return Flow(jobs, name=self.name)
