"""The one way a device name (``--device``, ``train.device``) becomes a ``torch.device``.

Why one function: the trainer, the benchmark, the evaluation and the inference commands used to check
device names each their own way, raising different errors (or torch's multi-line RuntimeError from deep
inside the first ``.to()``). Here every name gets the same one-line :class:`ConfigError`.

Defaults, chosen per command and kept from before: ``train`` runs on ``auto`` (its presets' ``train.device``:
CUDA when there is a GPU — a training run on the CPU by accident costs days); every other command
(``transfer``, ``animate``, ``evaluate``, ``bench``, ...) defaults to ``cpu``, so the same command writes the
same files and figures on any machine unless a GPU is asked for (``--device cuda`` or ``--device auto``).
"""
from __future__ import annotations

import torch

from .errors import ConfigError


def resolve_device(name: str = "auto", local_rank: int | None = None, flag: str = "--device") -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda``, ``cuda:N``, ``mps`` → ``torch.device``.

    ``local_rank`` (torchrun) picks the GPU of a plain ``cuda``/``auto``; a malformed name or a device that
    is not there is a one-line :class:`ConfigError` naming ``flag``.
    """
    text = str(name).strip()
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(text)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"{flag} {name!r} is not a device (auto, cpu, cuda, cuda:0, mps, ...)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{flag} {name}: no CUDA GPU is available")
        count = torch.cuda.device_count()
        if device.index is None and local_rank is not None:
            device = torch.device("cuda", local_rank % max(1, count))
        if device.index is not None and device.index >= count:
            raise ConfigError(f"{flag} {name}: only {count} CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{flag} {name}: MPS is not available")
    return device
