"""The rasteriser: anti-aliased tapered capsules, rounded trapezoids and blended layers on colour planes.

Why it looks the way it does: a person is a few dozen small parts on a 128×64 or 256×176 image, so the
cost is numpy's per-call overhead, not arithmetic. Each part is drawn only inside its bounding box, all
capsules of a person are rasterised in one flat pass (:meth:`Canvas.capsules`, :func:`colour_capsules`),
pixel positions are a precomputed complex grid (rotating into a part's frame is one multiplication), and
images are colour planes (3, H, W) so that loops run over pixels rather than over three channels.

Public interface: :class:`Canvas` (draw, blend, ask which part covers a pixel), :class:`Capsule` and
:func:`colour_capsules` (a person's capsule parts), :func:`finish` (planes → uint8 RGB image), and the
colour-plane helpers the scene and person layers share (:func:`planes`, :func:`blend`, :func:`paint`,
:func:`solid_colour`, :func:`pattern`, :func:`garment_colour`).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .appearance import Garment
from .sampling import Colour

clip = np.core.umath.clip  # the ufunc itself: np.clip's Python wrapper costs more than the work here
F32 = np.float32


class Canvas:
    """A float32 RGB image in [0, 1] as three (H, W) planes and the record of which part covers which pixels.

    Pixel positions are a precomputed complex grid ``x + iy``: rotating it into a part's frame is one
    complex multiplication, which keeps each part to a dozen numpy calls (their overhead, not the
    arithmetic, dominates on these small boxes). Colours are planes, (3, ...), for the same reason: a
    coverage or shading field times a colour then loops over pixels, where the interleaved (..., 3) layout
    makes numpy loop over the three channels of every pixel (3-5x slower on a limb).
    """

    def __init__(self, background: np.ndarray, light: Sequence[float], ambient: float) -> None:
        self.img = background
        self.h, self.w = background.shape[1:]
        self.grid = _complex_grid(self.h, self.w)
        self.gx = self.grid[0].real.copy()
        self.gy = self.grid[:, :1].imag.copy()
        self.lx, self.ly, self.lz = (float(v) for v in light)
        self.ambient = float(ambient)
        self.diffuse = (1.0 - float(ambient)) * 1.05
        self.layers: list[tuple[int, tuple[int, int, int, int], np.ndarray]] = []

    def pixel_box(self, x0: float, x1: float, y0: float, y1: float) -> tuple[int, int, int, int] | None:
        """The pixel rows and columns (ya, yb, xa, xb) covering x0..x1, y0..y1 inside the image; None if empty."""
        xa, xb = max(0, int(math.floor(x0))), min(self.w, int(math.ceil(x1)) + 1)
        ya, yb = max(0, int(math.floor(y0))), min(self.h, int(math.ceil(y1)) + 1)
        if xa >= xb or ya >= yb:
            return None
        return ya, yb, xa, xb

    def composite(self, box, alpha: np.ndarray, colour: np.ndarray, shade: np.ndarray | None, part: int) -> None:
        """Alpha-blend ``colour × shade`` over the image in ``box`` and remember the part's coverage.

        ``colour``: (3,) or planes (3, h, w); ``alpha`` and ``shade`` (h, w), ``shade`` None for flat.
        """
        ya, yb, xa, xb = box
        region = self.img[:, ya:yb, xa:xb]
        colour = planes(colour, 2)
        if shade is None:  # flat: the colour as it is
            target = colour - region
        else:
            target = shade * colour
            target -= region
        target *= alpha
        region += target
        self.layers.append((part, box, alpha))

    def paste(self, box, keep: np.ndarray, premultiplied: np.ndarray, alpha: np.ndarray, part: int) -> None:
        """Blend a precomputed layer: image × keep + premultiplied colour ((n,) and (3, n), box row order)."""
        ya, yb, xa, xb = box
        h, w = yb - ya, xb - xa
        region = self.img[:, ya:yb, xa:xb]
        region *= keep.reshape(h, w)
        region += premultiplied.reshape(3, h, w)
        self.layers.append((part, box, alpha.reshape(h, w)))

    def part_at(self, y: int, x: int) -> int:
        """The part drawn on top at pixel (y, x) (covering it by more than half), 0 for background."""
        for part, (ya, yb, xa, xb), alpha in reversed(self.layers):
            if ya <= y < yb and xa <= x < xb and alpha[y - ya, x - xa] > 0.5:
                return part
        return 0

    def label_map(self) -> np.ndarray:
        """(H, W) uint8 map of the top part at each pixel (for inspection and tests)."""
        label = np.zeros((self.h, self.w), dtype=np.uint8)
        for part, (ya, yb, xa, xb), alpha in self.layers:
            np.copyto(label[ya:yb, xa:xb], part, where=alpha > 0.5)
        return label

    def shade(self, s: np.ndarray, perp: tuple[float, float], flat: float = 1.0) -> np.ndarray:
        """Diffuse shading of a cylinder: ``s`` ∈ [-1, 1] across it, ``perp`` the screen direction of s.

        Lambert ``max(0, n·L)`` with the normal's depth component sqrt(1 - s²) approximated by
        1 - 0.8 s² (a polynomial: five numpy calls instead of eight).
        """
        return self.lambert(s, (perp[0] * self.lx + perp[1] * self.ly) * flat * self.diffuse)

    def lambert(self, s: np.ndarray, k) -> np.ndarray:
        """The shading polynomial of :meth:`shade` for the light's in-plane term ``k`` (a scalar for one
        part, or one value per pixel for a batch of capsules)."""
        d = self.diffuse
        lam = s * (-0.8 * self.lz * d)
        lam += k
        lam *= s
        lam += self.lz * d + self.ambient
        np.maximum(lam, self.ambient, out=lam)
        return lam

    def capsules(self, caps: Sequence["Capsule"]) -> "CapsuleBatch":
        """The geometry of every tapered capsule of a person in one pass over all their pixels.

        Each capsule p0→p1 (pixels, radii r0→r1) covers its bounding box; the boxes' pixels are laid end to
        end in flat arrays with each capsule's parameters repeated per pixel, so a dozen limbs cost the
        numpy calls of one (the per-call overhead, not the arithmetic, is what a 50-pixel-wide limb costs).
        Per pixel: ``alpha`` (anti-aliased coverage), ``t`` ∈ [0, 1] along the axis and ``s`` the distance
        from the axis over the radius (within [-1, 1] inside, up to ±(1 + 0.5/r) on the rim).
        """
        kept, boxes, sizes, rows, turns, perps = [], [], [], [], [], []
        for i, c in enumerate(caps):
            (x0, y0), (x1, y1) = c.p0, c.p1
            rm = max(c.r0, c.r1) + 1.0
            box = self.pixel_box(min(x0, x1) - rm, max(x0, x1) + rm, min(y0, y1) - rm, max(y0, y1) + rm)
            if box is None:
                continue
            dx, dy = x1 - x0, y1 - y0
            length = math.hypot(dx, dy)
            if length < 1e-3:
                dx, dy, length = 0.0, 1e-3, 1e-3
            rot = complex(dx, -dy) / length              # rotates the axis onto +real
            kept.append(i)
            boxes.append(box)
            sizes.append((box[1] - box[0]) * (box[3] - box[2]))
            turns.append((rot, -complex(x0, y0) * rot))
            rows.append((length, 1.0 / length, c.r0, c.r1 - c.r0))
            perps.append((-dy / length, dx / length))
        batch = CapsuleBatch(kept, boxes, sizes, perps)
        if not kept:
            return batch
        grid = self.grid
        z = np.concatenate([grid[ya:yb, xa:xb].ravel() for ya, yb, xa, xb in boxes])
        turn = np.repeat(np.asarray(turns, dtype=np.complex64), sizes, axis=0)
        par = np.repeat(np.asarray(rows, dtype=F32), sizes, axis=0)
        w = z * turn[:, 0]
        w += turn[:, 1]                                         # real: along the axis, imag: across it
        c = clip(w.real, F32(0.0), par[:, 0])
        w -= c                                                  # offset from the nearest axis point
        t = c * par[:, 1]
        r = t * par[:, 3]
        r += par[:, 2]
        alpha = r + 0.5
        alpha -= np.abs(w)
        clip(alpha, 0.0, 1.0, out=alpha)
        batch.alpha, batch.t, batch.s, batch.length = alpha, t, w.imag / r, par[:, 0]
        return batch

    def trapezoid(self, top: Sequence[float], bottom: Sequence[float], w_top: float, w_bot: float, corner: float):
        """A trapezoid from ``top`` to ``bottom`` (axis ends, pixels) with half-widths and rounded top corners.

        Returns (box, alpha, u ∈ [0, 1] down the axis, s ∈ [-1, 1] across, perp, length).
        """
        dx, dy = bottom[0] - top[0], bottom[1] - top[1]
        length = max(math.hypot(dx, dy), 1e-3)
        nx, ny = -dy / length, dx / length               # the box holds the four corners
        cx = (top[0] + nx * w_top, top[0] - nx * w_top, bottom[0] + nx * w_bot, bottom[0] - nx * w_bot)
        cy = (top[1] + ny * w_top, top[1] - ny * w_top, bottom[1] + ny * w_bot, bottom[1] - ny * w_bot)
        box = self.pixel_box(min(cx) - 1.0, max(cx) + 1.0, min(cy) - 1.0, max(cy) + 1.0)
        if box is None:
            return None
        ya, yb, xa, xb = box
        rot = complex(dx, -dy) / length                  # the axis onto +real; +imag = the image right
        q = self.grid[ya:yb, xa:xb] * rot
        q -= complex(top[0], top[1]) * rot
        u, v = q.real, q.imag
        un = u * (1.0 / length)
        clip(un, 0.0, 1.0, out=un)
        width = un * (w_bot - w_top)
        width += w_top
        if corner > 0:  # round the top corners: the half-width shrinks on a circle of radius ``corner``
            dc = corner - u
            np.maximum(dc, 0.0, out=dc)
            dc *= dc
            np.subtract(corner * corner, dc, out=dc)
            np.maximum(dc, 0.0, out=dc)
            np.sqrt(dc, out=dc)
            dc -= corner
            width += dc
        np.maximum(width, 0.5, out=width)
        alpha = width + 0.5
        alpha -= np.abs(v)
        np.minimum(alpha, u + 0.5, out=alpha)
        np.minimum(alpha, (length + 0.5) - u, out=alpha)
        clip(alpha, 0.0, 1.0, out=alpha)
        s = v / width
        clip(s, -1.0, 1.0, out=s)
        return box, alpha, un, s, (-dy / length, dx / length), length


@functools.lru_cache(maxsize=8)
def _complex_grid(h: int, w: int) -> np.ndarray:
    """``x + iy`` for every pixel, read-only and shared by all canvases of one size."""
    grid = (np.arange(w, dtype=np.float32)[None, :] + 1j * np.arange(h, dtype=np.float32)[:, None])
    grid = grid.astype(np.complex64)
    grid.flags.writeable = False
    return grid


# --------------------------------------------------------------------------------------------------
# Colour planes and garment patterns
# --------------------------------------------------------------------------------------------------
def planes(colour, ndim: int) -> np.ndarray:
    """A colour (3,) as planes broadcasting against ``ndim``-D fields; planes (3, ...) unchanged."""
    colour = np.asarray(colour, dtype=F32)
    return colour.reshape((3,) + (1,) * ndim) if colour.ndim == 1 else colour


def blend(base, mask: np.ndarray | None, other) -> np.ndarray:
    """``base`` with ``other`` where ``mask`` (0..1, any shape S) is set; colours (3,) or planes (3, *S)."""
    if mask is None:
        return base
    base = planes(base, mask.ndim)
    return base + mask * (planes(other, mask.ndim) - base)


def paint(image: np.ndarray, mask: np.ndarray, colour) -> None:
    """Set the pixels of the planes ``image`` (3, *S) where the boolean ``mask`` (S) is true to ``colour`` (3,)."""
    image[:, mask] = np.asarray(colour, dtype=F32)[:, None]


def solid_colour(shape: tuple[int, ...], colour) -> np.ndarray:
    """Planes (3, *shape) filled with ``colour``."""
    out = np.empty((3,) + tuple(shape), dtype=F32)
    out[...] = planes(colour, len(shape))
    return out


def _square_wave(x: np.ndarray, sharp: float = 2.5) -> np.ndarray:
    """A soft 0/1 square wave of period 1 (anti-aliased stripes)."""
    m = np.cos(x * (2 * math.pi))
    m *= sharp
    m += 0.5
    return clip(m, 0.0, 1.0, out=m)


def pattern(g: Garment, u: np.ndarray, phi: np.ndarray | None) -> np.ndarray | None:
    """Pattern mask (1 = second colour) at body-surface coordinates: ``u`` body heights down, ``phi`` angle."""
    p = g.pattern
    if p == "hstripes":
        return _square_wave(u * (1.0 / g.period))
    if phi is None or p in ("solid", "colorblock"):
        return _square_wave(u * (1.0 / g.period)) if p == "checks" else None
    around = phi * (g.around / (2 * math.pi))
    if p == "vstripes":
        return _square_wave(around)
    if p == "checks":
        a = _square_wave(u * (1.0 / g.period))
        b = _square_wave(around)
        return a + b - 2 * a * b
    if p == "dots":
        fu = np.mod(u * (1.0 / g.period), 1.0) - 0.5
        fa = np.mod(around, 1.0) - 0.5
        m = 0.09 - fu * fu - fa * fa
        m *= 30.0
        return clip(m, 0.0, 1.0, out=m)
    return None


def needs_phi(g: Garment) -> bool:
    """Whether the pattern varies around the body (then the angle must be computed)."""
    return g.pattern in ("vstripes", "checks", "dots")


def garment_colour(g: Garment, u: np.ndarray, phi: np.ndarray | None) -> np.ndarray:
    """The garment's colour at body-surface coordinates (see :func:`pattern`): a colour (3,) or planes."""
    return blend(g.colour, pattern(g, u, phi), g.colour2)


