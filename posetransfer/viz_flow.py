"""Figures of the structure-aware part-flow model: flow fields and visibility maps per part, and the pyramid
non-local block's relation maps (the paper's Fig. 7). Both return uint8 RGB arrays (no matplotlib).

Flow colour code (the usual optical-flow wheel): hue = direction of the sampling offset (dx, dy), saturation
= its length relative to the largest offset drawn (``max_magnitude``, default: the figure's maximum), value
1 — so a zero flow (sample straight below) is white. Remember the convention: the colour at a *target*
pixel shows where in the *source* that pixel is taken from (flow.py docstring).

Relation map (Fig. 7): for one target cell i of the s×s pooled grid, row i of R = softmax(θᵀφ) shows how
strongly every cell contributes to it. The cell's image region is framed in red; the relation values are
drawn over the image with the viridis colour map, scaled by the row's maximum.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from .errors import ModelError
from .models.base import GeneratorOutput
from .viz import colormap, hstack, label, resize, to_uint8, upscale


def _array(x: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def flow_to_color(flow: torch.Tensor | np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """A 2×h×w flow (dx, dy) → uint8 h×w×3 on the colour wheel (see the module docstring)."""
    f = _array(flow)
    if f.ndim == 4:
        f = f[0]
    if f.ndim != 3 or f.shape[0] != 2:
        raise ModelError(f"a flow field must be 2×h×w, got shape {f.shape}")
    dx, dy = f[0], f[1]
    magnitude = np.hypot(dx, dy)
    scale = float(max_magnitude) if max_magnitude else float(magnitude.max())
    saturation = np.clip(magnitude / scale, 0.0, 1.0) if scale > 0 else np.zeros_like(magnitude)
    hue = (np.arctan2(-dy, -dx) / np.pi + 1.0) / 2.0            # [0, 1]
    return np.rint(_hsv_to_rgb(hue, saturation) * 255).astype(np.uint8)


def _hsv_to_rgb(hue: np.ndarray, saturation: np.ndarray) -> np.ndarray:
    """HSV (value 1) → RGB floats in [0, 1], h×w×3."""
    sector = hue * 6.0
    rgb = np.stack([np.clip(np.abs(sector - 3.0) - 1.0, 0, 1),          # red peaks at hue 0
                    np.clip(2.0 - np.abs(sector - 2.0), 0, 1),          # green at 1/3
                    np.clip(2.0 - np.abs(sector - 4.0), 0, 1)], axis=-1)  # blue at 2/3
    return 1.0 - saturation[..., None] * (1.0 - rgb)


def _gray(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    v = np.clip(values, 0.0, 1.0)
    return resize(np.repeat(np.rint(v * 255).astype(np.uint8)[..., None], 3, axis=2), size, nearest=True)


def flow_figure(output: GeneratorOutput, source_image: torch.Tensor | np.ndarray | None = None,
                target_image: torch.Tensor | np.ndarray | None = None, index: int = 0,
                scale: int | None = None, labels: bool = True) -> np.ndarray:
    """Flow fields and visibility maps of every part (and scale) of one sample, as one uint8 image.

    Top row: source | flow of each entry of ``output.flows`` (colour wheel, one common magnitude scale) |
    the source warped part by part (``extras["warped"]``). Bottom row: target (if given) | visibility map
    of each flow (white = taken from the source, black = generated from the pose) | the generated image.
    ``source_image`` / ``target_image``: 3×H×W (or B×3×H×W, ``index`` picked) in [-1, 1], or uint8 H×W×3.
    ``scale``: integer enlargement (default: 2 for images under 200 px high, e.g. Market).
    """
    if not output.flows:
        raise ModelError("this generator output has no flow fields (not a flow model?)")
    image = output.image[index] if output.image is not None else None
    h, w = (image.shape[1:] if image is not None else output.flows[0].shape[2:])
    size = (int(h), int(w))
    names = output.extras.get("flow_names") or [f"flow {i}" for i in range(len(output.flows))]
    flows = [_array(f[index]) for f in output.flows]
    # common magnitude scale in *image* pixels so coarse and fine flows are comparable
    factors = [size[1] / f.shape[2] for f in flows]
    max_mag = max(float(np.hypot(f[0], f[1]).max()) * k for f, k in zip(flows, factors)) or 1.0
    blank = np.full((*size, 3), 255, dtype=np.uint8)

    def pick(img) -> np.ndarray:
        if img is None:
            return blank
        if isinstance(img, torch.Tensor) and img.dim() == 4:
            img = img[index]
        elif isinstance(img, np.ndarray) and img.ndim == 4:
            img = img[index]
        return resize(to_uint8(img), size)

    top = [("source", pick(source_image))]
    bottom = [("target", pick(target_image))]
    for name, flow, k, vis in zip(names, flows, factors, output.visibility or [None] * len(flows)):
        top.append((name, resize(flow_to_color(flow, max_mag / k), size, nearest=True)))
        bottom.append(("visible" if vis is not None else "", _gray(_array(vis[index, 0]), size)
                       if vis is not None else blank))
    warped = output.extras.get("warped")
    top.append(("warped", pick(warped) if warped is not None else blank))
    bottom.append(("output", pick(image) if image is not None else blank))
    factor = scale if scale is not None else (2 if size[0] < 200 else 1)
    rows = []
    for row in (top, bottom):
        panels = [upscale(p, factor) for _, p in row]
        if labels:
            panels = [label(p, n) for (n, _), p in zip(row, panels)]
        rows.append(hstack(panels))
    width = max(r.shape[1] for r in rows)
    out = np.full((rows[0].shape[0] + rows[1].shape[0] + 2, width, 3), 255, dtype=np.uint8)
    out[:rows[0].shape[0], :rows[0].shape[1]] = rows[0]
    out[rows[0].shape[0] + 2:, :rows[1].shape[1]] = rows[1]
    return out


def cell_box(cell: tuple[int, int], grid: int, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """Image region (y0, x0, y1, x1), inclusive, of cell (row, col) of an adaptive ``grid``×``grid`` pooling."""
    h, w = size
    r, c = cell
    return (r * h // grid, c * w // grid, -(-(r + 1) * h // grid) - 1, -(-(c + 1) * w // grid) - 1)


def default_cells(grid: int) -> list[tuple[int, int]]:
    """Four cells down the image centre and one at the left edge: roughly head, shirt, trousers, feet,
    background on a centred full-body photo."""
    mid = grid // 2
    rows = sorted({min(grid - 1, int(round(grid * f))) for f in (0.1, 0.4, 0.65, 0.9)})
    return [(r, mid) for r in rows] + [(grid // 2, 0)]


def relation_figure(output: GeneratorOutput, image: torch.Tensor | np.ndarray | None = None,
                    grid: int = 6, cells: Sequence[tuple[int, int]] | None = None, index: int = 0,
                    alpha: float = 0.6, scale: int | None = None, labels: bool = True) -> np.ndarray:
    """The paper's Fig. 7: relation maps of the ``grid``×``grid`` pyramid level w.r.t. chosen target cells.

    Panels: the image (default: the generated image), then one panel per cell in ``cells`` (row, col)
    (default :func:`default_cells`) — the row of R for that cell over the image, the cell framed in red.
    """
    relations = output.extras.get("relations") or {}
    key = str(grid)
    if key not in relations:
        known = ", ".join(sorted(relations)) or "none"
        raise ModelError(f"no {grid}x{grid} relation map in this output (available: {known}; "
                         "the model needs its pyramid non-local block)")
    matrix = _array(relations[key][index])                        # N×N, row = target cell
    if image is None:
        image = output.image
    if isinstance(image, (torch.Tensor, np.ndarray)) and image.ndim == 4:
        image = image[index]
    base = to_uint8(image)
    size = base.shape[:2]
    chosen = list(cells) if cells is not None else default_cells(grid)
    panels = [("image", base)]
    for r, c in chosen:
        if not (0 <= r < grid and 0 <= c < grid):
            raise ModelError(f"cell ({r}, {c}) is outside the {grid}x{grid} relation grid")
        row = matrix[r * grid + c].reshape(grid, grid)
        heat = np.zeros(size)
        for i in range(grid):
            for j in range(grid):
                y0, x0, y1, x1 = cell_box((i, j), grid, size)
                heat[y0:y1 + 1, x0:x1 + 1] = row[i, j]
        heat = colormap(heat / max(row.max(), 1e-12))
        blend = np.rint((1 - alpha) * base + alpha * heat).astype(np.uint8)
        canvas = Image.fromarray(blend)
        y0, x0, y1, x1 = cell_box((r, c), grid, size)
        ImageDraw.Draw(canvas).rectangle([x0, y0, x1, y1], outline=(255, 0, 0), width=1)
        panels.append((f"cell {r},{c}", np.asarray(canvas)))
    factor = scale if scale is not None else (2 if size[0] < 200 else 1)
    images = [upscale(p, factor) for _, p in panels]
    if labels:
        images = [label(img, n) for (n, _), img in zip(panels, images)]
    return hstack(images)
