"""Procedural synthetic people written in the PATN on-disk layout (Market-1501 or DeepFashion style).

Why: the real benchmarks cannot be downloaded at run time, yet training, testing, evaluation and the
applications all need a dataset with *exact* keypoints, one person per identity in many poses and
identity-disjoint splits. This module draws such people fast enough to make thousands in seconds.

How a picture is made (every random number of an image comes from a generator seeded with
``(seed, identity, pose)``, so the result does not depend on the order or on the number of workers):

* An :class:`Identity` fixes what stays the same across poses: skin, hair colour and style (short,
  fringe, long, bun, bald), body proportions, the top (t-shirt, long sleeves, shirt, jacket over a shirt,
  tank top) with its colours and a structured pattern (solid, stripes, checks, dots, colour block), a front
  logo and/or a back print, the bottom (trousers, shorts, skirt, dress), belt, shoes and a backpack.
* A :class:`PoseParams` comes from a small kinematic model with joint limits: view (front, back, side,
  three-quarter yaw), a pose family (standing, walking, running, arms raised, waving, hands on hips, arms
  crossed, hands behind the back, reaching, phoning) with random joint angles, torso lean/twist, head turn,
  framing jitter and lighting (light direction, ambient level, gain, colour tint).
* The 3-D skeleton is rotated by the yaw, projected orthographically and fitted into the frame like a
  detector crop (full body, head near the top, feet near the bottom).
* Parts are drawn far-to-near (painter's algorithm on each part's depth) as anti-aliased tapered capsules,
  rounded trapezoids and an ellipsoidal head, Lambert-shaded with the cylinder/sphere normals. Clothing
  patterns live on the body surface (height along the body, angle around it), so a stripe or a logo moves
  with the body and a back view shows the back of the shirt and of the head.
* Keypoints are the projected joints (COCO-18, (y, x)), i.e. exactly where the limbs are drawn. A joint is
  -1 when it is outside the image, when a face point turns away from the camera (eyes and nose in back
  views, the far ear/eye in side views) or when another part is drawn over it (a hand behind the back, the
  far knee behind the near leg). Neck, shoulders and hips lie on the torso outline and are kept whenever
  they are inside the image, so side views keep both shoulders and hips and pass PATN's pair rule.

:func:`generate_dataset` renders ``identities × poses`` images into a temporary folder next to the output
and renames it into place at the end, so an interrupted run never leaves a half dataset that looks complete.
Speed (0.9–3 ms per 128×64 image on one core of this project's VM, depending on the day) comes from drawing
each part only inside its bounding box, from rasterising all capsule parts of a person in one flat pass
(numpy's per-call overhead, not arithmetic, is the cost on boxes of a few hundred pixels), from colour planes
(3, H, W) so that loops run over pixels, kinematics in plain Python floats and one batch of random numbers per
image. The JPEG files are written by a :class:`~posetransfer.io.BackgroundWriter` thread, so creating them
(0.3–0.6 ms each on a virtual disk) overlaps the next render.
"""
from __future__ import annotations

import bisect
import colorsys
import contextlib
import functools
import json
import logging
import math
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..errors import DataError, OutputError, PoseError
from ..io import BackgroundWriter, os_error_reason, write_json
from . import keypoints as K

log = logging.getLogger(__name__)

KINDS = ("market", "fashion")
SIZES: dict[str, tuple[int, int]] = {"market": K.MARKET_SIZE, "fashion": K.FASHION_SIZE}
PREFIXES: dict[str, str] = {"market": "market", "fashion": "fasion-resize"}
GENERATOR_TAG = "posetransfer.synth"
FORMAT_VERSION = 1
JPEG_QUALITY = 95
#: Market-1501 ids have 4 digits (0000 is the distractor id), DeepFashion item ids 8.
MAX_IDENTITIES = {"market": 9999, "fashion": 99_999_999}

VIEWS = ("front", "back", "side", "three_quarter")
VIEW_PROBS = (0.35, 0.2, 0.3, 0.15)
FAMILIES = ("stand", "walk", "run", "raise", "wave", "akimbo", "cross", "behind", "reach", "phone")
FAMILY_PROBS = (0.2, 0.3, 0.06, 0.09, 0.06, 0.08, 0.05, 0.05, 0.06, 0.05)

# Seed-sequence domains: the identity, pose, scene and naming streams of one seed never share state.
_D_IDENTITY, _D_POSE, _D_SCENE, _D_PLAN = 0, 1, 2, 3

# Part ids in the label map (which part is on top at each pixel); 0 = background.
(P_TORSO, P_NECK, P_HEAD, P_HAIR, P_RARM, P_LARM, P_RLEG, P_LLEG, P_RSHOE, P_LSHOE, P_SKIRT, P_PACK,
 P_BUN) = range(1, 14)

#: Parts on which a joint counts as visible (an arm part runs from the shoulder to the end of the hand, a
#: leg part from the hip to the ankle). Joints not listed
#: (neck, shoulders, hips) lie on the torso outline and are visible whenever they are inside the image.
_VISIBLE_ON: dict[int, frozenset[int]] = {
    0: frozenset({P_HEAD}), 14: frozenset({P_HEAD}), 15: frozenset({P_HEAD}),
    16: frozenset({P_HEAD, P_HAIR}), 17: frozenset({P_HEAD, P_HAIR}),
    3: frozenset({P_RARM}), 4: frozenset({P_RARM}), 6: frozenset({P_LARM}), 7: frozenset({P_LARM}),
    9: frozenset({P_RLEG, P_SKIRT}), 10: frozenset({P_RLEG, P_RSHOE, P_SKIRT}),
    12: frozenset({P_LLEG, P_SKIRT}), 13: frozenset({P_LLEG, P_LSHOE, P_SKIRT}),
}
#: Face points on the unit head sphere (head frame: x = the person's left, y = up, z = forward) and the
#: minimum camera-facing component of their normal for them to count as visible.
_FACE_POINTS: dict[int, tuple[tuple[float, float, float], float]] = {
    0: ((0.0, -0.22, 0.975), -0.1),     # nose (the tip still shows in profile)
    14: ((-0.36, 0.08, 0.93), 0.25),    # right eye
    15: ((0.36, 0.08, 0.93), 0.25),     # left eye
    16: ((-0.96, 0.0, -0.12), -0.45),   # right ear
    17: ((0.96, 0.0, -0.12), -0.45),    # left ear
}

Colour = tuple[float, float, float]
_clip = np.core.umath.clip  # the ufunc itself: np.clip's Python wrapper costs more than the work here
_F32 = np.float32


