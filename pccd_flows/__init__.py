"""pccd-flows: point-cloud crystal diffusion (PCCD) as Materials Project screening workflows."""

__version__ = "0.1.0"
