"""LPIPS and mask-LPIPS over uint8 image pairs (GFLA ``script/metrics.py`` convention).

Images are scaled with ``x / 127.5 - 1``; mask-LPIPS multiplies both scaled images by the target-pose mask,
so the background becomes 0 (mid grey), exactly as GFLA's ``calculate_mask_lpips``. The network and where
its weights came from are resolved by :mod:`posetransfer.weights.lpips`.

Variants: ``"standard"`` is the published LPIPS v0.1 AlexNet (needs torchvision's AlexNet weights);
``"shift-tolerant"`` is ST-LPIPS (shipped offline by stlpips-pytorch; a *different* metric, reported under its
own keys ``st_lpips`` / ``mask_st_lpips``); ``"auto"`` is the standard one when its weights are found, else
ST-LPIPS (:attr:`LPIPSMetric.is_standard` says which).
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch

VARIANTS = ("auto", "standard", "shift-tolerant")


def to_signed_tensor(images: Sequence[np.ndarray]) -> torch.Tensor:
    """uint8 H×W×3 arrays → float N×3×H×W in [-1, 1]."""
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()
    return batch / 127.5 - 1.0


class LPIPSMetric:
    """Callable: ``metric(gen_images, ref_images, masks=None) -> (N,) float64 distances``."""

    def __init__(self, weights: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                 variant: str = "auto") -> None:
        from ..weights import lpips as W

        if variant == "auto":
            self.model, self.source = W.build_lpips(weights)
        elif variant == "standard":
            self.model, self.source = W.build_standard_lpips(weights)
        elif variant == "shift-tolerant":
            self.model, self.source = W.build_st_lpips()
        else:
            raise ValueError(f"unknown LPIPS variant {variant!r} (one of {', '.join(VARIANTS)})")
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

    @torch.inference_mode()
    def plain_and_masked(self, gen: Sequence[np.ndarray], ref: Sequence[np.ndarray],
                         masks: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """LPIPS and mask-LPIPS of the same pairs in one network pass (the masked pairs are appended to the
        batch: the two formulas share no features, but one pass of 4N images beats four of N)."""
        a = to_signed_tensor(gen)
        b = to_signed_tensor(ref)
        m = torch.from_numpy(np.stack(masks).astype(np.float32))[:, None]
        out = self.model(torch.cat([a, a * m]).to(self.device), torch.cat([b, b * m]).to(self.device))
        out = out.double().cpu().numpy()
        return out[:len(a)], out[len(a):]
