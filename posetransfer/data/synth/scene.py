"""What surrounds and covers the body: background scenes, the contact shadow and the shirt texture.

Why: a background that changes with the camera (market) or a studio backdrop (fashion) makes the task
about the person, and clothes whose patterns live on the body surface (height along the body, angle
around it) move with the body, so a back view shows the back of the shirt. Both are painted once and
cached (a scene serves the three or four images of one camera, a texture every pose of one person), so
each image only copies a window or looks colours up.
"""
from __future__ import annotations

import colorsys
import functools
import math
from dataclasses import dataclass

import numpy as np

from .appearance import Identity
from .kinds import check_kind
from .raster import F32, blend, clip, paint, pattern, planes, solid_colour
from .rig import MAX_HORIZON, MAX_PAN, SPINE, Rig
from .sampling import Colour, Draws, draws, jitter, random_colour

# --------------------------------------------------------------------------------------------------
# Backgrounds
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scene:
    """A background: a street-like wall/floor scene (market) or a studio backdrop (fashion)."""

    kind: str
    wall: Colour
    floor: Colour
    horizon: float
    edges: tuple[float, ...] = ()       # panel boundaries (fraction of the width, scene coordinates)
    panels: tuple[Colour, ...] = ()
    sill: float = -1.0
    sill_colour: Colour = (0.5, 0.5, 0.5)
    tiles: float = 0.0
    boxes: tuple[tuple[float, float, float, float, Colour], ...] = ()


def sample_scene(rng: np.random.Generator | int | Draws, kind: str = "market") -> Scene:
    """A random background scene (walls, floor, objects for market; a light backdrop for fashion)."""
    d = draws(rng)
    kind = check_kind(kind)
    if kind == "fashion":
        if d.random() < 0.75:
            v = d.uniform(0.86, 0.98)
            wall = jitter(d, (v, v, v), 0.008)
        else:
            wall = tuple(colorsys.hsv_to_rgb(d.random(), d.uniform(0.05, 0.2), d.uniform(0.8, 0.95)))
        k = d.uniform(0.9, 0.98)
        return Scene(kind=kind, wall=wall, floor=(wall[0] * k, wall[1] * k, wall[2] * k),  # type: ignore
                     horizon=d.uniform(0.78, 0.92))
    wall = tuple(colorsys.hsv_to_rgb(d.random(), d.uniform(0.03, 0.35), d.uniform(0.3, 0.85)))
    floor = tuple(colorsys.hsv_to_rgb(d.random(), d.uniform(0.0, 0.2), d.uniform(0.3, 0.7)))
    n = d.integers(2, 6)
    edges = sorted(d.uniform(-0.4, 1.4) for _ in range(n))
    panels = []
    for _ in range(n + 1):
        k = d.uniform(0.7, 1.2)
        panels.append(jitter(d, (wall[0] * k, wall[1] * k, wall[2] * k), 0.05))
    boxes = []
    for _ in range(d.integers(0, 3)):
        x0, y1 = d.uniform(-0.4, 1.2), d.uniform(0.5, 0.95)
        boxes.append((x0, x0 + d.uniform(0.15, 0.6), y1 - d.uniform(0.1, 0.35), y1, random_colour(d)))
    return Scene(kind=kind, wall=wall, floor=floor, horizon=d.uniform(0.45, 0.8),  # type: ignore[arg-type]
                 edges=tuple(edges), panels=tuple(panels), sill=d.uniform(0.1, 0.4) if d.random() < 0.5 else -1.0,
                 sill_colour=jitter(d, wall, 0.15), tiles=d.uniform(0.05, 0.12) if d.random() < 0.5 else 0.0,
                 boxes=tuple(boxes))


def render_background(scene: Scene, size: tuple[int, int], pan: float = 0.0, horizon: float = 0.0) -> np.ndarray:
    """Float32 background planes (3, H, W) in [0, 1]; ``pan``/``horizon`` move the camera a little per image.

    The scene is painted once on a canvas larger than the image (cached) and each image takes a window,
    which keeps the per-image cost to one copy.
    """
    h, w = size
    canvas = _scene_canvas(scene, h, w)
    mx, my = (canvas.shape[2] - w) // 2, (canvas.shape[1] - h) // 2
    dx = mx + max(-mx, min(mx, int(round(pan * w))))
    dy = my + max(-my, min(my, int(round(horizon * h))))
    return canvas[:, dy:dy + h, dx:dx + w].copy()


