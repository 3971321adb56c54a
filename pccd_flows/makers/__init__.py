"""jobflow Makers (atomate2 style) that compose the PCCD screening: generate, prefilter, relax, judge, store."""

from pccd_flows.makers.followup import FollowUpCandidatesMaker, FollowUpFlowMaker
from pccd_flows.makers.generate import GenerateCandidatesMaker
from pccd_flows.makers.prefilter import PrefilterMaker
from pccd_flows.makers.relax import RelaxCandidatesMaker
from pccd_flows.makers.screening import ScreeningFlowMaker
from pccd_flows.makers.stability import StabilityMaker

__all__ = ["FollowUpCandidatesMaker", "FollowUpFlowMaker", "GenerateCandidatesMaker", "PrefilterMaker", "RelaxCandidatesMaker", "ScreeningFlowMaker",
           "StabilityMaker"]