# --------------------------------------------------------------------------------------------------
# Random numbers: one numpy call per image, then plain Python floats
# --------------------------------------------------------------------------------------------------
class Draws:
    """Uniform and normal numbers pre-drawn from a numpy Generator and handed out in order.

    Why: sampling a pose needs ~80 scalars; one vectorised draw plus list indexing is ~50× cheaper than
    80 Generator calls, and the sequence is still fully determined by the generator's seed.
    """

    def __init__(self, rng: np.random.Generator, n: int = 160) -> None:
        self.rng = rng
        self._n = n
        self._u: list[float] = rng.random(n).tolist()
        self._g: list[float] = rng.standard_normal(n // 2).tolist()
        self._i = self._j = 0

    def random(self) -> float:
        if self._i >= len(self._u):
            self._u, self._i = self.rng.random(self._n).tolist(), 0
        v = self._u[self._i]
        self._i += 1
        return v

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.random()

    def normal(self, mu: float = 0.0, sd: float = 1.0) -> float:
        if self._j >= len(self._g):
            self._g, self._j = self.rng.standard_normal(self._n // 2).tolist(), 0
        v = self._g[self._j]
        self._j += 1
        return mu + sd * v

    def integers(self, lo: int, hi: int) -> int:
        """An int in [lo, hi)."""
        return lo + min(hi - lo - 1, int(self.random() * (hi - lo)))

    def choice(self, items: Sequence, p: Sequence[float] | None = None):
        if p is None:
            return items[self.integers(0, len(items))]
        cum, total = [], 0.0
        for q in p:
            total += q
            cum.append(total)
        return items[min(len(items) - 1, bisect.bisect_right(cum, self.random() * total))]

    def sample(self, items: Sequence, k: int) -> list:
        """``k`` distinct items (partial Fisher-Yates)."""
        pool = list(items)
        for i in range(k):
            j = i + self.integers(0, len(pool) - i)
            pool[i], pool[j] = pool[j], pool[i]
        return pool[:k]


def _draws(value) -> Draws:
    if isinstance(value, Draws):
        return value
    return Draws(_as_rng(value))


# --------------------------------------------------------------------------------------------------
# Appearance (per identity) and pose (per image) parameters
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Garment:
    """A piece of clothing: main colour, pattern colour and a pattern on the body surface."""

    colour: Colour
    colour2: Colour
    pattern: str = "solid"          # solid | hstripes | vstripes | checks | dots | colorblock
    period: float = 0.05            # stripe period in body heights
    around: int = 10                # vertical stripes / check columns around the body


@dataclass(frozen=True)
class Identity:
    """Everything that stays the same for one person across poses."""

    index: int
    kind: str
    gender: str                     # WOMEN | MEN (DeepFashion names)
    skin: Colour
    hair: Colour
    hair_style: str                 # short | fringe | long | bun | bald
    hairline_front: float           # head-frame height above which the front of the head is hair
    hairline_back: float            # ... and the back of the head
    hair_length: float              # long hair: length below the head centre (body heights)
    head: float                     # head radius (body heights)
    shoulder: float                 # shoulder joint half-width
    hip: float                      # hip joint half-width
    chest_depth: float              # half-depth of the torso
    limb: float                     # limb thickness factor
    leg: float                      # leg length factor
    top_kind: str                   # tshirt | longsleeve | shirt | jacket | tank
    top: Garment
    inner: Colour                   # shirt under an open jacket, collar, buttons
    neckline: str                   # round | v | collar
    sleeve: float                   # fraction of the arm covered by the sleeve
    logo: str                       # none | circle | square | diamond | ring | bar | triangle
    logo_colour: Colour
    back_print: str                 # none | band | block
    tucked: bool
    bottom_kind: str                # trousers | shorts | skirt | dress
    bottom: Garment
    leg_cover: float                # fraction of the leg covered (trousers ~1, shorts ~0.35)
    skirt_length: float             # skirt/dress length below the waist (body heights)
    belt: Colour | None
    shoes: Colour
    soles: Colour
    backpack: Colour | None
    cameras: tuple[int, ...]        # Market cameras this person is "seen" by
    outfit: int                     # DeepFashion outfit digits


@dataclass(frozen=True)
class PoseParams:
    """One pose of one person: view, joint angles (degrees), framing and lighting."""

    view: str
    family: str
    yaw: float                      # degrees; 0 faces the camera, 180 shows the back, +90 the right side
    lean: float = 0.0
    side_bend: float = 0.0
    twist: float = 0.0
    head_turn: float = 0.0
    head_tilt: float = 0.0
    # arms: (flexion forward, abduction sideways, elbow bend, bend reference x, y, z in the torso frame,
    # x pointing away from the body's midline)
    arm_r: tuple[float, float, float, float, float, float] = (0.0, 8.0, 10.0, 0.0, 0.25, 1.0)
    arm_l: tuple[float, float, float, float, float, float] = (0.0, 8.0, 10.0, 0.0, 0.25, 1.0)
    # legs: (flexion forward, abduction sideways, knee bend, toe-out)
    leg_r: tuple[float, float, float, float] = (0.0, 4.0, 3.0, 8.0)
    leg_l: tuple[float, float, float, float] = (0.0, 4.0, 3.0, 8.0)
    fill: float = 0.9               # person height / image height (before the width constraint)
    fill_w: float = 0.94            # maximum person width / image width
    ground: float = 0.96            # feet line as a fraction of the image height
    shift: float = 0.0              # horizontal offset, fraction of the width
    pan: float = 0.0                # background pan, fraction of the width
    horizon: float = 0.0            # background horizon jitter, fraction of the height
    light: tuple[float, float, float] = (-0.35, -0.45, 0.82)
    ambient: float = 0.5
    gain: float = 1.0
    tint: Colour = (1.0, 1.0, 1.0)


# --------------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------------
_SKIN = ((0.97, 0.82, 0.71), (0.93, 0.74, 0.60), (0.87, 0.66, 0.51), (0.78, 0.57, 0.42),
         (0.66, 0.46, 0.32), (0.51, 0.35, 0.24), (0.38, 0.26, 0.18))
_HAIR = ((0.07, 0.06, 0.05), (0.16, 0.11, 0.08), (0.32, 0.2, 0.11), (0.5, 0.34, 0.18),
         (0.78, 0.63, 0.38), (0.55, 0.22, 0.1), (0.62, 0.6, 0.58))
_NEUTRALS = ((0.08, 0.08, 0.09), (0.93, 0.93, 0.92), (0.5, 0.5, 0.52), (0.14, 0.17, 0.32),
             (0.25, 0.35, 0.55), (0.75, 0.68, 0.52), (0.35, 0.25, 0.18))
_TROUSERS = ((0.17, 0.25, 0.42), (0.28, 0.38, 0.56), (0.08, 0.08, 0.09), (0.35, 0.35, 0.37),
             (0.66, 0.6, 0.45), (0.14, 0.16, 0.28), (0.3, 0.27, 0.2))
_SHOES = ((0.06, 0.06, 0.06), (0.92, 0.92, 0.9), (0.35, 0.22, 0.13), (0.55, 0.55, 0.57), (0.6, 0.1, 0.1))


def _jitter(d: Draws, colour: Sequence[float], amount: float = 0.04) -> Colour:
    return tuple(min(0.98, max(0.02, float(c) + d.normal(0.0, amount))) for c in colour)  # type: ignore


def _random_colour(d: Draws) -> Colour:
    """A plausible fabric colour: a neutral 35% of the time, otherwise a muted or vivid hue."""
    if d.random() < 0.35:
        return _jitter(d, d.choice(_NEUTRALS), 0.03)
    h = d.random()
    s = d.uniform(0.15, 0.45) if d.random() < 0.5 else d.uniform(0.5, 0.9)
    return tuple(float(c) for c in colorsys.hsv_to_rgb(h, s, d.uniform(0.25, 0.95)))  # type: ignore


def _contrasting(d: Draws, colour: Colour) -> Colour:
    """A second colour clearly different from ``colour`` (patterns must be visible)."""
    for _ in range(20):
        c = _random_colour(d)
        if sum(abs(a - b) for a, b in zip(c, colour)) > 0.6:
            return c
    return tuple(1.0 - v for v in colour)  # type: ignore[return-value]


def _garment(d: Draws, colour: Colour, patterns: Sequence[str], probs: Sequence[float]) -> Garment:
    return Garment(colour=colour, colour2=_contrasting(d, colour), pattern=d.choice(patterns, probs),
                   period=d.uniform(0.035, 0.075), around=d.integers(6, 14))


def sample_identity(rng: np.random.Generator | int | Draws, kind: str = "market", index: int = 0) -> Identity:
    """A random person (appearance and body proportions) for ``kind`` = market | fashion."""
    d = _draws(rng)
    kind = _check_kind(kind)
    women = d.random() < (0.65 if kind == "fashion" else 0.5)
    skin = _jitter(d, d.choice(_SKIN), 0.025)
    hair = _jitter(d, d.choice(_HAIR), 0.02)
    if women:
        style = d.choice(("long", "bun", "short", "fringe"), (0.55, 0.15, 0.2, 0.1))
    else:
        style = d.choice(("short", "fringe", "bald", "long"), (0.68, 0.12, 0.1, 0.1))
    front = {"short": d.uniform(0.38, 0.5), "fringe": d.uniform(0.22, 0.3), "long": d.uniform(0.32, 0.45),
             "bun": d.uniform(0.38, 0.48), "bald": 0.92}[style]
    back = {"short": d.uniform(-0.6, -0.35), "fringe": d.uniform(-0.6, -0.35), "long": -1.1,
            "bun": d.uniform(-0.7, -0.5), "bald": d.uniform(-0.3, 0.1)}[style]

    top_kind = d.choice(("tshirt", "longsleeve", "shirt", "jacket", "tank"),
                        (0.33, 0.2, 0.15, 0.2, 0.12) if women else (0.38, 0.22, 0.18, 0.18, 0.04))
    top = _garment(d, _random_colour(d), ("solid", "hstripes", "vstripes", "checks", "dots", "colorblock"),
                   (0.3, 0.2, 0.1, 0.17, 0.1, 0.13) if top_kind != "jacket" else (0.6, 0.1, 0.05, 0.15, 0.0, 0.1))
    sleeve = {"tshirt": d.uniform(0.18, 0.32), "longsleeve": d.uniform(0.9, 1.0), "shirt": d.uniform(0.55, 1.0),
              "jacket": d.uniform(0.92, 1.0), "tank": 0.0}[top_kind]
    neckline = d.choice(("round", "v", "collar"), (0.6, 0.25, 0.15) if top_kind != "shirt" else (0.1, 0.2, 0.7))
    logo = "none"
    if top_kind in ("tshirt", "tank", "longsleeve") and d.random() < 0.5:
        logo = d.choice(("circle", "square", "diamond", "ring", "bar", "triangle"))
    bottom_kind = d.choice(("trousers", "shorts", "skirt", "dress"), (0.45, 0.15, 0.2, 0.2)) if women \
        else d.choice(("trousers", "shorts"), (0.8, 0.2))
    if bottom_kind == "dress":
        bottom = top
        top_kind = "tank" if top_kind in ("jacket", "shirt") else top_kind
        sleeve = sleeve if top_kind == "longsleeve" else min(sleeve, 0.3)
    else:
        base = _jitter(d, d.choice(_TROUSERS), 0.03) if d.random() < 0.7 else _random_colour(d)
        bottom = _garment(d, base, ("solid", "checks", "hstripes", "vstripes"), (0.82, 0.08, 0.04, 0.06))
    tucked = (top_kind == "shirt" and d.random() < 0.6 or d.random() < 0.15) and bottom_kind != "dress"
    shoes = _jitter(d, d.choice(_SHOES), 0.03) if d.random() < 0.85 else _random_colour(d)
    n_cams = d.integers(2, 5)
    return Identity(
        index=int(index), kind=kind, gender="WOMEN" if women else "MEN", skin=skin, hair=hair, hair_style=style,
        hairline_front=front, hairline_back=back,
        hair_length=d.uniform(0.13, 0.24) if style == "long" else 0.0,
        head=d.uniform(0.06, 0.068),
        shoulder=d.uniform(0.088, 0.102) if women else d.uniform(0.102, 0.118),
        hip=d.uniform(0.075, 0.085) if women else d.uniform(0.066, 0.076),
        chest_depth=d.uniform(0.055, 0.07), limb=d.uniform(0.88, 1.15), leg=d.uniform(0.95, 1.05),
        top_kind=top_kind, top=top, inner=_contrasting(d, top.colour), neckline=neckline, sleeve=sleeve,
        logo=logo, logo_colour=_contrasting(d, top.colour),
        back_print=d.choice(("none", "band", "block"), (0.6, 0.2, 0.2)), tucked=tucked,
        bottom_kind=bottom_kind, bottom=bottom,
        leg_cover={"trousers": d.uniform(0.9, 1.0), "shorts": d.uniform(0.28, 0.42)}.get(bottom_kind, 0.0),
        skirt_length=d.uniform(0.16, 0.36) if bottom_kind in ("skirt", "dress") else 0.0,
        belt=_jitter(d, _SHOES[d.integers(0, 3)], 0.03) if tucked and d.random() < 0.6 else None,
        shoes=shoes,
        soles=(0.9, 0.9, 0.88) if d.random() < 0.4 else (0.6 * shoes[0], 0.6 * shoes[1], 0.6 * shoes[2]),
        backpack=_random_colour(d) if kind == "market" and d.random() < 0.25 else None,
        cameras=tuple(sorted(d.sample(range(1, 7), n_cams))), outfit=d.integers(1, 6),
    )


def _arm(flex: float, abd: float, elbow: float, ref: Sequence[float] = (0.0, 0.25, 1.0)):
    return (float(flex), float(abd), float(elbow), float(ref[0]), float(ref[1]), float(ref[2]))


def _sample_arms(d: Draws, family: str):
    """(right arm, left arm) angles of a pose family; the arm not doing the gesture hangs naturally."""
    def hang():
        return _arm(d.normal(2, 8), d.uniform(4, 14), d.uniform(5, 25))

    def one_or_both(gesture: Callable[[], tuple], both: float):
        r, l = hang(), hang()
        u = d.random()
        if u < both:
            return gesture(), gesture()
        return (gesture(), l) if u < both + (1 - both) / 2 else (r, gesture())

    if family == "raise":
        def raised():
            if d.random() < 0.5:
                return _arm(d.normal(0, 10), d.uniform(115, 170), d.uniform(0, 30))
            return _arm(d.uniform(115, 170), d.uniform(0, 20), d.uniform(0, 30))
        return one_or_both(raised, 0.4)
    if family == "wave":
        return one_or_both(lambda: _arm(d.uniform(-5, 25), d.uniform(45, 90), d.uniform(70, 120), (0.2, 1.0, 0.25)), 0)
    if family == "akimbo":
        return one_or_both(lambda: _arm(d.uniform(-15, 0), d.uniform(35, 55), d.uniform(90, 118), (-1.0, -0.3, -0.2)),
                           0.5)
    if family == "cross":
        return (_arm(d.uniform(20, 40), d.uniform(10, 25), d.uniform(105, 130), (-1.0, 0.2, 0.6)),
                _arm(d.uniform(20, 40), d.uniform(10, 25), d.uniform(105, 130), (-1.0, 0.35, 0.7)))
    if family == "behind":
        return (_arm(d.uniform(-32, -15), d.uniform(5, 15), d.uniform(50, 90), (-1.0, 0.0, -0.8)),
                _arm(d.uniform(-32, -15), d.uniform(5, 15), d.uniform(50, 90), (-1.0, 0.0, -0.8)))
    if family == "reach":
        def reach():
            if d.random() < 0.5:
                return _arm(d.uniform(60, 100), d.uniform(0, 25), d.uniform(0, 20))
            return _arm(d.uniform(-10, 20), d.uniform(65, 95), d.uniform(0, 20))
        return one_or_both(reach, 0)
    if family == "phone":
        return one_or_both(lambda: _arm(d.uniform(10, 35), d.uniform(15, 35), d.uniform(122, 145), (0.0, 0.7, 0.7)), 0)
    return hang(), hang()


def _clampf(v: float, lo: float, hi: float) -> float:
    return lo if v < lo else hi if v > hi else v


def sample_pose(rng: np.random.Generator | int | Draws, kind: str = "market", view: str | None = None,
                family: str | None = None) -> PoseParams:
    """A random pose: ``view`` in front | back | side | three_quarter and ``family`` (see FAMILIES)."""
    d = _draws(rng)
    kind = _check_kind(kind)
    if view is None:
        view = d.choice(VIEWS, VIEW_PROBS)
    if view not in VIEWS:
        raise PoseError(f"unknown view {view!r} (choose from {', '.join(VIEWS)})")
    if family is None:
        family = d.choice(FAMILIES, FAMILY_PROBS)
    if family not in FAMILIES:
        raise PoseError(f"unknown pose family {family!r} (choose from {', '.join(FAMILIES)})")
    sign = 1.0 if d.random() < 0.5 else -1.0
    if view == "front":
        yaw = d.normal(0, 12)
    elif view == "back":
        yaw = 180 + d.normal(0, 12)
    elif view == "side":
        yaw = sign * (90 + d.normal(0, 10))
    else:
        yaw = sign * (d.uniform(30, 60) if d.random() < 0.65 else d.uniform(120, 150))

    arm_r, arm_l = _sample_arms(d, family)
    lean, twist = d.normal(0, 3), d.normal(0, 4)
    leg_r = [d.normal(0, 4), d.uniform(0, 8), d.uniform(0, 8), d.uniform(0, 15)]
    leg_l = [d.normal(0, 4), d.uniform(0, 8), d.uniform(0, 8), d.uniform(0, 15)]
    stance = d.choice(("straight", "contrapposto", "wide", "cross"), (0.45, 0.3, 0.15, 0.1))
    if stance == "contrapposto":
        bent = leg_r if d.random() < 0.5 else leg_l
        bent[0], bent[2] = d.uniform(5, 18), d.uniform(15, 32)
    elif stance == "wide":
        leg_r[1], leg_l[1] = d.uniform(10, 20), d.uniform(10, 20)
    elif stance == "cross":
        crossed = leg_r if d.random() < 0.5 else leg_l
        crossed[0], crossed[1], crossed[2] = d.uniform(0, 10), d.uniform(-12, -6), d.uniform(5, 15)
    if family in ("walk", "run"):
        run = family == "run"
        s = math.sin(d.uniform(0, 2 * math.pi))
        amp = d.uniform(30, 45) if run else d.uniform(14, 30)
        for leg, sg in ((leg_r, 1.0), (leg_l, -1.0)):
            f = sg * amp * s
            leg[0], leg[1] = f, d.uniform(0, 6)
            behind = min(1.0, max(0.0, -f / amp + 0.25))
            leg[2] = d.uniform(3, 10) + (d.uniform(50, 90) if run else d.uniform(25, 45)) * behind
            if run and f > 0:
                leg[2] = max(leg[2], d.uniform(30, 60))
        arm_amp = d.uniform(35, 50) if run else d.uniform(10, 30)
        if run or d.random() < 0.75:  # some walkers keep their gesture (phoning, waving while walking)
            elbow_lo, elbow_hi = (80, 100) if run else (10, 35)
            arm_r = _arm(-arm_amp * s, d.uniform(4, 12), d.uniform(elbow_lo, elbow_hi))
            arm_l = _arm(arm_amp * s, d.uniform(4, 12), d.uniform(elbow_lo, elbow_hi))
        twist = 0.25 * arm_amp * s
        lean = d.uniform(8, 15) if run else d.uniform(0, 5)

    def limit_arm(a):
        return (_clampf(a[0] + d.normal(0, 3), -50, 175), _clampf(a[1] + d.normal(0, 3), -15, 175),
                _clampf(a[2] + d.normal(0, 3), 0, 150), a[3], a[4], a[5])

    def limit_leg(g):
        return (_clampf(g[0], -35, 110), _clampf(g[1], -15, 45), _clampf(g[2], 0, 140), _clampf(g[3], -10, 30))

    lx, ly, lz = d.uniform(-0.8, 0.8), -d.uniform(0.2, 0.7), d.uniform(0.6, 1.0)
    ln = math.sqrt(lx * lx + ly * ly + lz * lz)
    fashion = kind == "fashion"
    return PoseParams(
        view=view, family=family, yaw=yaw, lean=_clampf(lean, -10, 25), side_bend=_clampf(d.normal(0, 3), -8, 8),
        twist=_clampf(twist, -20, 20), head_turn=_clampf(d.normal(0, 14), -40, 40),
        head_tilt=_clampf(d.normal(0, 6), -15, 15),
        arm_r=limit_arm(arm_r), arm_l=limit_arm(arm_l), leg_r=limit_leg(leg_r), leg_l=limit_leg(leg_l),
        fill=d.uniform(0.84, 0.92) if fashion else d.uniform(0.85, 0.94), fill_w=d.uniform(0.88, 0.96),
        ground=d.uniform(0.95, 0.985) if fashion else d.uniform(0.945, 0.985),
        shift=d.uniform(-0.05, 0.05) if fashion else d.uniform(-0.07, 0.07),
        pan=d.uniform(-MAX_PAN, MAX_PAN), horizon=d.uniform(-MAX_HORIZON, MAX_HORIZON),
        light=(lx / ln, ly / ln, lz / ln), ambient=d.uniform(0.42, 0.56), gain=d.uniform(0.88, 1.1),
        tint=_jitter(d, (1.0, 1.0, 1.0), 0.025),
    )


# --------------------------------------------------------------------------------------------------
# Kinematics in plain Python floats (3-vectors as tuples): 3-D skeleton → projected 2-D rig
# --------------------------------------------------------------------------------------------------
Vec = tuple[float, float, float]
Mat = tuple[Vec, Vec, Vec]


def _rotx(a: float) -> Mat:
    c, s = math.cos(a), math.sin(a)
    return ((1.0, 0.0, 0.0), (0.0, c, -s), (0.0, s, c))


def _roty(a: float) -> Mat:
    c, s = math.cos(a), math.sin(a)
    return ((c, 0.0, s), (0.0, 1.0, 0.0), (-s, 0.0, c))


def _rotz(a: float) -> Mat:
    c, s = math.cos(a), math.sin(a)
    return ((c, -s, 0.0), (s, c, 0.0), (0.0, 0.0, 1.0))


def _mv(m: Mat, v: Sequence[float]) -> Vec:
    return (m[0][0] * v[0] + m[0][1] * v[1] + m[0][2] * v[2],
            m[1][0] * v[0] + m[1][1] * v[1] + m[1][2] * v[2],
            m[2][0] * v[0] + m[2][1] * v[1] + m[2][2] * v[2])


def _mm(a: Mat, b: Mat) -> Mat:
    return tuple(tuple(a[i][0] * b[0][j] + a[i][1] * b[1][j] + a[i][2] * b[2][j] for j in range(3))
                 for i in range(3))  # type: ignore[return-value]


def _add(a: Sequence[float], b: Sequence[float], k: float = 1.0) -> Vec:
    return (a[0] + k * b[0], a[1] + k * b[1], a[2] + k * b[2])


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _normalize(v: Sequence[float]) -> Vec:
    n = math.sqrt(_dot(v, v))
    return (v[0] / n, v[1] / n, v[2] / n) if n > 1e-9 else (v[0], v[1], v[2])


def _orthogonal(ref: Vec, d: Vec) -> Vec:
    """The unit component of ``ref`` orthogonal to the unit vector ``d``."""
    return _normalize(_add(ref, d, -_dot(ref, d)))


_DOWN: Vec = (0.0, -1.0, 0.0)
# Body lengths in body heights (sole to top of the head = 1).
SPINE, UPPER_ARM, FOREARM, HAND, THIGH, SHIN, FOOT = 0.29, 0.165, 0.145, 0.085, 0.245, 0.245, 0.115

#: Points of a skeleton: the 18 joints first (COCO order), then the extra points the drawing needs.
_EXTRA = ("head", "r_hand", "l_hand", "r_heel", "r_toe", "l_heel", "l_toe", "hair_top", "hair_end", "bun",
          "pack", "hip_c", "waist", "mouth")
_MOUTH: Vec = (0.0, -0.5, 0.87)
_NAMES = K.JOINT_NAMES + _EXTRA
_IX = {name: i for i, name in enumerate(_NAMES)}
#: Points whose drawing radius (body heights) extends the figure's bounding box used for framing.
_FRAME_MARGIN = {"r_hand": 0.022, "l_hand": 0.022, "r_shoulder": 0.035, "l_shoulder": 0.035, "neck": 0.035,
                 "r_hip": 0.045, "l_hip": 0.045, "r_heel": 0.03, "r_toe": 0.03, "l_heel": 0.03, "l_toe": 0.03,
                 "r_elbow": 0.03, "l_elbow": 0.03, "r_knee": 0.04, "l_knee": 0.04, "r_ankle": 0.03,
                 "l_ankle": 0.03, "r_wrist": 0.025, "l_wrist": 0.025}
_FRAME = tuple((_IX[n], m) for n, m in _FRAME_MARGIN.items())


@dataclass
class _Rig:
    """A projected skeleton in pixels: points (N, 2) (x, y), depth (N,) (towards the camera), plus sizes."""

    pts: np.ndarray
    xy: list                         # the same points as Python (x, y) tuples (fast access)
    depth: list                      # body heights, larger = nearer to the camera
    scale: float                     # pixels per body height
    yaw: float                       # radians
    cam_head: Mat                    # head frame → camera frame
    torso_w: tuple[float, float]     # projected half-widths (shoulders, hips) in body heights
    pack_w: float
    face_visible: dict[int, bool]

    def p(self, name: str) -> tuple[float, float]:
        return self.xy[_IX[name]]

    def z(self, name: str) -> float:
        return self.depth[_IX[name]]


def _skeleton(ident: Identity, pose: PoseParams) -> tuple[list[Vec], Mat]:
    """3-D points in the person frame (x = the person's left, y = up, z = forward), hip centre at 0.

    Returns (points in ``_NAMES`` order, head rotation).
    """
    rad = math.radians
    pts: list[Vec] = [(0.0, 0.0, 0.0)] * len(_NAMES)
    rt = _mm(_mm(_roty(rad(pose.twist)), _rotx(rad(pose.lean))), _rotz(rad(pose.side_bend)))
    rp = _roty(rad(-0.5 * pose.twist))
    neck = _mv(rt, (0.0, SPINE, 0.0))
    pts[_IX["neck"]] = neck
    pts[_IX["waist"]] = _mv(rt, (0.0, 0.075, 0.0))
    fwd_t = _mv(rt, (0.0, 0.0, 1.0))
    for sg, sd, params in ((-1.0, "r", pose.arm_r), (1.0, "l", pose.arm_l)):
        flex, abd, elbow, rx, ry, rz = params
        shoulder = _add(neck, _mv(rt, (sg * ident.shoulder, 0.0, 0.0)))
        d = _mv(rt, _mv(_rotx(-rad(flex)), _mv(_rotz(sg * rad(abd)), _DOWN)))
        ref = _mv(rt, _normalize((sg * rx, ry, rz)))
        b = _add(ref, d, -_dot(ref, d))
        if _dot(b, b) < 1e-6:
            b = _add(fwd_t, d, -_dot(fwd_t, d))
        b = _normalize(b)
        e = rad(elbow)
        fa = _add(_add((0.0, 0.0, 0.0), d, math.cos(e)), b, math.sin(e))
        elbow_p = _add(shoulder, d, UPPER_ARM)
        wrist = _add(elbow_p, fa, FOREARM)
        pts[_IX[sd + "_shoulder"]], pts[_IX[sd + "_elbow"]] = shoulder, elbow_p
        pts[_IX[sd + "_wrist"]], pts[_IX[sd + "_hand"]] = wrist, _add(wrist, fa, HAND)
    back = _mv(rp, (0.0, 0.0, -1.0))
    for sg, sd, params in ((-1.0, "r", pose.leg_r), (1.0, "l", pose.leg_l)):
        flex, abd, knee, toe_out = params
        hip = _mv(rp, (sg * ident.hip, 0.0, 0.0))
        d = _mv(rp, _mv(_rotx(-rad(flex)), _mv(_rotz(sg * rad(abd)), _DOWN)))
        b = _orthogonal(back, d)
        k = rad(knee)
        shin = _add(_add((0.0, 0.0, 0.0), d, math.cos(k)), b, math.sin(k))
        knee_p = _add(hip, d, THIGH * ident.leg)
        ankle = _add(knee_p, shin, SHIN * ident.leg)
        foot = _orthogonal(_mv(rp, _mv(_roty(sg * rad(toe_out)), (0.0, 0.0, 1.0))), shin)
        sole = _add(ankle, shin, 0.03)
        pts[_IX[sd + "_hip"]], pts[_IX[sd + "_knee"]], pts[_IX[sd + "_ankle"]] = hip, knee_p, ankle
        pts[_IX[sd + "_heel"]] = _add(sole, foot, -0.025)
        pts[_IX[sd + "_toe"]] = _add(sole, foot, FOOT)
    rh = _mm(_mm(rt, _roty(rad(pose.head_turn))), _rotx(rad(pose.head_tilt)))
    r = ident.head
    head = _add(_add(neck, _mv(rt, (0.0, 0.048, 0.008))), _mv(rh, (0.0, 1.02 * r, 0.0)))
    pts[_IX["head"]] = head
    for j, (unit, _) in _FACE_POINTS.items():
        pts[j] = _add(head, _mv(rh, (unit[0] * r, unit[1] * 1.12 * r, unit[2] * r)))
    pts[_IX["mouth"]] = _add(head, _mv(rh, (_MOUTH[0] * r, _MOUTH[1] * 1.12 * r, _MOUTH[2] * r)))
    pts[_IX["hair_top"]] = _add(head, _mv(rh, (0.0, 0.05 * r, -0.55 * r)))
    # long hair hangs behind the back: its lower end lies just behind the torso's back surface
    pts[_IX["hair_end"]] = _add(neck, _mv(rt, (0.0, 0.12 - ident.hair_length, -(ident.chest_depth + 0.015))))
    pts[_IX["bun"]] = _add(head, _mv(rh, (0.0, 0.62 * r, -0.78 * r)))
    pts[_IX["pack"]] = _add(neck, _mv(rt, (0.0, -0.13, -(ident.chest_depth + 0.04))))
    return pts, rh


def _project(ident: Identity, pose: PoseParams, size: tuple[int, int]) -> _Rig:
    """Rotate the skeleton by the view yaw, project it and fit the figure into the frame."""
    h, w = size
    pts3, rh = _skeleton(ident, pose)
    yaw = math.radians(pose.yaw)
    cy_, sy_ = math.cos(yaw), math.sin(yaw)
    xs = [p[0] * cy_ + p[2] * sy_ for p in pts3]
    ys = [-p[1] for p in pts3]
    depth = [p[2] * cy_ - p[0] * sy_ for p in pts3]
    # projected torso half-widths: an elliptic cross-section seen under the yaw (+ shoulder/hip twist)
    a_sh = yaw + math.radians(pose.twist)
    a_hp = yaw - math.radians(0.5 * pose.twist)
    w_sh = math.hypot((ident.shoulder + 0.022 * ident.limb) * math.cos(a_sh), ident.chest_depth * math.sin(a_sh))
    w_hp = math.hypot((ident.hip + 0.055 * ident.limb) * math.cos(a_hp), (ident.chest_depth + 0.005) * math.sin(a_hp))
    # bounding box of the drawn figure (points grown by their drawing radius), in body heights
    ih, hr = _IX["head"], ident.head
    neck_x, hip_x = xs[_IX["neck"]], xs[_IX["hip_c"]]
    lo_x = min(xs[ih] - hr, neck_x - w_sh, hip_x - w_hp)
    hi_x = max(xs[ih] + hr, neck_x + w_sh, hip_x + w_hp)
    lo_y, hi_y = ys[ih] - 1.15 * hr, -1e9
    for i, m in _FRAME:
        x, y = xs[i], ys[i]
        lo_x, hi_x = min(lo_x, x - m), max(hi_x, x + m)
        lo_y, hi_y = min(lo_y, y - m), max(hi_y, y + m)
    scale = min(pose.fill * h / (hi_y - lo_y), pose.fill_w * w / (hi_x - lo_x))
    ox = w / 2.0 - 0.5 + pose.shift * w - scale * (lo_x + hi_x) / 2.0
    oy = pose.ground * h - scale * hi_y
    xy = [(x * scale + ox, y * scale + oy) for x, y in zip(xs, ys)]
    ry = _roty(yaw)
    cam_head = _mm(ry, rh)
    visible = {j: _dot(cam_head[2], _normalize(unit)) > thr for j, (unit, thr) in _FACE_POINTS.items()}
    return _Rig(pts=np.array(xy), xy=xy, depth=depth, scale=scale,
                yaw=(yaw + math.pi) % (2 * math.pi) - math.pi,
                cam_head=cam_head, torso_w=(w_sh, w_hp),
                pack_w=math.hypot(0.08 * math.cos(a_sh), 0.05 * math.sin(a_sh)), face_visible=visible)


# --------------------------------------------------------------------------------------------------
# Rasteriser
# --------------------------------------------------------------------------------------------------
class _Canvas:
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

    def _box(self, x0: float, x1: float, y0: float, y1: float):
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
        colour = _planes(colour, 2)
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

    def capsules(self, caps: Sequence["_Capsule"]) -> "_CapsuleBatch":
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
            box = self._box(min(x0, x1) - rm, max(x0, x1) + rm, min(y0, y1) - rm, max(y0, y1) + rm)
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
        batch = _CapsuleBatch(kept, boxes, sizes, perps)
        if not kept:
            return batch
        grid = self.grid
        z = np.concatenate([grid[ya:yb, xa:xb].ravel() for ya, yb, xa, xb in boxes])
        turn = np.repeat(np.asarray(turns, dtype=np.complex64), sizes, axis=0)
        par = np.repeat(np.asarray(rows, dtype=_F32), sizes, axis=0)
        w = z * turn[:, 0]
        w += turn[:, 1]                                         # real: along the axis, imag: across it
        c = _clip(w.real, _F32(0.0), par[:, 0])
        w -= c                                                  # offset from the nearest axis point
        t = c * par[:, 1]
        r = t * par[:, 3]
        r += par[:, 2]
        alpha = r + 0.5
        alpha -= np.abs(w)
        _clip(alpha, 0.0, 1.0, out=alpha)
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
        box = self._box(min(cx) - 1.0, max(cx) + 1.0, min(cy) - 1.0, max(cy) + 1.0)
        if box is None:
            return None
        ya, yb, xa, xb = box
        rot = complex(dx, -dy) / length                  # the axis onto +real; +imag = the image right
        q = self.grid[ya:yb, xa:xb] * rot
        q -= complex(top[0], top[1]) * rot
        u, v = q.real, q.imag
        un = u * (1.0 / length)
        _clip(un, 0.0, 1.0, out=un)
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
        _clip(alpha, 0.0, 1.0, out=alpha)
        s = v / width
        _clip(s, -1.0, 1.0, out=s)
        return box, alpha, un, s, (-dy / length, dx / length), length


@functools.lru_cache(maxsize=8)
def _complex_grid(h: int, w: int) -> np.ndarray:
    grid = (np.arange(w, dtype=np.float32)[None, :] + 1j * np.arange(h, dtype=np.float32)[:, None])
    grid = grid.astype(np.complex64)
    grid.flags.writeable = False
    return grid


def _square_wave(x: np.ndarray, sharp: float = 2.5) -> np.ndarray:
    """A soft 0/1 square wave of period 1 (anti-aliased stripes)."""
    m = np.cos(x * (2 * math.pi))
    m *= sharp
    m += 0.5
    return _clip(m, 0.0, 1.0, out=m)


def _pattern(g: Garment, u: np.ndarray, phi: np.ndarray | None) -> np.ndarray | None:
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
        return _clip(m, 0.0, 1.0, out=m)
    return None


def _planes(colour, ndim: int) -> np.ndarray:
    """A colour (3,) as planes broadcasting against ``ndim``-D fields; planes (3, ...) unchanged."""
    colour = np.asarray(colour, dtype=_F32)
    return colour.reshape((3,) + (1,) * ndim) if colour.ndim == 1 else colour


def _blend(base, mask: np.ndarray | None, other) -> np.ndarray:
    """``base`` with ``other`` where ``mask`` (0..1, any shape S) is set; colours (3,) or planes (3, *S)."""
    if mask is None:
        return base
    base = _planes(base, mask.ndim)
    return base + mask * (_planes(other, mask.ndim) - base)


def _paint(planes: np.ndarray, mask: np.ndarray, colour) -> None:
    """Set the pixels of ``planes`` (3, *S) where the boolean ``mask`` (S) is true to ``colour`` (3,)."""
    planes[:, mask] = np.asarray(colour, dtype=_F32)[:, None]


def _needs_phi(g: Garment) -> bool:
    return g.pattern in ("vstripes", "checks", "dots")


def _garment_colour(g: Garment, u: np.ndarray, phi: np.ndarray | None) -> np.ndarray:
    return _blend(g.colour, _pattern(g, u, phi), g.colour2)


# --------------------------------------------------------------------------------------------------
# Drawing one person
# --------------------------------------------------------------------------------------------------
@dataclass
class _Capsule:
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


class _CapsuleBatch:
    """Flat per-pixel geometry of several capsules (see :meth:`_Canvas.capsules`).

    ``kept[j]`` is the index of the j-th capsule with pixels in the image; its pixels are
    ``offsets[j]:offsets[j + 1]`` of the flat arrays and fill its ``boxes[j]`` row by row; ``perps[j]`` is
    the screen direction across it (the direction of ``s``).
    """

    def __init__(self, kept: list[int], boxes: list, sizes: list[int], perps: list[tuple[float, float]]) -> None:
        self.kept, self.boxes, self.perps = kept, boxes, perps
        self.offsets = [0]
        for n in sizes:
            self.offsets.append(self.offsets[-1] + n)
        self.alpha = self.t = self.s = self.length = np.zeros(0, dtype=_F32)



def _colour_capsules(cv: _Canvas, caps: Sequence[_Capsule], batch: _CapsuleBatch,
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
                                             dtype=_F32), sizes))
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
                garment = np.asarray(g.colour, dtype=_F32)
            else:
                u = tt * length
                u *= _F32(1.0 / scale)
                u += np.repeat(np.asarray([c.u0 for c in run], dtype=_F32), sizes[j:end])
                phi = np.arcsin(np.clip(s[seg], -1.0, 1.0)) if _needs_phi(g) else None
                garment = _garment_colour(g, u, phi)
            # 1 under the garment, 0 beyond its end (a covered limb: 1 all along)
            cover = np.repeat(np.asarray([c.cover if c.cover < 1 else 1e6 for c in run], dtype=_F32), sizes[j:end])
            m = cover - tt
            m *= length
            m += 0.5
            _clip(m, 0.0, 1.0, out=m)
            colour[:, seg] = _blend(colour[:, seg], m, garment)
        j = end
    for j, i in enumerate(kept):
        c = caps[i]
        if c.flat is not None:
            lam[offsets[j]:offsets[j + 1]] = c.flat
        elif c.sole is not None and abs(batch.perps[j][1]) > 0.3:  # a shoe seen from the side: its sole
            seg = slice(offsets[j], offsets[j + 1])
            sole = s[seg] * math.copysign(6.0, batch.perps[j][1]) - 2.7
            colour[:, seg] = _blend(colour[:, seg], _clip(sole, 0.0, 1.0, out=sole), c.sole)
    lam *= batch.alpha
    colour *= lam
    return 1.0 - batch.alpha, colour


