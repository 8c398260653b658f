"""SSIM in the two conventions found in the person-generation literature.

* **PATN / PG2 / Def-GAN** (``tool/getMetrics_*.py``, also GFLA's ``ssim_256``): scikit-image SSIM on 0–255
  RGB with a Gaussian window (sigma 1.5), population covariance, and the *generated* image's value span as
  ``data_range``. For DeepFashion the official script pads both images with 40 white columns on each side
  (176 → 256 wide) before SSIM and IS, which raises the score (GFLA issue #42: 0.773 padded vs ~0.67).
* **GFLA** (``script/metrics.py`` ``ssim``): uniform 51×51 window, sample covariance, ``data_range=1`` on
  [0, 1] images.

Mask-SSIM multiplies both uint8 images by the target-pose mask (background → black) before the PATN SSIM.
"""
from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity

#: White columns added on each side of DeepFashion images by the official PATN evaluation.
FASHION_PAD = 40


def add_white_border(image: np.ndarray, pad: int) -> np.ndarray:
    """PATN's ``addBounding``: ``pad`` white (255) columns left and right of an H×W×3 uint8 image."""
    if pad <= 0:
        return image
    return np.pad(image, ((0, 0), (pad, pad), (0, 0)), mode="constant", constant_values=255)


def apply_mask(image: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """``image * mask[..., None]`` in the image's dtype (PATN ``create_masked_image``)."""
    if mask is None:
        return image
    return image * mask[..., None].astype(image.dtype)


def ssim_patn(gen: np.ndarray, ref: np.ndarray, mask: np.ndarray | None = None, pad_white: int = 0) -> float:
    """PATN-convention SSIM of two uint8 H×W×3 images (mask applied first, then the white padding).

    ``data_range = gen.max() - gen.min()`` as in the official code; a constant generated image (span 0,
    where the official code divides 0 by 0) uses a span of 1 instead so the result stays finite.
    """
    if gen.shape != ref.shape:
        raise ValueError(f"SSIM needs images of one size, got {gen.shape} and {ref.shape}")
    gen = add_white_border(apply_mask(gen, mask), pad_white)
    ref = add_white_border(apply_mask(ref, mask), pad_white)
    span = float(gen.max()) - float(gen.min())
    return float(structural_similarity(
        ref, gen, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, channel_axis=2,
        data_range=span if span > 0 else 1.0,
    ))


def ssim_gfla(gen: np.ndarray, ref: np.ndarray, win_size: int = 51) -> float:
    """GFLA-convention SSIM: [0, 1] floats, uniform ``win_size`` window, ``data_range=1``.

    The window shrinks to the largest odd size that fits small images (Market is 64 wide, so 51 fits).
    """
    if gen.shape != ref.shape:
        raise ValueError(f"SSIM needs images of one size, got {gen.shape} and {ref.shape}")
    g = gen.astype(np.float32) / 255.0
    r = ref.astype(np.float32) / 255.0
    side = min(gen.shape[:2])
    win = min(win_size, side if side % 2 else side - 1)
    return float(structural_similarity(r, g, data_range=1.0, win_size=win, channel_axis=2))