@functools.lru_cache(maxsize=16)
def _scene_canvas(scene: Scene, h: int, w: int) -> np.ndarray:
    """The scene as (3, H + 2·margin, W + 2·margin) planes: each image of the scene takes a window of it.

    Painted per plane with row and column profiles broadcast against each other (a scene serves only
    three or four images, so this is a tenth of an image's cost).
    """
    mx, my = int(math.ceil(MAX_PAN * w)), int(math.ceil(MAX_HORIZON * h))
    hh, ww = h + 2 * my, w + 2 * mx
    ys = (np.arange(hh, dtype=F32) + (0.5 - my)) * (1.0 / h)
    xs = (np.arange(ww, dtype=F32) + (0.5 - mx)) * (1.0 / w)
    hy = min(hh, max(0, int(round(scene.horizon * h)) + my))
    img = np.empty((3, hh, ww), dtype=F32)
    if scene.kind == "fashion":
        grad = (1.02 - 0.06 * ys)[:, None]
        img[:, :hy] = grad[:hy] * planes(scene.wall, 2)
        img[:, hy:] = grad[hy:] * planes(scene.floor, 2)
    else:
        cols = np.asarray(scene.panels, dtype=F32)[np.searchsorted(np.asarray(scene.edges, dtype=F32), xs)]
        vgrad = (1.08 - 0.2 * ys)[:, None]
        np.multiply(vgrad[:hy], cols.T[:, None, :], out=img[:, :hy])
        if scene.sill >= 0:
            band = np.abs(ys[:hy] - scene.sill) < 0.03
            img[:, :hy][:, band] = planes(scene.sill_colour, 2)
        fy = (ys[hy:] - scene.horizon) * (1.0 / max(1e-3, 1.0 - scene.horizon))
        floor = img[:, hy:]
        np.multiply((0.85 + 0.3 * fy)[:, None], planes(scene.floor, 2), out=floor)
        if scene.tiles > 0 and hy < hh:  # floor joints converging towards the middle
            q = (ys[hy:, None] - scene.horizon) * ((xs - 0.5) * F32(2.0 / scene.tiles))
            q += xs * F32(1.0 / scene.tiles)               # position in tiles; a joint near each integer
            lines = q - np.floor(q) < 0.12                    # (np.mod on floats is 10x slower)
            floor *= 1.0 - F32(0.12) * lines
        for x0, x1, y0, y1, colour in scene.boxes:
            mxs = (xs >= x0) & (xs < x1)
            mys = (ys >= y0) & (ys < y1)
            if mxs.any() and mys.any():
                xa, xb = int(np.argmax(mxs)), int(len(mxs) - np.argmax(mxs[::-1]))
                ya, yb = int(np.argmax(mys)), int(len(mys) - np.argmax(mys[::-1]))
                img[:, ya:yb, xa:xb] = vgrad[ya:yb] * planes(colour, 2)
    img.flags.writeable = False
    return img


def shadow(img: np.ndarray, rig: Rig) -> None:
    """A soft contact shadow under the feet (grounds the figure; darkens the background in place)."""
    h, w = img.shape[1:]
    feet = [rig.p(n) for n in ("r_ankle", "l_ankle", "r_toe", "l_toe")]
    cx = sum(p[0] for p in feet) / 4.0
    cy = max(p[1] for p in feet) + 0.01 * rig.scale
    sprite = _shadow_sprite(max(1, int(round(0.16 * rig.scale))), max(1, int(round(0.03 * rig.scale))))
    sh, sw = sprite.shape[:2]
    ya, xa = int(round(cy)) - sh // 2, int(round(cx)) - sw // 2
    y0, x0 = max(0, ya), max(0, xa)
    y1, x1 = min(h, ya + sh), min(w, xa + sw)
    if y0 < y1 and x0 < x1:
        img[:, y0:y1, x0:x1] *= sprite[y0 - ya:y1 - ya, x0 - xa:x1 - xa]


@functools.lru_cache(maxsize=64)
def _shadow_sprite(rx: int, ry: int) -> np.ndarray:
    """Multiplier (2ry+1, 2rx+1): 0.65 at the centre of an ellipse, 1 outside."""
    dx = np.arange(-rx, rx + 1, dtype=F32) * (1.0 / rx)
    dy = np.arange(-ry, ry + 1, dtype=F32) * (1.0 / ry)
    d = np.clip(1.0 - dx * dx - (dy * dy)[:, None], 0.0, 1.0)
    sprite = (1.0 - 0.35 * d).astype(F32)
    sprite.flags.writeable = False
    return sprite


# --------------------------------------------------------------------------------------------------
# The shirt as a texture on the body surface
# --------------------------------------------------------------------------------------------------
#: Resolution of the torso texture (rows down the body, columns around it) for each size.
_TEX_SIZE = {"market": (64, 128), "fashion": (128, 256)}