def _solid_colour(shape: tuple[int, ...], colour) -> np.ndarray:
    """Planes (3, *shape) filled with ``colour``."""
    out = np.empty((3,) + tuple(shape), dtype=_F32)
    out[...] = _planes(colour, len(shape))
    return out


#: Resolution of the torso texture (rows down the body, columns around it) for each size.
_TEX_SIZE = {"market": (64, 128), "fashion": (128, 256)}


def _torso_length(ident: Identity) -> float:
    """Top of the shoulders to the hem, body heights (the torso texture's height)."""
    return SPINE + 0.035 + (0.02 if ident.tucked else 0.04)


@functools.lru_cache(maxsize=64)
def _torso_texture(ident: Identity) -> np.ndarray:
    """The shirt as a (u, phi) texture: rows = body heights from the top of the shoulders to the hem,
    columns = angle around the body from -π to π (0 = the person's front).

    Made once per person, so every pose only looks colours up; garment details are hard masks.
    """
    total = _torso_length(ident)
    hem = 0.02 if ident.tucked else 0.04
    n_u, n_phi = _TEX_SIZE[ident.kind]
    u = (np.arange(n_u, dtype=_F32) * (total / (n_u - 1)))[:, None]
    phi = ((np.arange(n_phi, dtype=_F32) + 0.5) * (2 * math.pi / n_phi) - math.pi)[None, :]
    u, phi = np.broadcast_arrays(u, phi)
    un = u * (1.0 / total)
    front = np.abs(phi)
    skin = ident.skin
    g = ident.top
    pattern = _pattern(g, u, phi)
    colour = _solid_colour(u.shape, g.colour) if pattern is None else _blend(g.colour, pattern, g.colour2)
    du = 1.5 * total / (n_u - 1)                     # soft edges about one texel wide

    def soft(inside: np.ndarray, value) -> None:
        """Blend ``value`` where ``inside`` (a signed distance in body heights, > 0 inside) is positive."""
        m = inside * (1.0 / du) + 0.5
        colour[...] = _blend(colour, _clip(m, 0.0, 1.0, out=m), value)

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
        _paint(colour, shapes[ident.logo](), ident.logo_colour)
    if ident.back_print == "band":
        _paint(colour, (front > math.pi - 0.75) & (np.abs(u - 0.12) < 0.025), ident.logo_colour)
    elif ident.back_print == "block":
        _paint(colour, (front > math.pi - 0.5) & (np.abs(u - 0.13) < 0.05), ident.logo_colour)
    if ident.top_kind == "shirt":
        _paint(colour, (front < 0.06) & (np.mod(u, 0.05) < 0.012) & (u > 0.06), ident.inner)
    if ident.backpack is not None:                   # shoulder straps
        _paint(colour, (np.abs(front - 0.75) < 0.13) & (u < 0.2), tuple(0.7 * c for c in ident.backpack))
    # neckline at the front: a collar, a V or a round cut
    if ident.neckline == "collar":
        _paint(colour, (front < 0.7) & (u < 0.035), ident.inner)
        soft(front * -0.5 + 0.09 - u, skin)
    elif ident.neckline == "v":
        soft(front * -0.3 + 0.105 - u, skin)
    else:
        soft(front * front * -0.16 + 0.07 - u, skin)
    if ident.top_kind == "tank":                     # bare shoulders beside the straps
        _paint(colour, (np.abs(front - 1.2) < 0.3) & (u < 0.06), skin)
    # below the waist: the bottom garment (tucked shirts, skirts, dresses) and a belt
    if ident.tucked or ident.bottom_kind in ("skirt", "dress"):
        waist = total - (0.075 + hem)
        b = ident.bottom
        bp = _pattern(b, u, phi)
        soft(u - waist, b.colour if bp is None else _blend(b.colour, bp, b.colour2))
        if ident.belt is not None:
            _paint(colour, np.abs(u - (waist + 0.008)) < 0.011, ident.belt)
    colour.flags.writeable = False
    return colour


