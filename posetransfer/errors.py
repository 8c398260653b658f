"""Typed errors raised by the library.

Why: the CLI promises a one-line message naming the file and the problem, never a traceback from deep
inside torch. Library code raises one of these with that message; ``posetransfer.cli`` prints
``error: <message>`` on stderr and exits with code 2.
"""
from __future__ import annotations


class PosetransferError(Exception):
    """Base class: the message must be one line that names the file/row and the problem."""


class DataError(PosetransferError):
    """A dataset file (image, annotation CSV, pairs CSV, keypoints JSON) is missing or malformed."""


class CheckpointError(PosetransferError):
    """A checkpoint cannot be read, is corrupt, or holds another architecture than asked for."""


class ModelError(PosetransferError):
    """A model was asked for with an unknown name or inconsistent options."""


class ConfigError(PosetransferError):
    """A preset or an override is unknown or has the wrong type."""


class PoseError(PosetransferError):
    """Pose estimation failed (no person found, estimator unavailable)."""


class WeightsUnavailable(PosetransferError):
    """Pretrained weights (VGG-19, Inception, LPIPS, detectors) are not present and cannot be downloaded."""


class TrainingError(PosetransferError):
    """Training had to stop (non-finite loss, ...); the last good checkpoint is kept."""


class OutputError(PosetransferError):
    """An output cannot be written: disk full, read-only folder, a file where a folder is expected (or the
    reverse), a symlink loop. Nothing half-written is left in its place."""
