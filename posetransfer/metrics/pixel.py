"""Pixel-level metrics: PATN's L1 and PSNR (GFLA / structure-aware convention), with optional mask.

Both take uint8 H×W×3 arrays, exactly what the evaluation reads from disk.
"""
from __future__ import annotations

import numpy as np

from .ssim import apply_mask

#: Per-image PSNR cap: identical images have infinite PSNR, which would make the mean infinite too.
PSNR_CAP_DB = 100.0


def l1(gen: np.ndarray, ref: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PATN's L1: mean ``|2(r/255 - .5) - 2(g/255 - .5)|``, i.e. the mean absolute error in [-1, 1] units."""
    if gen.shape != ref.shape:
        raise ValueError(f"L1 needs images of one size, got {gen.shape} and {ref.shape}")
    g = apply_mask(gen, mask).astype(np.float64)
    r = apply_mask(ref, mask).astype(np.float64)
    return float(np.mean(np.abs(2.0 * (r / 255.0 - 0.5) - 2.0 * (g / 255.0 - 0.5))))


def psnr(gen: np.ndarray, ref: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PSNR in dB on [0, 1] RGB with ``data_range=1`` (skimage ``peak_signal_noise_ratio``, as GFLA).

    Mask-PSNR (structure-aware, Market) multiplies both images by the mask first and still averages over the
    whole image. Capped at :data:`PSNR_CAP_DB` for identical images.
    """
    if gen.shape != ref.shape:
        raise ValueError(f"PSNR needs images of one size, got {gen.shape} and {ref.shape}")
    g = apply_mask(gen, mask).astype(np.float64) / 255.0
    r = apply_mask(ref, mask).astype(np.float64) / 255.0
    mse = float(np.mean((g - r) ** 2))
    if mse <= 10.0 ** (-PSNR_CAP_DB / 10.0):
        return PSNR_CAP_DB
    return float(10.0 * np.log10(1.0 / mse))
