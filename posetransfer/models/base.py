"""What every generator returns and the base class they share.

Why a dataclass: every generator keeps the same positional call ``G(source_image, source_heatmaps,
target_heatmaps)``; the extras some architectures have (attention masks, flow fields, visibility maps,
relation maps) come back only when asked for with ``return_extras=True``, so callers that want just the
image never have to know which architecture they hold.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass
class GeneratorOutput:
    """``image``: B×3×H×W in [-1, 1]. The lists hold one entry per block / attention layer."""

    image: torch.Tensor
    attention: list[torch.Tensor] = field(default_factory=list)   # masks in [0, 1], B×C×h×w
    flows: list[torch.Tensor] = field(default_factory=list)       # B×2×h×w, pixel offsets (dx, dy)
    visibility: list[torch.Tensor] = field(default_factory=list)  # B×1×h×w in [0, 1]
    extras: dict[str, Any] = field(default_factory=dict)


class Generator(nn.Module):
    """Base class: subclasses implement :meth:`generate` and set ``arch`` (their registry name).

    ``config`` holds the keyword arguments the model was built with, so a checkpoint can rebuild it.
    """

    arch: str = ""
    #: how many pose channels each heatmap tensor has (18 for COCO-18)
    pose_channels: int = 18
    #: submodules that hold most of the inference memory at full resolution; the CPU fast path
    #: (``models.fast.optimize_for_inference``) runs them one sample at a time
    per_sample_modules: tuple[str, ...] = ()
    #: False where the inference fast path's rewrites were measured not to pay (small, many-op models: the
    #: layout changes and packed calls cost more than they save); the commands then run the model as it is
    #: (``models.fast.prepare_for_inference``), ``optimize_for_inference`` still applies them when called
    fast_path_pays: bool = True

    def __init__(self) -> None:
        super().__init__()
        self.config: dict[str, Any] = {}

    def generate(self, source_image: torch.Tensor, source_heatmaps: torch.Tensor,
                 target_heatmaps: torch.Tensor) -> GeneratorOutput:
        raise NotImplementedError

    def forward(self, source_image: torch.Tensor, source_heatmaps: torch.Tensor,
                target_heatmaps: torch.Tensor, return_extras: bool = False):
        out = self.generate(source_image, source_heatmaps, target_heatmaps)
        return out if return_extras else out.image


class AttentionMapGenerator(Generator):
    """A generator whose attention layers can keep their HW×HW maps (APATN, PoNA).

    Why a separate path: the maps are large (HW×HW per layer), so they are computed only when asked for
    (``generate`` or ``return_extras=True``); a plain call uses the fused attention and stores nothing.
    Subclasses implement ``_run(source_image, source_heatmaps, target_heatmaps, keep)``.
    """

    def _run(self, source_image: torch.Tensor, source_heatmaps: torch.Tensor, target_heatmaps: torch.Tensor,
             keep: bool) -> GeneratorOutput:
        raise NotImplementedError

    def generate(self, source_image, source_heatmaps, target_heatmaps) -> GeneratorOutput:
        return self._run(source_image, source_heatmaps, target_heatmaps, keep=True)

    def forward(self, source_image, source_heatmaps, target_heatmaps, return_extras: bool = False):
        out = self._run(source_image, source_heatmaps, target_heatmaps, keep=return_extras)
        return out if return_extras else out.image
