"""LPIPS and mask-LPIPS over uint8 image pairs (GFLA ``script/metrics.py`` convention).

Images are scaled with ``x / 127.5 - 1``; mask-LPIPS multiplies both scaled images by the target-pose mask,
so the background becomes 0 (mid grey), exactly as GFLA's ``calculate_mask_lpips``. The network and where
its weights came from are resolved by :mod:`posetransfer.weights.lpips`.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch

from ..weights.lpips import build_lpips


def to_signed_tensor(images: Sequence[np.ndarray]) -> torch.Tensor:
    """uint8 H×W×3 arrays → float N×3×H×W in [-1, 1]."""
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()
    return batch / 127.5 - 1.0


class LPIPSMetric:
    """Callable: ``metric(gen_images, ref_images, masks=None) -> (N,) float64 distances``."""

    def __init__(self, weights: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> None:
        self.model, self.source = build_lpips(weights)
        self.device = torch.device(device)
        self.model.to(self.device)

    @property
    def is_standard(self) -> bool:
        """True for the published LPIPS v0.1 AlexNet, False for the shift-tolerant fallback."""
        return self.source.network.startswith("LPIPS")

    @torch.inference_mode()
    def __call__(self, gen: Sequence[np.ndarray], ref: Sequence[np.ndarray],
                 masks: Sequence[np.ndarray] | None = None) -> np.ndarray:
        a = to_signed_tensor(gen)
        b = to_signed_tensor(ref)
        if masks is not None:
            m = torch.from_numpy(np.stack(masks).astype(np.float32))[:, None]
            a, b = a * m, b * m
        return self.model(a.to(self.device), b.to(self.device)).double().cpu().numpy()
