"""Figures as uint8 RGB arrays: panels, grids, skeleton overlays, attention masks, the 5-panel test strip.

Why arrays and no matplotlib: the figures are written by CLI commands and the web demo, which must not
depend on a plotting stack or a display; PIL draws the few labels we need.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .data.keypoints import missing_mask
from .io import tensor_range_to_image
from .skeleton import LIMB_COLORS, LIMBS

#: Anchor colours of the viridis colour map (0 → dark purple, 1 → yellow), interpolated linearly.
_VIRIDIS = np.array([
    (68, 1, 84), (72, 40, 120), (62, 74, 137), (49, 104, 142), (38, 130, 142), (31, 158, 137),
    (53, 183, 121), (109, 205, 89), (180, 222, 44), (253, 231, 37),
], dtype=np.float64)


def to_uint8(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """A 3×H×W image in [-1, 1] (tensor or array, batch dim of 1 allowed) → uint8 H×W×3."""
    if isinstance(image, torch.Tensor):
        image = image.detach().float().cpu().numpy()
    image = np.asarray(image)
    if image.ndim == 4:
        image = image[0]
    if image.dtype == np.uint8 and image.shape[-1] == 3:
        return image
    return tensor_range_to_image(image)


def batch_to_uint8(images: torch.Tensor) -> torch.Tensor:
    """B×3×H×W in [-1, 1] → B×3×H×W uint8 tensor (for image grids): :func:`to_uint8` per image."""
    arrays = images.detach().float().cpu().numpy()
    return torch.from_numpy(np.stack([tensor_range_to_image(a) for a in arrays])).permute(0, 3, 1, 2).contiguous()


def colormap(values: np.ndarray, vmin: float = 0.0, vmax: float = 1.0) -> np.ndarray:
    """Map an H×W float array to viridis colours (uint8 H×W×3) on the fixed scale [vmin, vmax]."""
    v = np.clip((np.asarray(values, dtype=np.float64) - vmin) / max(vmax - vmin, 1e-12), 0.0, 1.0)
    pos = v * (len(_VIRIDIS) - 1)
    lo = np.floor(pos).astype(int).clip(0, len(_VIRIDIS) - 2)
    frac = (pos - lo)[..., None]
    rgb = _VIRIDIS[lo] * (1 - frac) + _VIRIDIS[lo + 1] * frac
    return np.rint(rgb).astype(np.uint8)


#: PIL filters by name (``resize``'s ``resample``; an input contract's ``image_resize``)
RESAMPLE = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "nearest": Image.NEAREST}


def resize(image: np.ndarray, size: tuple[int, int], nearest: bool = False, resample: str = "bicubic") -> np.ndarray:
    """Resize a uint8 image to (H, W) with PIL (``resample``: bicubic, bilinear or nearest); unchanged if equal."""
    if image.shape[:2] == tuple(size):
        return image
    method = Image.NEAREST if nearest else RESAMPLE[resample]
    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize((size[1], size[0]), method))


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Integer nearest-neighbour enlargement (keeps pixels visible in small Market images)."""
    if factor <= 1:
        return image
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def draw_skeleton(keypoints: np.ndarray, size: tuple[int, int] | None = None,
                  canvas: np.ndarray | None = None, thickness: int | None = None) -> np.ndarray:
    """The one skeleton drawer: uint8 RGB (H, W, 3), on ``canvas`` (a copy) or on black of ``size``.

    Limbs in OpenPose's colours (:data:`posetransfer.skeleton.LIMB_COLORS`), a dot on every present joint;
    missing joints and the limbs touching them are left out.
    """
    if canvas is None:
        if size is None:
            raise ValueError("draw_skeleton needs size or canvas")
        canvas = np.zeros((*size, 3), dtype=np.uint8)
    h, w = canvas.shape[:2]
    thickness = thickness or max(1, round(min(h, w) / 40))
    img = Image.fromarray(np.ascontiguousarray(canvas))
    draw = ImageDraw.Draw(img)
    kp = np.asarray(keypoints)
    miss = missing_mask(kp)
    for (a, b), colour in zip(LIMBS, LIMB_COLORS):
        if miss[a] or miss[b]:
            continue
        draw.line([(kp[a, 1], kp[a, 0]), (kp[b, 1], kp[b, 0])], fill=colour, width=thickness)
    r = thickness
    for j in np.nonzero(~miss)[0]:
        y, x = kp[j]
        draw.ellipse([x - r, y - r, x + r, y + r], fill=LIMB_COLORS[j % len(LIMB_COLORS)])
    return np.asarray(img)