def _torso_length(ident: Identity) -> float:
    """Top of the shoulders to the hem, body heights (the torso texture's height)."""
    return SPINE + 0.035 + (0.02 if ident.tucked else 0.04)


@functools.lru_cache(maxsize=64)
def torso_texture(ident: Identity) -> np.ndarray:
    """The shirt as a (u, phi) texture: rows = body heights from the top of the shoulders to the hem,
    columns = angle around the body from -π to π (0 = the person's front).

    Made once per person, so every pose only looks colours up; garment details are hard masks.
    """
    total = _torso_length(ident)
    hem = 0.02 if ident.tucked else 0.04
    n_u, n_phi = _TEX_SIZE[ident.kind]
    u = (np.arange(n_u, dtype=F32) * (total / (n_u - 1)))[:, None]
    phi = ((np.arange(n_phi, dtype=F32) + 0.5) * (2 * math.pi / n_phi) - math.pi)[None, :]
    u, phi = np.broadcast_arrays(u, phi)
    un = u * (1.0 / total)
    front = np.abs(phi)
    skin = ident.skin
    g = ident.top
    mask = pattern(g, u, phi)
    colour = solid_colour(u.shape, g.colour) if mask is None else blend(g.colour, mask, g.colour2)
    du = 1.5 * total / (n_u - 1)                     # soft edges about one texel wide

    def soft(inside: np.ndarray, value) -> None:
        """Blend ``value`` where ``inside`` (a signed distance in body heights, > 0 inside) is positive."""
        m = inside * (1.0 / du) + 0.5
        colour[...] = blend(colour, clip(m, 0.0, 1.0, out=m), value)

    if g.pattern == "colorblock":
        soft(u - 0.45 * total, g.colour2)
    if ident.top_kind == "jacket":                   # open jacket: the shirt shows down the front
        soft((un * 0.35 + 0.22 - front) * 0.15, ident.inner)
    if ident.logo != "none":
        lx = phi * (1 / 0.42)
        ly = (u - 0.1) * (1 / 0.05)
        shapes = {
            "circle": lambda: lx * lx + ly * ly < 1,
            "square": lambda: (np.abs(lx) < 0.85) & (np.abs(ly) < 0.85),
            "diamond": lambda: np.abs(lx) + np.abs(ly) < 1.1,
            "ring": lambda: np.abs(lx * lx + ly * ly - 0.6) < 0.35,
            "bar": lambda: (np.abs(lx) < 1.2) & (np.abs(ly) < 0.4),
            "triangle": lambda: (ly > -0.8) & (np.abs(lx) < (ly + 0.8) * 0.6),
        }
        paint(colour, shapes[ident.logo](), ident.logo_colour)
    if ident.back_print == "band":
        paint(colour, (front > math.pi - 0.75) & (np.abs(u - 0.12) < 0.025), ident.logo_colour)
    elif ident.back_print == "block":
        paint(colour, (front > math.pi - 0.5) & (np.abs(u - 0.13) < 0.05), ident.logo_colour)
    if ident.top_kind == "shirt":
        paint(colour, (front < 0.06) & (np.mod(u, 0.05) < 0.012) & (u > 0.06), ident.inner)
    if ident.backpack is not None:                   # shoulder straps
        paint(colour, (np.abs(front - 0.75) < 0.13) & (u < 0.2), tuple(0.7 * c for c in ident.backpack))
    # neckline at the front: a collar, a V or a round cut
    if ident.neckline == "collar":
        paint(colour, (front < 0.7) & (u < 0.035), ident.inner)
        soft(front * -0.5 + 0.09 - u, skin)
    elif ident.neckline == "v":
        soft(front * -0.3 + 0.105 - u, skin)
    else:
        soft(front * front * -0.16 + 0.07 - u, skin)
    if ident.top_kind == "tank":                     # bare shoulders beside the straps
        paint(colour, (np.abs(front - 1.2) < 0.3) & (u < 0.06), skin)
    # below the waist: the bottom garment (tucked shirts, skirts, dresses) and a belt
    if ident.tucked or ident.bottom_kind in ("skirt", "dress"):
        waist = total - (0.075 + hem)
        b = ident.bottom
        bp = pattern(b, u, phi)
        soft(u - waist, b.colour if bp is None else blend(b.colour, bp, b.colour2))
        if ident.belt is not None:
            paint(colour, np.abs(u - (waist + 0.008)) < 0.011, ident.belt)
    colour.flags.writeable = False
    return colour