# --------------------------------------------------------------------------------------------------
# The capsule parts of a person, rasterised and coloured together
# --------------------------------------------------------------------------------------------------
@dataclass
class Capsule:
    """One capsule-shaped part of a person: where it is, which part it is and how it is coloured."""

    p0: tuple[float, float]
    p1: tuple[float, float]
    r0: float
    r1: float
    part: int
    colour: np.ndarray                  # (3,) float32: skin, hair, shoes
    flat: float | None = None           # a constant shade instead of the cylinder's (small parts)
    garment: Garment | None = None      # limbs: the clothing from the start up to ``cover``, ``colour`` beyond
    cover: float = 0.0                  # fraction of the length under the garment
    u0: float = 0.0                     # body heights from the garment's top to the capsule's start
    sole: Colour | None = None          # detailed shoes: the sole's colour, seen from the side


class CapsuleBatch:
    """Flat per-pixel geometry of several capsules (see :meth:`Canvas.capsules`).

    ``kept[j]`` is the index of the j-th capsule with pixels in the image; its pixels are
    ``offsets[j]:offsets[j + 1]`` of the flat arrays and fill its ``boxes[j]`` row by row; ``perps[j]`` is
    the screen direction across it (the direction of ``s``).
    """

    def __init__(self, kept: list[int], boxes: list, sizes: list[int], perps: list[tuple[float, float]]) -> None:
        self.kept, self.boxes, self.perps = kept, boxes, perps
        self.offsets = [0]
        for n in sizes:
            self.offsets.append(self.offsets[-1] + n)
        self.alpha = self.t = self.s = self.length = np.zeros(0, dtype=F32)