def _draw_torso(cv: _Canvas, rig: _Rig, ident: Identity, skin: np.ndarray) -> None:
    """The torso: a rounded trapezoid with the person's shirt texture looked up at (u, phi)."""
    sc = rig.scale
    (nx, ny), (hx, hy) = rig.p("neck"), rig.p("hip_c")
    ln = math.hypot(hx - nx, hy - ny) or 1.0
    ax, ay = (hx - nx) / ln, (hy - ny) / ln
    hem = 0.02 if ident.tucked else 0.04
    top = (nx - ax * 0.035 * sc, ny - ay * 0.035 * sc)
    bottom = (hx + ax * hem * sc, hy + ay * hem * sc)
    w_sh, w_hp = rig.torso_w
    geo = cv.trapezoid(top, bottom, w_sh * sc, w_hp * sc, corner=0.045 * sc)
    if geo is None:
        return
    box, alpha, un, s, perp, length = geo
    texture = _torso_texture(ident)
    n_u, n_phi = texture.shape[1:]
    rows = un * (n_u - 1)
    rows += 0.5
    # column: phi = arcsin(s) - yaw wrapped to [-π, π); the offset keeps the value positive for the cast
    cols = np.arcsin(s)
    cols *= n_phi / (2 * math.pi)
    cols += (math.pi - rig.yaw) * n_phi / (2 * math.pi) + 4 * n_phi
    index = rows.astype(np.intp)
    index *= n_phi
    index += cols.astype(np.intp) % n_phi
    colour = np.take(texture.reshape(3, -1), index, axis=1)
    cv.composite(box, alpha, colour, cv.shade(s, perp), P_TORSO)


