"""Pixel-level metrics in the conventions of the papers, with optional mask.

* L1: PATN's (``getMetrics_market.py``: mean absolute error in [-1, 1] units) and GFLA's ``compare_l1``
  (mean absolute error of [0, 1] images: exactly half of PATN's);
* PSNR: GFLA's (skimage ``compare_psnr`` of [0, 1] RGB, ``data_range=1``) and PoNA's ``tool/Psnr.py``
  (the Y channel of PIL's ``convert('YCbCr')``, MAX 255).

All take uint8 H×W×3 arrays, exactly what the evaluation reads from disk.
"""
from __future__ import annotations

import numpy as np

from .ssim import apply_mask

#: Per-image PSNR cap: identical images have infinite PSNR, which would make the mean infinite too.
PSNR_CAP_DB = 100.0

#: L1 conventions: the value range the absolute errors are measured in.
L1_RANGES = {"[-1,1]": "PATN getMetrics_*.py: mean |2(r/255-.5) - 2(g/255-.5)|, i.e. [-1,1] units",
             "[0,1]": "GFLA script/metrics.py compare_l1: mean |r/255 - g/255|, i.e. [0,1] units"}
#: PSNR conventions.
PSNR_KINDS = {"rgb": f"GFLA: skimage PSNR of [0,1] RGB, data_range 1, per image, capped at {PSNR_CAP_DB:g} dB, mean",
              "y": f"PoNA tool/Psnr.py: Y channel of PIL convert('YCbCr') (uint8), MAX 255, per image, capped at "
                   f"{PSNR_CAP_DB:g} dB (the script prints 0 for identical images), mean"}


def l1(gen: np.ndarray, ref: np.ndarray, mask: np.ndarray | None = None, value_range: str = "[-1,1]") -> float:
    """Mean absolute error in ``value_range`` units: ``"[-1,1]"`` PATN's L1 (mean ``|2(r/255 - .5) -
    2(g/255 - .5)|``), ``"[0,1]"`` GFLA's ``compare_l1`` (mean ``|r/255 - g/255|``)."""
    if gen.shape != ref.shape:
        raise ValueError(f"L1 needs images of one size, got {gen.shape} and {ref.shape}")
    if value_range not in L1_RANGES:
        raise ValueError(f"unknown L1 range {value_range!r} (one of {', '.join(L1_RANGES)})")
    g = apply_mask(gen, mask).astype(np.float64)
    r = apply_mask(ref, mask).astype(np.float64)
    if value_range == "[0,1]":
        return float(np.mean(np.abs(r / 255.0 - g / 255.0)))
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


def luma(image: np.ndarray) -> np.ndarray:
    """The Y channel of PIL's RGB → YCbCr conversion (uint8, what PoNA's ``get_yuv`` reads)."""
    from PIL import Image

    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).convert("YCbCr"))[..., 0]


def psnr_y(gen: np.ndarray, ref: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PoNA's PSNR (``tool/Psnr.py``): ``-10 log10(MSE_Y / 255²)`` on the Y channel of PIL's YCbCr.

    Capped at :data:`PSNR_CAP_DB` for identical images (the script prints 0 there, which would lower the mean
    for a perfect image).
    """
    if gen.shape != ref.shape:
        raise ValueError(f"PSNR needs images of one size, got {gen.shape} and {ref.shape}")
    g = luma(apply_mask(gen, mask)).astype(np.float64)
    r = luma(apply_mask(ref, mask)).astype(np.float64)
    mse = float(np.mean((g - r) ** 2))
    if mse <= 255.0 ** 2 * 10.0 ** (-PSNR_CAP_DB / 10.0):
        return PSNR_CAP_DB
    return float(-10.0 * np.log10(mse / 255.0 ** 2))


def psnr_of_kind(gen: np.ndarray, ref: np.ndarray, kind: str, mask: np.ndarray | None = None) -> float:
    """The PSNR of convention ``kind`` (a key of :data:`PSNR_KINDS`)."""
    if kind == "y":
        return psnr_y(gen, ref, mask)
    if kind == "rgb":
        return psnr(gen, ref, mask)
    raise ValueError(f"unknown PSNR kind {kind!r} (one of {', '.join(PSNR_KINDS)})")