def colour_capsules(cv: Canvas, caps: Sequence[Capsule], batch: CapsuleBatch,
                    scale: float) -> tuple[np.ndarray, np.ndarray]:
    """What every pixel of a batch blends in: (1 - alpha, alpha · shade · colour), (n,) and (3, n).

    Cylinder shading, garment patterns (laid out along the limb in body heights and around it by the
    angle) and the sleeve/trouser end (skin beyond ``cover``) are computed for all capsules at once; only
    the exceptions (flat-shaded parts, side views of detailed shoes) touch single segments.
    """
    kept, offsets = batch.kept, batch.offsets
    sizes = np.diff(offsets)
    s, t = batch.s, batch.t
    d = cv.diffuse
    lam = cv.lambert(s, np.repeat(np.asarray([(px * cv.lx + py * cv.ly) * d for px, py in batch.perps],
                                             dtype=F32), sizes))
    colour = np.repeat(np.stack([caps[i].colour for i in kept], axis=1), sizes, axis=1)
    j = 0
    while j < len(kept):                                # runs of limbs wearing the same garment
        g = caps[kept[j]].garment
        end = j + 1
        while end < len(kept) and g is not None and caps[kept[end]].garment is g:
            end += 1
        if g is not None:
            seg = slice(offsets[j], offsets[end])
            run = [caps[i] for i in kept[j:end]]
            tt, length = t[seg], batch.length[seg]
            if g.pattern in ("solid", "colorblock"):
                garment = np.asarray(g.colour, dtype=F32)
            else:
                u = tt * length
                u *= F32(1.0 / scale)
                u += np.repeat(np.asarray([c.u0 for c in run], dtype=F32), sizes[j:end])
                phi = np.arcsin(np.clip(s[seg], -1.0, 1.0)) if needs_phi(g) else None
                garment = garment_colour(g, u, phi)
            # 1 under the garment, 0 beyond its end (a covered limb: 1 all along)
            cover = np.repeat(np.asarray([c.cover if c.cover < 1 else 1e6 for c in run], dtype=F32), sizes[j:end])
            m = cover - tt
            m *= length
            m += 0.5
            clip(m, 0.0, 1.0, out=m)
            colour[:, seg] = blend(colour[:, seg], m, garment)
        j = end
    for j, i in enumerate(kept):
        c = caps[i]
        if c.flat is not None:
            lam[offsets[j]:offsets[j + 1]] = c.flat
        elif c.sole is not None and abs(batch.perps[j][1]) > 0.3:  # a shoe seen from the side: its sole
            seg = slice(offsets[j], offsets[j + 1])
            sole = s[seg] * math.copysign(6.0, batch.perps[j][1]) - 2.7
            colour[:, seg] = blend(colour[:, seg], clip(sole, 0.0, 1.0, out=sole), c.sole)
    lam *= batch.alpha
    colour *= lam
    return 1.0 - batch.alpha, colour


def finish(img: np.ndarray, gain: float, tint: Sequence[float]) -> np.ndarray:
    """Global lighting change (gain, colour tint) and conversion of the planes to an (H, W, 3) uint8 image.

    OpenCV scales, rounds and saturates each plane and interleaves them, several times faster than numpy's
    multiply/clip/cast and transposing copy, which would be a noticeable part of an image's cost
    (benchmarks/results/synth_renderer_notes.md). Its ``convertScaleAbs`` takes the absolute value first:
    the planes are never negative (non-negative colours times a shading that is at least the ambient level).
    """
    import cv2

    scale = gain * 255.0
    return cv2.merge([cv2.convertScaleAbs(plane, alpha=scale * float(t)) for plane, t in zip(img, tint)])