def _draw_skirt(cv: _Canvas, rig: _Rig, ident: Identity) -> None:
    sc = rig.scale
    (wx, wy), (hx, hy) = rig.p("waist"), rig.p("hip_c")
    ln = math.hypot(hx - wx, hy - wy) or 1.0
    bottom = (wx + (hx - wx) / ln * ident.skirt_length * sc, wy + (hy - wy) / ln * ident.skirt_length * sc)
    w_top = rig.torso_w[1] * sc * 1.03
    flare = w_top * 1.35
    frac = min(1.2, max(0.0, (ident.skirt_length - 0.075) / (THIGH * ident.leg)))
    for side in ("r", "l"):  # the hem must cover both thighs
        hip, knee = rig.p(side + "_hip"), rig.p(side + "_knee")
        at = hip[0] + frac * (knee[0] - hip[0])
        flare = max(flare, abs(at - bottom[0]) + 0.05 * sc * ident.limb)
    geo = cv.trapezoid((wx, wy), bottom, w_top, flare, corner=0.0)
    if geo is None:
        return
    box, alpha, un, s, perp, length = geo
    u = un * (length / sc) + 0.3
    phi = np.arcsin(s) - rig.yaw if _needs_phi(ident.bottom) else None
    cv.composite(box, alpha, _garment_colour(ident.bottom, u, phi), cv.shade(s, perp, 0.85), P_SKIRT)


def _draw_head(cv: _Canvas, rig: _Rig, ident: Identity, skin: np.ndarray, detail: bool) -> None:
    """An ellipse textured as a sphere: hair where the head-frame normal is above the hairline."""
    sc = rig.scale
    cx, cy = rig.p("head")
    rx, ry = ident.head * sc, 1.12 * ident.head * sc
    box = cv._box(cx - rx - 1, cx + rx + 1, cy - ry - 1, cy + ry + 1)
    if box is None:
        return
    ya, yb, xa, xb = box
    nx = (cv.gx[xa:xb] - cx) * (1.0 / rx)
    ny = (cv.gy[ya:yb] - cy) * (1.0 / ry)   # (h, 1) and (w,): broadcast on first use
    rr = nx * nx + ny * ny
    nz = 1.0 - rr
    np.maximum(nz, 0.0, out=nz)
    np.sqrt(nz, out=nz)
    alpha = np.sqrt(rr)
    alpha *= -rx
    alpha += rx + 0.5
    _clip(alpha, 0.0, 1.0, out=alpha)
    # head-frame normal = transpose(camera←head) · camera-frame normal (camera y is up: -ny)
    m = rig.cam_head
    hy = nz * m[2][1] + (nx * m[0][1] - ny * m[1][1])
    hz = nz * m[2][2] + (nx * m[0][2] - ny * m[1][2])
    # the hairline runs from the front value (face) to the back value (nape) around the sides
    k = hz * 1.4 + 0.49
    _clip(k, 0.0, 1.0, out=k)
    k *= ident.hairline_front - ident.hairline_back
    k += ident.hairline_back
    if detail:
        hx = nz * m[2][0] + (nx * m[0][0] - ny * m[1][0])
        hair = hy - k
        hair *= rx * 0.6
        _clip(hair, 0.0, 1.0, out=hair)
        if ident.hair_style != "long":  # ears stay visible
            ear = (0.25 - np.abs(hy + 0.02) - np.abs(np.abs(hx) - 0.96) * 0.8) * 8
            hair *= 1.0 - _clip(ear, 0.0, 1.0, out=ear)
        colour = _blend(skin, hair, ident.hair)
        front = hz > 0
        for j in (14, 15):  # eyes and brows
            ex, ey, ez = _FACE_POINTS[j][0]
            dy = (hy - ey) * 1.3
            e = (0.13 ** 2 - (hx - ex) ** 2 - dy * dy - (hz - ez) ** 2) * 60
            colour = _blend(colour, _clip(e, 0.0, 1.0, out=e) * front, (0.1, 0.07, 0.06))
            brow = (np.abs(hx - ex) < 0.17) & (np.abs(hy - 0.27) < 0.045) & (hz > 0.5) & (hy < ident.hairline_front)
            colour = _blend(colour, brow.astype(_F32), np.asarray(ident.hair) * 0.8)
        mouth = (np.abs(hx) < 0.2) & (np.abs(hy + 0.5) < 0.06) & (hz > 0.4)
        colour = _blend(colour, mouth.astype(_F32), skin * np.array([0.7, 0.45, 0.45], dtype=_F32))
        nose = (0.012 - hx * hx - ((hy + 0.22) * 0.7) ** 2) * 100
        colour = _blend(colour, _clip(nose, 0.0, 0.5, out=nose) * (hz > 0.6), skin * 0.75)
    else:
        colour = _solid_colour(rr.shape, skin)
        _paint(colour, hy > k, ident.hair)
    lam = nz * cv.lz
    lam += nx * cv.lx
    lam += ny * cv.ly
    np.maximum(lam, 0.0, out=lam)
    lam *= cv.diffuse
    lam += cv.ambient
    cv.composite(box, alpha, colour, lam, P_HEAD)
    if not detail:  # small heads: eyes and mouth are a pixel or two, written directly
        _face_dots(cv, rig, skin)


def _face_dots(cv: _Canvas, rig: _Rig, skin: np.ndarray) -> None:
    dark = (0.1, 0.07, 0.06)
    lips = (0.6 * float(skin[0]), 0.35 * float(skin[1]), 0.35 * float(skin[2]))
    marks = [(K.JOINT_NAMES[14], rig.face_visible.get(14, True), dark, 0.6),
             (K.JOINT_NAMES[15], rig.face_visible.get(15, True), dark, 0.6),
             ("mouth", _dot(rig.cam_head[2], _normalize(_MOUTH)) > 0.35, lips, 0.5)]
    skin_mean = max(1e-3, float(skin.sum()))
    for name, seen, colour, strength in marks:
        x, y = rig.xy[_IX[name]]
        if not seen or x != x:
            continue
        xi, yi = int(round(x)), int(round(y))
        if 0 <= yi < cv.h and 0 <= xi < cv.w and cv.part_at(yi, xi) == P_HEAD:
            r, g, b = cv.img[:, yi, xi].tolist()
            lit = (r + g + b) / skin_mean  # keep the local shading
            cv.img[:, yi, xi] = (r + strength * (colour[0] * lit - r), g + strength * (colour[1] * lit - g),
                              b + strength * (colour[2] * lit - b))