def heatmaps_to_image(maps: np.ndarray) -> np.ndarray:
    """Visualise (18, H, W) heatmaps as one uint8 RGB image (max over joints, coloured per joint)."""
    n = maps.shape[0]
    colours = np.array(LIMB_COLORS[:n] if n <= len(LIMB_COLORS) else LIMB_COLORS * (n // 19 + 1))[:n]
    weighted = maps[:, :, :, None] * colours[:, None, None, :]
    return np.clip(weighted.max(axis=0), 0, 255).astype(np.uint8)


def pose_image(keypoints: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The skeleton on black, as in the official test strips."""
    return draw_skeleton(keypoints, size=size)


def skeleton_overlay(image: np.ndarray, keypoints: np.ndarray, dim: float = 0.5) -> np.ndarray:
    """The skeleton drawn over a dimmed copy of ``image`` (to check that a pose fits the photo)."""
    base = (image.astype(np.float32) * (1 - dim)).astype(np.uint8) if dim else image
    return draw_skeleton(keypoints, canvas=base)


def hstack(panels: Sequence[np.ndarray], gap: int = 2, background: int = 255) -> np.ndarray:
    """Panels side by side (top-aligned), ``gap`` pixels apart."""
    height = max(p.shape[0] for p in panels)
    width = sum(p.shape[1] for p in panels) + gap * (len(panels) - 1)
    out = np.full((height, width, 3), background, dtype=np.uint8)
    x = 0
    for p in panels:
        out[:p.shape[0], x:x + p.shape[1]] = p
        x += p.shape[1] + gap
    return out


def grid(images: Sequence[np.ndarray], ncols: int, gap: int = 2, background: int = 255) -> np.ndarray:
    """Images (same size) in rows of ``ncols``."""
    if not images:
        raise ValueError("grid of no images")
    rows = [hstack(images[i:i + ncols], gap, background) for i in range(0, len(images), ncols)]
    width = max(r.shape[1] for r in rows)
    height = sum(r.shape[0] for r in rows) + gap * (len(rows) - 1)
    out = np.full((height, width, 3), background, dtype=np.uint8)
    y = 0
    for r in rows:
        out[y:y + r.shape[0], :r.shape[1]] = r
        y += r.shape[0] + gap
    return out


def label(image: np.ndarray, text: str, height: int = 14) -> np.ndarray:
    """``image`` with ``text`` written in a white band above it."""
    band = Image.new("RGB", (image.shape[1], height), (255, 255, 255))
    draw = ImageDraw.Draw(band)
    font = ImageFont.load_default()
    draw.text((2, 1), text, fill=(0, 0, 0), font=font)
    return np.concatenate([np.asarray(band), image], axis=0)


def mask_to_image(mask: torch.Tensor | np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """One attention mask (C×h×w or h×w, values in [0, 1]) → colour image of ``size``: channel mean, viridis.

    The papers show the masks on a fixed 0–1 scale (Fig. 5 / Fig. 10), so no per-mask normalisation.
    """
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().float().cpu().numpy()
    mask = np.asarray(mask, dtype=np.float64)
    while mask.ndim > 2:
        mask = mask.mean(axis=0)
    return resize(colormap(mask), size, nearest=True)


def attention_figure(source: np.ndarray, target_pose: np.ndarray, masks: Sequence, output: np.ndarray,
                     scale: int = 2, labels: bool = True) -> np.ndarray:
    """The papers' Fig. 5: source | target pose | mask of block 1..T | output, in one row.

    ``source``, ``target_pose`` and ``output`` are uint8 H×W×3 at model size; ``masks`` one C×h×w (or
    B=1×C×h×w) tensor per block.
    """
    size = source.shape[:2]
    panels = [("source", source), ("target pose", target_pose)]
    for i, m in enumerate(masks, start=1):
        if isinstance(m, torch.Tensor) and m.ndim == 4:
            m = m[0]
        panels.append((f"block {i}", mask_to_image(m, size)))
    panels.append(("output", output))
    images = [upscale(p, scale) for _, p in panels]
    if labels:
        images = [label(img, name) for (name, _), img in zip(panels, images)]
    return hstack(images)


def test_strip(source: np.ndarray, source_keypoints: np.ndarray, target: np.ndarray,
               target_keypoints: np.ndarray, generated: np.ndarray) -> np.ndarray:
    """The official 5-panel strip [source | source pose | target | target pose | generated], no gaps.

    Same layout as PATN's ``*_vis.jpg`` test images, which ``posetransfer eval`` can cut back apart.
    """
    size = source.shape[:2]
    return hstack([source, pose_image(source_keypoints, size), target, pose_image(target_keypoints, size),
                   generated], gap=0)
