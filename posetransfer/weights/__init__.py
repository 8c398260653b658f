"""Where pretrained networks come from — resolved in one place.

Order for every network: an explicit path given by the user, then the torch hub cache (what
torchvision / pytorch-fid / lpips download there when the user has internet), then an offline fallback
shipped inside an installed package (if the metric or loss has one). What was used is logged once and
returned as a :class:`WeightsSource` so it can be written into results and run summaries.

Submodules: ``vgg`` (perceptual/style losses), ``inception`` (FID, IS), ``lpips`` (LPIPS),
``detector`` (detection score).
"""
from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

log = logging.getLogger("posetransfer.weights")


@dataclass(frozen=True)
class WeightsSource:
    """What a pretrained network was loaded from; ``kind`` is 'path', 'hub-cache', 'package' or 'random'."""

    network: str
    kind: str
    location: str
    note: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


_announced: set[tuple[str, str, str]] = set()


def announce(source: WeightsSource, warning: bool = False) -> WeightsSource:
    """Log the source once per process (a fallback is a warning)."""
    key = (source.network, source.kind, source.location)
    if key not in _announced:
        _announced.add(key)
        message = f"{source.network}: using {source.kind} weights from {source.location}"
        if source.note:
            message += f" ({source.note})"
        (log.warning if warning else log.info)(message)
    return source


def hub_checkpoint_dir() -> Path:
    """The torch hub checkpoint cache (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def find_in_hub_cache(filename: str) -> Path | None:
    """Return the cached file if torchvision/pytorch-fid already downloaded it, else None (no download)."""
    candidate = hub_checkpoint_dir() / filename
    return candidate if candidate.is_file() else None


def env_path(variable: str) -> Path | None:
    value = os.environ.get(variable)
    return Path(value) if value else None


def first_line(exc: BaseException) -> str:
    """Library exceptions (torch unpickling) can span many lines; our messages must stay one line."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


def read_state_dict(path: Path, what: str = "weights") -> dict:
    """A state dict read without running pickled code (``weights_only=True``); any failure is one
    :class:`~posetransfer.errors.WeightsUnavailable` line naming the file."""
    from ..errors import WeightsUnavailable

    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not a usable file"
        raise WeightsUnavailable(f"{path}: cannot read {what} ({exc.__class__.__name__}: {first_line(exc)})") from None
    if not isinstance(state, dict):
        raise WeightsUnavailable(f"{path}: expected a state dict")
    return state