def _draw_pack(cv: _Canvas, rig: _Rig, ident: Identity) -> None:
    sc = rig.scale
    cx, cy = rig.p("pack")
    (nx, ny), (hx, hy) = rig.p("neck"), rig.p("hip_c")
    ln = math.hypot(hx - nx, hy - ny) or 1.0
    ax, ay = (hx - nx) / ln * 0.075 * sc, (hy - ny) / ln * 0.075 * sc
    geo = cv.trapezoid((cx - ax, cy - ay), (cx + ax, cy + ay), rig.pack_w * sc, rig.pack_w * sc * 1.05,
                       corner=0.025 * sc)
    if geo is not None:
        box, alpha, un, s, perp, length = geo
        col = np.asarray(ident.backpack, dtype=_F32)
        colour = _blend(col, (un < 0.35).astype(_F32) * 0.3, col * 0.6)
        cv.composite(box, alpha, colour, cv.shade(s, perp), P_PACK)


def _draw_person(cv: _Canvas, rig: _Rig, ident: Identity, detail: bool) -> None:
    """Draw every part far-to-near (painter's algorithm on the parts' depth, body heights).

    The capsules (neck, hair, arms, legs, shoes) are rasterised and coloured together first
    (:meth:`_Canvas.capsules`, :func:`_colour_capsules`), then every part is blended in depth order.
    """
    sc = rig.scale
    lf = ident.limb * sc
    skin = np.asarray(ident.skin, dtype=_F32)
    hair = np.asarray(ident.hair, dtype=_F32)
    z = rig.z
    parts: list[tuple[float, int, Callable[[], None] | int]] = []
    caps: list[_Capsule] = []

    def capsule(key: float, order: int, a: str, b: str | None, r0: float, r1: float, part: int,
                colour: np.ndarray, **style) -> None:
        """Queue a capsule from joint ``a`` to ``b`` (None: a blob just below ``a``); skipped if one is unknown."""
        try:
            p0 = rig.p(a)
            p1 = rig.p(b) if b is not None else (p0[0], p0[1] + 0.01)
        except _Skip:  # a part whose end point is unknown (drawing through given keypoints)
            return
        parts.append((key, order, len(caps)))
        caps.append(_Capsule(p0, p1, r0, r1, part, colour, **style))

    torso_key = 0.5 * (z("neck") + z("hip_c")) - 0.04
    parts.append((torso_key, 0, lambda: _draw_torso(cv, rig, ident, skin)))
    capsule(torso_key - 0.001, 1, "neck", "head", 0.027 * lf, 0.025 * lf, P_NECK, skin, flat=0.8)
    parts.append((z("head") + 0.002, 2, lambda: _draw_head(cv, rig, ident, skin, detail)))
    if ident.hair_style == "long":
        r = ident.head * sc
        capsule(z("hair_end"), 3, "hair_top", "hair_end", 0.98 * r, 0.92 * r, P_HAIR, hair)
    elif ident.hair_style == "bun":
        capsule(z("bun"), 3, "bun", None, 0.5 * ident.head * sc, 0.5 * ident.head * sc, P_BUN, hair)
    # arms: the forearm part runs on to the end of the hand (skin beyond the sleeve)
    sleeve_len = ident.sleeve * (UPPER_ARM + FOREARM + 0.02)
    cover_ua = min(1.0, sleeve_len / UPPER_ARM)
    cover_fa = min(1.0, max(0.0, (sleeve_len - UPPER_ARM) / (FOREARM + HAND)))
    for i, (sd, part) in enumerate((("r", P_RARM), ("l", P_LARM))):
        sh, el, hn = sd + "_shoulder", sd + "_elbow", sd + "_hand"
        capsule(0.5 * (z(sh) + z(el)), 10 + 2 * i, sh, el, 0.033 * lf, 0.027 * lf, part, skin,
                garment=ident.top if cover_ua > 0 else None, cover=cover_ua, u0=0.0)
        capsule(0.5 * (z(el) + z(hn)) + 0.001, 11 + 2 * i, el, hn, 0.027 * lf, 0.016 * lf, part, skin,
                garment=ident.top if cover_fa > 0 else None, cover=cover_fa, u0=UPPER_ARM)
    # legs
    thigh, shin_len = THIGH * ident.leg, SHIN * ident.leg
    cover = ident.leg_cover * (thigh + shin_len)
    cover_th = min(1.0, cover / thigh)
    cover_sh = min(1.0, max(0.0, (cover - thigh) / shin_len))
    fat = 1.12 if ident.bottom_kind == "trousers" else 1.0
    leg_keys = []
    for i, (sd, part) in enumerate((("r", P_RLEG), ("l", P_LLEG))):
        hp, kn, an = sd + "_hip", sd + "_knee", sd + "_ankle"
        # thighs always go under the torso: the shirt hangs over the top of the trousers
        k_th = min(0.5 * (z(hp) + z(kn)) - 0.06, torso_key - 0.002)
        k_sh = 0.5 * (z(kn) + z(an)) - 0.059
        leg_keys += [k_th, k_sh]
        capsule(k_th, 20 + 3 * i, hp, kn, 0.05 * lf * fat, 0.039 * lf * fat, part, skin,
                garment=ident.bottom if cover_th > 0 else None, cover=cover_th, u0=0.3)
        capsule(k_sh, 21 + 3 * i, kn, an, 0.039 * lf * fat, 0.028 * lf * fat, part, skin,
                garment=ident.bottom if cover_sh > 0 else None, cover=cover_sh, u0=0.3 + THIGH)
    shoes = np.asarray(ident.shoes, dtype=_F32)
    for i, (sd, part) in enumerate((("r", P_RSHOE), ("l", P_LSHOE))):
        # detailed shoes are shaded and show their sole from the side; small ones (a few pixels) are flat
        capsule(0.5 * (z(sd + "_heel") + z(sd + "_toe")) - 0.058, 22 + 3 * i, sd + "_heel", sd + "_toe",
                0.03 * lf, 0.026 * lf, part, shoes, **({"sole": ident.soles} if detail else {"flat": 0.85}))
    if ident.bottom_kind in ("skirt", "dress"):
        parts.append((max(leg_keys) + 0.001, 30, lambda: _draw_skirt(cv, rig, ident)))
    if ident.backpack is not None:
        parts.append((z("pack"), 31, lambda: _draw_pack(cv, rig, ident)))

    batch = cv.capsules(caps)
    keep, premultiplied = _colour_capsules(cv, caps, batch, sc) if batch.kept else (None, None)
    slot = {i: j for j, i in enumerate(batch.kept)}
    parts.sort(key=lambda p: (p[0], p[1]))
    for _, _, what in parts:
        if not isinstance(what, int):
            try:
                what()
            except _Skip:
                pass
        elif what in slot:
            j = slot[what]
            seg = slice(batch.offsets[j], batch.offsets[j + 1])
            cv.paste(batch.boxes[j], keep[seg], premultiplied[:, seg], batch.alpha[seg], caps[what].part)


class _Skip(Exception):
    """Raised by a rig that lacks a point: that part is not drawn."""


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
    d = _draws(rng)
    kind = _check_kind(kind)
    if kind == "fashion":
        if d.random() < 0.75:
            v = d.uniform(0.86, 0.98)
            wall = _jitter(d, (v, v, v), 0.008)
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
        panels.append(_jitter(d, (wall[0] * k, wall[1] * k, wall[2] * k), 0.05))
    boxes = []
    for _ in range(d.integers(0, 3)):
        x0, y1 = d.uniform(-0.4, 1.2), d.uniform(0.5, 0.95)
        boxes.append((x0, x0 + d.uniform(0.15, 0.6), y1 - d.uniform(0.1, 0.35), y1, _random_colour(d)))
    return Scene(kind=kind, wall=wall, floor=floor, horizon=d.uniform(0.45, 0.8),  # type: ignore[arg-type]
                 edges=tuple(edges), panels=tuple(panels), sill=d.uniform(0.1, 0.4) if d.random() < 0.5 else -1.0,
                 sill_colour=_jitter(d, wall, 0.15), tiles=d.uniform(0.05, 0.12) if d.random() < 0.5 else 0.0,
                 boxes=tuple(boxes))


#: Per-image camera pan (fraction of the width) and horizon jitter (fraction of the height) limits.
MAX_PAN, MAX_HORIZON = 0.25, 0.03


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
    ys = (np.arange(hh, dtype=_F32) + (0.5 - my)) * (1.0 / h)
    xs = (np.arange(ww, dtype=_F32) + (0.5 - mx)) * (1.0 / w)
    hy = min(hh, max(0, int(round(scene.horizon * h)) + my))
    img = np.empty((3, hh, ww), dtype=_F32)
    if scene.kind == "fashion":
        grad = (1.02 - 0.06 * ys)[:, None]
        img[:, :hy] = grad[:hy] * _planes(scene.wall, 2)
        img[:, hy:] = grad[hy:] * _planes(scene.floor, 2)
    else:
        cols = np.asarray(scene.panels, dtype=_F32)[np.searchsorted(np.asarray(scene.edges, dtype=_F32), xs)]
        vgrad = (1.08 - 0.2 * ys)[:, None]
        np.multiply(vgrad[:hy], cols.T[:, None, :], out=img[:, :hy])
        if scene.sill >= 0:
            band = np.abs(ys[:hy] - scene.sill) < 0.03
            img[:, :hy][:, band] = _planes(scene.sill_colour, 2)
        fy = (ys[hy:] - scene.horizon) * (1.0 / max(1e-3, 1.0 - scene.horizon))
        floor = img[:, hy:]
        np.multiply((0.85 + 0.3 * fy)[:, None], _planes(scene.floor, 2), out=floor)
        if scene.tiles > 0 and hy < hh:  # floor joints converging towards the middle
            q = (ys[hy:, None] - scene.horizon) * ((xs - 0.5) * _F32(2.0 / scene.tiles))
            q += xs * _F32(1.0 / scene.tiles)               # position in tiles; a joint near each integer
            lines = q - np.floor(q) < 0.12                    # (np.mod on floats is 10x slower)
            floor *= 1.0 - _F32(0.12) * lines
        for x0, x1, y0, y1, colour in scene.boxes:
            mxs = (xs >= x0) & (xs < x1)
            mys = (ys >= y0) & (ys < y1)
            if mxs.any() and mys.any():
                xa, xb = int(np.argmax(mxs)), int(len(mxs) - np.argmax(mxs[::-1]))
                ya, yb = int(np.argmax(mys)), int(len(mys) - np.argmax(mys[::-1]))
                img[:, ya:yb, xa:xb] = vgrad[ya:yb] * _planes(colour, 2)
    img.flags.writeable = False
    return img


def _shadow(img: np.ndarray, rig: _Rig) -> None:
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
    dx = np.arange(-rx, rx + 1, dtype=_F32) * (1.0 / rx)
    dy = np.arange(-ry, ry + 1, dtype=_F32) * (1.0 / ry)
    d = np.clip(1.0 - dx * dx - (dy * dy)[:, None], 0.0, 1.0)
    sprite = (1.0 - 0.35 * d).astype(_F32)
    sprite.flags.writeable = False
    return sprite


# --------------------------------------------------------------------------------------------------
# Public rendering API
# --------------------------------------------------------------------------------------------------
def _as_rng(value) -> np.random.Generator:
    if isinstance(value, np.random.Generator):
        return value
    if isinstance(value, Draws):
        return value.rng
    if value is None:
        return np.random.default_rng()
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        if value < 0:
            raise DataError(f"seed must be >= 0, got {value}")
        return np.random.default_rng(int(value))
    if isinstance(value, (list, tuple)):
        return np.random.default_rng(list(value))
    raise TypeError(f"expected a numpy Generator or an int seed, got {type(value).__name__}")


def _check_kind(kind: str) -> str:
    k = str(kind).strip().lower()
    if k in ("deepfashion", "fasion"):
        k = "fashion"
    if k not in KINDS:
        raise DataError(f"unknown synthetic dataset size {kind!r} (market or fashion)")
    return k


def _resolve_size(size) -> tuple[str, tuple[int, int]]:
    if isinstance(size, str):
        kind = _check_kind(size)
        return kind, SIZES[kind]
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise DataError(f"size must be 'market', 'fashion' or (H, W), got {size!r}") from None
    if h < 32 or w < 16:
        raise DataError(f"size must be at least 32x16, got {h}x{w}")
    return ("fashion" if h >= 192 else "market"), (h, w)


