"""Exceptions that retbench raises for problems a user can fix.

Each carries a message that says what was wrong, where, and how to fix it; the CLI
prints it without a traceback.
"""

from __future__ import annotations


class RetbenchError(Exception):
    """Base class: a user-facing problem (bad input, missing weights, ...)."""


class DatasetError(RetbenchError):
    """The dataset folder or its list file is invalid (message lists every problem found)."""


class BadImagesError(RetbenchError):
    """Some images could not be decoded; ``bad`` lists them all.

    Attributes:
        bad: one :class:`retbench.datasets.BadImage` per unreadable image.
    """

    def __init__(self, message: str, bad: list) -> None:
        super().__init__(message)
        self.bad = bad


class EncoderError(RetbenchError):
    """Unknown encoder spec, or an encoder that cannot be built as asked."""


class WeightsUnavailableError(EncoderError):
    """Pretrained weights are neither cached locally nor downloadable."""


class EmbeddingError(RetbenchError):
    """Extraction produced unusable output (e.g. non-finite features)."""
