"""Errors raised when a crystal or a tensor cannot be translated; each names the offending structure."""

from __future__ import annotations


class CodecError(ValueError):
    """A structure or tensor that the point-cloud codec cannot translate."""

    reason = "codec error"

    def __init__(self, message: str, source: str | None = None):
        self.source = source
        super().__init__(f"{source}: {message}" if source else message)


class TooManyElementsError(CodecError):
    reason = "too many elements"


class TooManySitesError(CodecError):
    reason = "too many sites"


class PartialOccupancyError(CodecError):
    reason = "partial occupancy"


class UnknownSpeciesError(CodecError):
    reason = "unknown species"


class MalformedStructureError(CodecError):
    reason = "malformed structure"


class InvalidTensorError(CodecError):
    reason = "invalid tensor"