def _rig_keypoints(rig: _Rig, cv: _Canvas) -> np.ndarray:
    """(18, 2) int (y, x) keypoints of the drawn figure, -1 where hidden or outside the image."""
    h, w = cv.h, cv.w
    kp = np.rint(rig.pts[:K.NUM_JOINTS, ::-1]).astype(np.int64)
    for j, (y, x) in enumerate(kp.tolist()):
        if not (0 <= y < h and 0 <= x < w):
            kp[j] = K.MISSING
        elif j in _FACE_POINTS and not rig.face_visible.get(j, True):
            kp[j] = K.MISSING
        elif j in _VISIBLE_ON and cv.part_at(y, x) not in _VISIBLE_ON[j]:
            kp[j] = K.MISSING
    return kp


def _finish(img: np.ndarray, gain: float, tint: Sequence[float]) -> np.ndarray:
    """Global lighting change (gain, colour tint) and conversion of the planes to an (H, W, 3) uint8 image.

    OpenCV scales, rounds and saturates each plane and interleaves them in 11 µs for a 128×64 image,
    where numpy's multiply/clip/cast and transposing copy take 100 µs (an eighth of the image's budget).
    Its ``convertScaleAbs`` takes the absolute value first: the planes are never negative (non-negative
    colours times a shading that is at least the ambient level).
    """
    import cv2

    scale = gain * 255.0
    return cv2.merge([cv2.convertScaleAbs(plane, alpha=scale * float(t)) for plane, t in zip(img, tint)])


def _background_array(background: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    bg = np.asarray(background)
    if bg.shape != (size[0], size[1], 3):
        raise DataError(f"background must be a {size[0]}x{size[1]}x3 image, got an array of shape {bg.shape}")
    return bg.transpose(2, 0, 1).astype(_F32) * _F32(1.0 / 255.0)


def render_rig(ident: Identity, pose: PoseParams, size: tuple[int, int], scene: Scene | None = None,
               background: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Render ``ident`` in ``pose`` at ``size`` (H, W) → (uint8 H×W×3 image, (18, 2) keypoints)."""
    rig = _project(ident, pose, size)
    if background is not None:  # a given background keeps its colours: undo the global gain/tint ahead
        bg = _background_array(background, size)
        bg /= _planes(np.asarray(pose.tint, dtype=_F32) * _F32(pose.gain), 2)
    else:
        if scene is None:
            scene = sample_scene(np.random.default_rng([ident.index, _D_SCENE]), ident.kind)
        bg = render_background(scene, size, pose.pan, pose.horizon)
    _shadow(bg, rig)
    cv = _Canvas(bg, pose.light, pose.ambient)
    _draw_person(cv, rig, ident, detail=size[0] >= 192)
    kp = _rig_keypoints(rig, cv)
    return _finish(cv.img, pose.gain, pose.tint), kp


def render_person(person: np.random.Generator | int | Identity | None = None,
                  pose: np.ndarray | PoseParams | np.random.Generator | int | None = None,
                  size: str | tuple[int, int] = "market", *, view: str | None = None, family: str | None = None,
                  scene: Scene | None = None, background: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic photo: ``(uint8 H×W×3 RGB image, (18, 2) int (y, x) keypoints, -1 missing)``.

    ``person``: an :class:`Identity`, or a Generator / int seed to sample one. ``pose``: a
    :class:`PoseParams`; a Generator / int seed to sample one (default: drawn from the person's generator,
    optionally of the given ``view`` and ``family``); or an (18, 2) (y, x) keypoint array in the pixels of
    ``size`` — the figure is then drawn through those joints (both hips and the neck or both shoulders are
    needed) and the returned keypoints are the given ones (joints outside the image become -1).
    ``size``: ``market`` (128×64), ``fashion`` (256×176) or (H, W). ``background``: a uint8 H×W×3 image to
    draw on instead of a random scene.
    """
    kind, hw = _resolve_size(size)
    d = None
    if isinstance(person, Identity):
        ident = person
    else:
        d = _draws(person)
        ident = sample_identity(d, kind)
    if isinstance(pose, np.ndarray) or (isinstance(pose, (list, tuple)) and len(pose) == K.NUM_JOINTS):
        if scene is None and background is None and d is not None:
            scene = sample_scene(d, kind)
        return _render_from_keypoints(ident, np.asarray(pose), hw, scene, background)
    if isinstance(pose, PoseParams):
        params = pose
    else:
        pd = _draws(pose) if pose is not None else (d if d is not None else _draws(None))
        params = sample_pose(pd, kind, view=view, family=family)
    if scene is None and background is None and d is not None:
        scene = sample_scene(d, kind)
    return render_rig(ident, params, hw, scene=scene, background=background)


def _render_from_keypoints(ident: Identity, keypoints: np.ndarray, size: tuple[int, int],
                           scene: Scene | None, background: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Draw the person through given 2-D joints (a ground-truth photo for any pose, e.g. an estimated one).

    The view is inferred from the shoulder/hip spread and order and from the visible face points; parts
    whose joints are missing are not drawn.
    """
    kp = K.validate_keypoints(keypoints, where="render_person keypoints")
    kp = K.crop_keypoints(kp, 0, 0, size)
    miss = K.missing_mask(kp).tolist()
    ix = K.JOINT_INDEX
    if miss[ix["r_hip"]] or miss[ix["l_hip"]] or (miss[ix["neck"]] and (miss[ix["r_shoulder"]] or
                                                                         miss[ix["l_shoulder"]])):
        raise PoseError("render_person: the keypoints need both hips and the neck or both shoulders")
    pts = {name: (float(kp[j, 1]), float(kp[j, 0])) for j, name in enumerate(K.JOINT_NAMES) if not miss[j]}
    hip_c = ((pts["r_hip"][0] + pts["l_hip"][0]) / 2, (pts["r_hip"][1] + pts["l_hip"][1]) / 2)
    if "neck" not in pts:
        pts["neck"] = ((pts["r_shoulder"][0] + pts["l_shoulder"][0]) / 2,
                       (pts["r_shoulder"][1] + pts["l_shoulder"][1]) / 2)
    neck = pts["neck"]
    spine = math.hypot(neck[0] - hip_c[0], neck[1] - hip_c[1]) or 1.0
    scale = spine / SPINE
    up = ((neck[0] - hip_c[0]) / spine, (neck[1] - hip_c[1]) / spine)
    side = (-up[1], up[0])  # the image right when upright
    # view: the person's right on the image left = facing us; no face points = seen from the back
    yaw = 0.0
    for a, b, half in (("r_shoulder", "l_shoulder", ident.shoulder), ("r_hip", "l_hip", ident.hip)):
        if a in pts and b in pts:
            spread = ((pts[b][0] - pts[a][0]) * side[0] + (pts[b][1] - pts[a][1]) * side[1]) / (2 * half * scale)
            c = max(-1.0, min(1.0, spread))
            yaw = math.acos(abs(c))
            face = any(n in pts for n in ("nose", "r_eye", "l_eye"))
            if c < 0 or not face:
                yaw = math.pi - yaw
            if "nose" in pts:  # the nose points the way the person faces (yaw > 0: towards the image right)
                toward = (pts["nose"][0] - neck[0]) * side[0] + (pts["nose"][1] - neck[1]) * side[1]
                if toward < 0:
                    yaw = -yaw
            break
    cy_, sy_ = math.cos(yaw), math.sin(yaw)
    out: dict[str, tuple[float, float]] = dict(pts)
    out["neck"], out["hip_c"] = neck, hip_c
    for sd, sg in (("r", -1.0), ("l", 1.0)):
        if sd + "_shoulder" not in out:
            k = sg * ident.shoulder * scale * cy_
            out[sd + "_shoulder"] = (neck[0] + side[0] * k, neck[1] + side[1] * k)
        if sd + "_wrist" in out and sd + "_elbow" in out:
            (ex, ey), (wx, wy) = out[sd + "_elbow"], out[sd + "_wrist"]
            out[sd + "_hand"] = (wx + (wx - ex) * HAND / FOREARM, wy + (wy - ey) * HAND / FOREARM)
        else:
            out.pop(sd + "_wrist", None)
        if sd + "_ankle" in out and sd + "_knee" in out:
            ax, ay = out[sd + "_ankle"]
            fx = -sy_ * FOOT * scale  # the toes point the way the person faces
            out[sd + "_heel"] = (ax - 0.2 * fx, ay + 0.03 * scale)
            out[sd + "_toe"] = (ax + fx, ay + 0.045 * scale)
        else:
            out.pop(sd + "_ankle", None)
    lift = (0.048 + 1.02 * ident.head) * scale
    head = (neck[0] + up[0] * lift, neck[1] + up[1] * lift)
    out["head"] = head
    hs = ident.head * scale
    out["waist"] = (hip_c[0] + up[0] * 0.075 * scale, hip_c[1] + up[1] * 0.075 * scale)
    out["hair_top"] = (head[0] + up[0] * 0.05 * hs, head[1] + up[1] * 0.05 * hs)
    # points behind the body (person-frame z < 0) move to the image left when yaw > 0
    hl = (0.12 - ident.hair_length) * scale
    back = -(ident.chest_depth + 0.015) * sy_ * scale
    out["hair_end"] = (neck[0] + up[0] * hl + side[0] * back, neck[1] + up[1] * hl + side[1] * back)
    bun = -0.78 * hs * sy_
    out["bun"] = (head[0] + up[0] * 0.62 * hs + side[0] * bun, head[1] + up[1] * 0.62 * hs + side[1] * bun)
    pk = ident.chest_depth + 0.04
    out["pack"] = (neck[0] - up[0] * 0.13 * scale - side[0] * pk * sy_ * scale,
                   neck[1] - up[1] * 0.13 * scale - side[1] * pk * sy_ * scale)
    depth = []
    for name in _NAMES:
        lateral = -1.0 if name.startswith("r_") else (1.0 if name.startswith("l_") else 0.0)
        depth.append(-lateral * 0.1 * sy_)
    depth[_IX["hair_end"]] = -(ident.chest_depth + 0.015) * cy_ + 0.5 * (depth[_IX["neck"]] + depth[_IX["hip_c"]])
    depth[_IX["bun"]] = -0.05 * cy_
    depth[_IX["pack"]] = -pk * cy_
    depth[_IX["head"]] = 0.01 * cy_
    nan = (math.nan, math.nan)
    xy = [out.get(name, nan) for name in _NAMES]
    rig = _KeypointRig(pts=np.asarray(xy), xy=xy, depth=depth, scale=scale, yaw=yaw, cam_head=_roty(yaw),
                       torso_w=(math.hypot((ident.shoulder + 0.022 * ident.limb) * cy_, ident.chest_depth * sy_),
                                math.hypot((ident.hip + 0.055 * ident.limb) * cy_, (ident.chest_depth + 0.005) * sy_)),
                       pack_w=math.hypot(0.08 * cy_, 0.05 * sy_), face_visible={})
    if background is not None:
        bg = _background_array(background, size)
    else:
        scene = scene or sample_scene(np.random.default_rng([ident.index, _D_SCENE]), ident.kind)
        bg = render_background(scene, size)
    cv = _Canvas(bg, (-0.35, -0.45, 0.82), 0.5)
    _draw_person(cv, rig, ident, detail=size[0] >= 192)
    return _finish(cv.img, 1.0, (1.0, 1.0, 1.0)), kp


class _KeypointRig(_Rig):
    """A rig built from given keypoints: parts with an unknown (NaN) end point are not drawn."""

    def p(self, name: str) -> tuple[float, float]:
        v = self.xy[_IX[name]]
        if v[0] != v[0]:  # NaN
            raise _Skip
        return v


# --------------------------------------------------------------------------------------------------
# Dataset generation
# --------------------------------------------------------------------------------------------------
_FASHION_VIEW_WORDS = {"front": "front", "back": "back", "side": "side", "three_quarter": "additional"}


def _fashion_category(ident: Identity) -> str:
    if ident.bottom_kind == "dress":
        return "Dresses"
    if ident.top_kind == "jacket":
        return "Jackets_Coats" if ident.gender == "WOMEN" else "Jackets_Vests"
    if ident.bottom_kind == "skirt":
        return "Skirts"
    if ident.bottom_kind == "shorts":
        return "Shorts"
    if ident.top_kind in ("tshirt", "tank"):
        return "Tees_Tanks"
    if ident.top_kind == "shirt":
        return "Blouses_Shirts" if ident.gender == "WOMEN" else "Shirts_Polos"
    return "Sweaters" if ident.gender == "MEN" else "Cardigans"


def make_identity(seed: int, kind: str, identity: int) -> Identity:
    """Identity number ``identity`` (0-based) of the dataset made with ``seed``."""
    return sample_identity(np.random.default_rng([seed, _D_IDENTITY, identity]), kind, index=identity)


def plan_identity(seed: int, kind: str, identity: int, poses: int) -> tuple[Identity, list[tuple[str, str, int]]]:
    """The person and the (file name, view, camera) of each of its ``poses`` images.

    Market names ``0007_c3s1_000123_01.jpg`` (person id, camera, sequence, frame, detection); DeepFashion
    names ``fashionWOMENTees_Tanksid0000000702_1front.jpg`` (gender, category, item id + outfit, index and
    view). Only the identity's own generators are used, so planning is cheap and order independent.
    """
    kind = _check_kind(kind)
    ident = make_identity(seed, kind, identity)
    d = Draws(np.random.default_rng([seed, _D_PLAN, identity]))
    views = [d.choice(VIEWS, VIEW_PROBS) for _ in range(poses)]
    names: list[tuple[str, str, int]] = []
    if kind == "market":
        seqs = {c: d.integers(1, 7) for c in ident.cameras}
        frames = sorted(d.rng.choice(999_999, size=poses, replace=False) + 1)
        for k in range(poses):
            cam = ident.cameras[d.integers(0, len(ident.cameras))]
            names.append((f"{identity + 1:04d}_c{cam}s{seqs[cam]}_{int(frames[k]):06d}_01.jpg", views[k], cam))
    else:
        stem = f"fashion{ident.gender}{_fashion_category(ident)}id{identity + 1:08d}{ident.outfit:02d}"
        names = [(f"{stem}_{k + 1}{_FASHION_VIEW_WORDS[views[k]]}.jpg", views[k], 0) for k in range(poses)]
    return ident, names


def render_dataset_image(seed: int, kind: str, identity: int, pose_index: int, view: str, camera: int,
                         ident: Identity | None = None, scene: Scene | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Image ``pose_index`` of ``identity``: depends only on these numbers (not on order or workers)."""
    if ident is None:
        ident = make_identity(seed, kind, identity)
    if scene is None:
        scene = make_scene(seed, kind, identity, camera)
    pose = sample_pose(Draws(np.random.default_rng([seed, _D_POSE, identity, pose_index])), kind, view=view)
    return render_rig(ident, pose, SIZES[kind], scene=scene)


def make_scene(seed: int, kind: str, identity: int, camera: int) -> Scene:
    """The background of ``identity`` seen by ``camera`` (market: each person has 2–4 cameras)."""
    return sample_scene(np.random.default_rng([seed, _D_SCENE, identity, camera]), kind)


def encode_jpeg(image: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """JPEG bytes of a uint8 H×W×3 RGB image (what the dataset files contain).

    OpenCV's encoder (libjpeg-turbo, like Pillow's, same default 4:2:0 subsampling) costs 40 µs for a
    128×64 image against Pillow's 100 µs, most of which is Pillow's per-call set-up: a tenth of the whole
    per-image budget of the generator.
    """
    import cv2

    ok, data = cv2.imencode(".jpg", cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - OpenCV fails only on invalid arrays, which the renderer never makes
        raise DataError(f"JPEG encoding failed for an image of shape {image.shape}")
    return data.tobytes()


def _render_identity_job(job: tuple, writer: BackgroundWriter | None = None) -> list[tuple[str, np.ndarray]]:
    """Render and write every image of one identity; returns (name, keypoints) in pose order.

    Files go through ``writer`` (the caller's, which may still be writing when this returns) or, in a
    worker process, through one of its own that has finished when this returns.
    """
    if writer is None:
        with BackgroundWriter() as own:
            return _render_identity_job(job, own)
    seed, kind, identity, poses, folder, quality = job
    ident, plan = plan_identity(seed, kind, identity, poses)
    scenes: dict[int, Scene] = {}
    out = []
    for k, (name, view, camera) in enumerate(plan):
        if camera not in scenes:
            scenes[camera] = make_scene(seed, kind, identity, camera)
        image, kp = render_dataset_image(seed, kind, identity, k, view, camera, ident=ident, scene=scenes[camera])
        writer.write(os.path.join(folder, name), encode_jpeg(image, quality))
        out.append((name, kp))
    return out


def _synth_entries() -> set[str]:
    names = {"train", "test", "dataset.json"}
    for prefix in PREFIXES.values():
        names |= {f"{prefix}-{what}-{split}.csv" for what in ("annotation", "pairs") for split in ("train", "test")}
    return names


def is_synth_dataset(folder: str | os.PathLike) -> bool:
    """True for a folder written by :func:`generate_dataset` (its dataset.json says so) holding nothing else."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not (isinstance(meta, dict) and meta.get("synthetic") is True and meta.get("generator") == GENERATOR_TAG):
        return False
    allowed = _synth_entries()
    return all(p.name in allowed or p.name.endswith(".tmp") for p in folder.iterdir())


def _check_destination(out: Path, overwrite: bool) -> str:
    """'new' | 'empty' | 'replace'; a non-empty folder that is not a synthetic dataset needs ``overwrite``."""
    if not out.exists() and not out.is_symlink():
        return "new"
    if out.is_symlink() or not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder; choose another output folder")
    if not any(out.iterdir()):
        return "empty"
    if is_synth_dataset(out):
        return "replace"
    if not overwrite:
        raise DataError(f"{out}: folder is not empty and is not a synthetic dataset (use --overwrite to replace it)")
    resolved, cwd = out.resolve(), Path.cwd().resolve()
    if resolved == Path(resolved.anchor) or resolved == Path.home().resolve() or resolved in (cwd, *cwd.parents):
        raise DataError(f"{out}: refusing to replace the root, home or current folder (or a folder containing it)")
    return "replace"


def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        try:
            as_int = int(value)
            if float(value) != as_int:
                raise ValueError
        except (TypeError, ValueError, OverflowError):
            raise DataError(f"{name} must be an integer, got {value!r}") from None
        value = as_int
    if value < minimum:
        raise DataError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def generate_dataset(out: str | os.PathLike, size: str = "market", identities: int = 20, poses: int = 8,
                     test_identities: int | None = None, seed: int = 0, workers: int = 1, *,
                     overwrite: bool = False, test_pairs: int | None = None,
                     quality: int = JPEG_QUALITY) -> Path:
    """Write a synthetic PATN-layout dataset to ``out`` and return its path.

    ``identities`` people × ``poses`` images each. The last ``test_identities`` people (default 20%, at
    least 1) form the test split, the others the train split, so the splits share no identity. Pairs are
    all ordered pairs of two images of one person (``prepare.build_pairs``); ``test_pairs`` keeps a seeded
    sample of the test pairs. The same ``seed`` gives byte-identical files whatever ``workers`` is.
    ``out`` must be new, empty or an earlier synthetic dataset (replaced) unless ``overwrite``.
    """
    from .prepare import build_pairs

    kind = _check_kind(size)
    identities = _check_int(identities, "identities", 2)
    poses = _check_int(poses, "poses", 2)
    seed = _check_int(seed, "seed", 0)
    workers = _check_int(workers, "workers", 1)
    quality = _check_int(quality, "quality", 1)
    if quality > 100:
        raise DataError(f"quality must be between 1 and 100, got {quality}")
    if identities > MAX_IDENTITIES[kind]:
        raise DataError(f"identities must be at most {MAX_IDENTITIES[kind]} for {kind} names, got {identities}")
    if test_identities is None:
        test_identities = min(identities - 1, max(1, round(0.2 * identities)))
    test_identities = _check_int(test_identities, "test identities", 1)
    if test_identities >= identities:
        raise DataError(f"test identities must be fewer than identities ({identities}), got {test_identities}")
    if test_pairs is not None:
        test_pairs = _check_int(test_pairs, "test pairs", 1)

    out = Path(out)
    state = _check_destination(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.synth-{uuid.uuid4().hex[:8]}.tmp"
    n_train = identities - test_identities
    split_of = ["train" if i < n_train else "test" for i in range(identities)]
    annotations: dict[str, dict[str, np.ndarray]] = {"train": {}, "test": {}}
    pair_counts: dict[str, int] = {}
    try:
        for split in ("train", "test"):
            (tmp / split).mkdir(parents=True)
        jobs = [(seed, kind, i, poses, str(tmp / split_of[i]), quality) for i in range(identities)]
        with contextlib.closing(_run_jobs(jobs, workers)) as results:   # no file written after the clean-up
            for i, rows in enumerate(results):
                annotations[split_of[i]].update(rows)
        prefix = PREFIXES[kind]
        for split in ("train", "test"):
            ann = annotations[split]
            K.write_annotations(tmp / f"{prefix}-annotation-{split}.csv", ann)
            pairs = build_pairs(ann, kind, test_sample=test_pairs if split == "test" else None, seed=seed)
            if not pairs:
                raise DataError(f"{out}: no {split} pairs (no person has two images with both hips and shoulders)")
            K.write_pairs(tmp / f"{prefix}-pairs-{split}.csv", pairs)
            pair_counts[split] = len(pairs)
        h, w = SIZES[kind]
        write_json(tmp / "dataset.json", {
            "kind": kind, "size": [h, w], "synthetic": True, "generator": GENERATOR_TAG,
            "format_version": FORMAT_VERSION, "seed": seed, "identities": identities, "poses": poses,
            "train_identities": n_train, "test_identities": test_identities,
            "images": {s: len(annotations[s]) for s in ("train", "test")}, "pairs": pair_counts,
            "test_pairs": test_pairs, "jpeg_quality": quality,
        })
        _install(tmp, out, state)
    except OSError as exc:   # read-only folder, disk full: name the dataset, not the temporary folder
        raise OutputError(f"{out}: cannot write the dataset ({os_error_reason(exc)})") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.debug("%s: %d + %d images, %d + %d pairs (train + test)", out, len(annotations["train"]),
             len(annotations["test"]), pair_counts["train"], pair_counts["test"])
    return out


def _run_jobs(jobs: list[tuple], workers: int):
    """Yield each job's result in job order, in this process or in ``workers`` spawned processes."""
    if workers <= 1 or len(jobs) <= 1:
        with BackgroundWriter() as writer:   # every file is written when the last result has been taken
            for job in jobs:
                yield _render_identity_job(job, writer)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("spawn")  # no fork of a process that may hold torch threads
    pool = ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx)
    try:
        yield from pool.map(_render_identity_job, jobs, chunksize=max(1, len(jobs) // (8 * workers)))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _install(tmp: Path, out: Path, state: str) -> None:
    """Move the finished dataset into place: one rename, or two with the old folder set aside first."""
    if state == "new":
        os.rename(tmp, out)
    elif state == "empty":
        out.rmdir()
        os.rename(tmp, out)
    else:
        old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}.tmp"
        os.rename(out, old)
        os.rename(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
