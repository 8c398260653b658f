"""Procedural synthetic people written in the PATN on-disk layout (Market-1501 or DeepFashion style).

Why: the real benchmarks cannot be downloaded at run time, yet training, testing, evaluation and the
applications all need a dataset with *exact* keypoints, one person per identity in many poses and
identity-disjoint splits. This module draws such people fast enough to make thousands in seconds.

How a picture is made (all from a ``numpy.random.Generator`` seeded with ``(seed, identity, pose)``):

* An :class:`Identity` fixes everything that must stay the same across poses: skin, hair colour and style
  (short, fringe, long, bun, bald), body proportions, the top (t-shirt, long sleeves, shirt, jacket over a
  shirt, tank top) with its colours and a structured pattern (solid, stripes, checks, dots, colour block),
  a front logo and/or a back print, the bottom (trousers, shorts, skirt, dress), shoes and a backpack.
* A :class:`PoseParams` is sampled from a small kinematic model with joint limits: view (front, back,
  side, three-quarter yaw), a pose family (standing, walking, running, arms raised, waving, hands on hips,
  arms crossed, hands behind the back, reaching, phoning) with random joint angles, torso lean/twist,
  head turn, framing jitter and lighting.
* The 3-D skeleton is rotated by the yaw, projected orthographically and fitted into the image like a
  detector crop (full body, head near the top, feet near the bottom).
* Body parts are drawn far-to-near (painter's algorithm on each part's depth) as anti-aliased tapered
  capsules, rounded trapezoids and an ellipsoidal head, with Lambert shading from the cylinder/sphere
  normals. Clothing patterns are mapped on the body surface (height along the body, angle around it), so
  a stripe or a logo moves with the body and a back view shows the back of the shirt and of the head.
* Keypoints are the projected joint positions (COCO-18, (y, x)), i.e. exactly where the limbs are drawn.
  A joint is -1 when it falls outside the image, when the face point turns away from the camera (eyes and
  nose in back views, the far ear/eye in side views) or when another body part is drawn over it (a hand
  behind the back, the far knee hidden by the near leg). Neck, shoulders and hips lie on the torso outline
  and are kept whenever they are inside the image (so that the PATN pair rule keeps side views).

:func:`generate_dataset` renders ``identities × poses`` images into a temporary folder next to the output
and renames it into place at the end, so an interrupted run never leaves a half dataset that looks complete.
"""
from __future__ import annotations

import colorsys
import io
import logging
import math
import os
import shutil
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import DataError, PoseError
from ..io import write_json
from . import keypoints as K

log = logging.getLogger(__name__)

KINDS = ("market", "fashion")
SIZES: dict[str, tuple[int, int]] = {"market": K.MARKET_SIZE, "fashion": K.FASHION_SIZE}
PREFIXES: dict[str, str] = {"market": "market", "fashion": "fasion-resize"}
GENERATOR_TAG = "posetransfer.synth"
FORMAT_VERSION = 1
JPEG_QUALITY = 95
#: Market-1501 ids have 4 digits (and 0000 is the distractor id), DeepFashion item ids 8.
MAX_IDENTITIES = {"market": 9999, "fashion": 99_999_999}

VIEWS = ("front", "back", "side", "three_quarter")
VIEW_PROBS = (0.35, 0.2, 0.3, 0.15)
FAMILIES = ("stand", "walk", "run", "raise", "wave", "akimbo", "cross", "behind", "reach", "phone")
FAMILY_PROBS = (0.2, 0.3, 0.06, 0.09, 0.06, 0.08, 0.05, 0.05, 0.06, 0.05)

# Seed-sequence domains: identity, pose and scene streams of one seed never share state.
_D_IDENTITY, _D_POSE, _D_SCENE, _D_PLAN = 0, 1, 2, 3

# Part ids in the label map (which part is on top at each pixel); 0 = background.
(P_TORSO, P_NECK, P_HEAD, P_HAIR, P_RUA, P_RFA, P_RHAND, P_LUA, P_LFA, P_LHAND,
 P_RTHIGH, P_RSHIN, P_RSHOE, P_LTHIGH, P_LSHIN, P_LSHOE, P_SKIRT, P_PACK, P_BUN) = range(1, 20)

#: Parts on which a joint counts as visible; joints not listed (neck, shoulders, hips) lie on the torso
#: outline and are visible whenever they are inside the image.
_VISIBLE_ON: dict[int, frozenset[int]] = {
    0: frozenset({P_HEAD}), 14: frozenset({P_HEAD}), 15: frozenset({P_HEAD}),
    16: frozenset({P_HEAD, P_HAIR}), 17: frozenset({P_HEAD, P_HAIR}),
    3: frozenset({P_RUA, P_RFA}), 4: frozenset({P_RFA, P_RHAND}),
    6: frozenset({P_LUA, P_LFA}), 7: frozenset({P_LFA, P_LHAND}),
    9: frozenset({P_RTHIGH, P_RSHIN, P_SKIRT}), 10: frozenset({P_RSHIN, P_RSHOE, P_SKIRT}),
    12: frozenset({P_LTHIGH, P_LSHIN, P_SKIRT}), 13: frozenset({P_LSHIN, P_LSHOE, P_SKIRT}),
}
#: Face points on the unit head sphere (head frame: x = person's left, y = up, z = forward) and the
#: minimum camera-facing component of their normal for them to count as visible.
_FACE_POINTS = {
    0: ((0.0, -0.22, 0.975), 0.2),      # nose
    14: ((-0.36, 0.08, 0.93), 0.25),    # right eye
    15: ((0.36, 0.08, 0.93), 0.25),     # left eye
    16: ((-0.96, 0.0, -0.12), -0.45),   # right ear
    17: ((0.96, 0.0, -0.12), -0.45),    # left ear
}

Colour = tuple[float, float, float]


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
    hairline_front: float           # head-frame y above which the front of the head is hair
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
    leg_cover: float                # fraction of the leg covered (trousers 1, shorts ~0.35)
    skirt_length: float             # skirt/dress length below the waist (body heights)
    belt: Colour | None
    shoes: Colour
    soles: Colour
    backpack: Colour | None
    cameras: tuple[int, ...]        # Market cameras this person was "seen" by
    outfit: int                     # DeepFashion outfit digits


@dataclass(frozen=True)
class PoseParams:
    """One pose of one person: view, joint angles (degrees), framing and lighting."""

    view: str
    family: str
    yaw: float                      # degrees; 0 faces the camera, 180 is the back, +90 shows the right side
    lean: float = 0.0
    side_bend: float = 0.0
    twist: float = 0.0
    head_turn: float = 0.0
    head_tilt: float = 0.0
    # arms: (flexion forward, abduction sideways, elbow bend, bend reference x, y, z in the torso frame
    # with x pointing away from the body's midline)
    arm_r: tuple[float, float, float, float, float, float] = (0, 8, 10, 0, 0.25, 1)
    arm_l: tuple[float, float, float, float, float, float] = (0, 8, 10, 0, 0.25, 1)
    # legs: (flexion forward, abduction sideways, knee bend, toe-out)
    leg_r: tuple[float, float, float, float] = (0, 4, 3, 8)
    leg_l: tuple[float, float, float, float] = (0, 4, 3, 8)
    fill: float = 0.9               # person height / image height (before the width constraint)
    fill_w: float = 0.94            # maximum person width / image width
    ground: float = 0.96            # feet line as a fraction of the image height
    shift: float = 0.0              # horizontal offset, fraction of the width
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


def _jitter(rng: np.random.Generator, colour: Sequence[float], amount: float = 0.04) -> Colour:
    c = np.clip(np.asarray(colour) + rng.normal(0, amount, 3), 0.02, 0.98)
    return (float(c[0]), float(c[1]), float(c[2]))


def _random_colour(rng: np.random.Generator) -> Colour:
    """A plausible fabric colour: a neutral 35% of the time, otherwise muted or vivid hues."""
    if rng.random() < 0.35:
        return _jitter(rng, _NEUTRALS[rng.integers(len(_NEUTRALS))], 0.03)
    h = rng.random()
    s = rng.uniform(0.15, 0.45) if rng.random() < 0.5 else rng.uniform(0.5, 0.9)
    v = rng.uniform(0.25, 0.95)
    return tuple(float(c) for c in colorsys.hsv_to_rgb(h, s, v))  # type: ignore[return-value]


def _contrasting(rng: np.random.Generator, colour: Colour) -> Colour:
    """A second colour clearly different from ``colour`` (patterns must be visible)."""
    for _ in range(20):
        c = _random_colour(rng)
        if sum(abs(a - b) for a, b in zip(c, colour)) > 0.6:
            return c
    return tuple(1.0 - v for v in colour)  # type: ignore[return-value]


def _garment(rng: np.random.Generator, colour: Colour, patterns: Sequence[str],
             probs: Sequence[float]) -> Garment:
    pattern = str(rng.choice(patterns, p=probs))
    return Garment(colour=colour, colour2=_contrasting(rng, colour), pattern=pattern,
                   period=float(rng.uniform(0.035, 0.075)), around=int(rng.integers(6, 14)))


def sample_identity(rng: np.random.Generator | int, kind: str = "market", index: int = 0) -> Identity:
    """A random person (appearance and body proportions) for ``kind`` = market | fashion."""
    rng = _as_rng(rng)
    kind = _check_kind(kind)
    women = rng.random() < (0.65 if kind == "fashion" else 0.5)
    gender = "WOMEN" if women else "MEN"
    skin = _jitter(rng, _SKIN[rng.integers(len(_SKIN))], 0.025)
    hair = _jitter(rng, _HAIR[rng.integers(len(_HAIR))], 0.02)
    if women:
        style = str(rng.choice(["long", "bun", "short", "fringe"], p=[0.55, 0.15, 0.2, 0.1]))
    else:
        style = str(rng.choice(["short", "fringe", "bald", "long"], p=[0.68, 0.12, 0.1, 0.1]))
    front = {"short": rng.uniform(0.38, 0.5), "fringe": rng.uniform(0.22, 0.3), "long": rng.uniform(0.32, 0.45),
             "bun": rng.uniform(0.38, 0.48), "bald": 0.92}[style]
    back = {"short": rng.uniform(-0.6, -0.35), "fringe": rng.uniform(-0.6, -0.35), "long": -1.1,
            "bun": rng.uniform(-0.7, -0.5), "bald": rng.uniform(-0.3, 0.1)}[style]
    hair_length = float(rng.uniform(0.13, 0.24)) if style == "long" else 0.0

    head = float(rng.uniform(0.06, 0.068))
    shoulder = float(rng.uniform(0.088, 0.102) if women else rng.uniform(0.102, 0.118))
    hip = float(rng.uniform(0.075, 0.085) if women else rng.uniform(0.066, 0.076))
    chest = float(rng.uniform(0.055, 0.07))
    limb = float(rng.uniform(0.88, 1.15))
    leg = float(rng.uniform(0.95, 1.05))

    top_kinds = ["tshirt", "longsleeve", "shirt", "jacket", "tank"]
    top_kind = str(rng.choice(top_kinds, p=[0.33, 0.2, 0.15, 0.2, 0.12] if women else [0.38, 0.22, 0.18, 0.18, 0.04]))
    top = _garment(rng, _random_colour(rng),
                   ["solid", "hstripes", "vstripes", "checks", "dots", "colorblock"],
                   [0.3, 0.2, 0.1, 0.17, 0.1, 0.13] if top_kind != "jacket" else [0.6, 0.1, 0.05, 0.15, 0.0, 0.1])
    inner = _contrasting(rng, top.colour)
    sleeve = {"tshirt": rng.uniform(0.18, 0.32), "longsleeve": rng.uniform(0.9, 1.0), "shirt": rng.uniform(0.55, 1.0),
              "jacket": rng.uniform(0.92, 1.0), "tank": 0.0}[top_kind]
    neckline = str(rng.choice(["round", "v", "collar"], p=[0.6, 0.25, 0.15] if top_kind != "shirt" else [0.1, 0.2, 0.7]))
    logo = "none"
    if top_kind in ("tshirt", "tank", "longsleeve") and rng.random() < 0.5:
        logo = str(rng.choice(["circle", "square", "diamond", "ring", "bar", "triangle"]))
    back_print = str(rng.choice(["none", "band", "block"], p=[0.6, 0.2, 0.2]))
    logo_colour = _contrasting(rng, top.colour)

    if women:
        bottom_kind = str(rng.choice(["trousers", "shorts", "skirt", "dress"], p=[0.45, 0.15, 0.2, 0.2]))
    else:
        bottom_kind = str(rng.choice(["trousers", "shorts"], p=[0.8, 0.2]))
    if bottom_kind == "dress":
        bottom = top
        top_kind = "tank" if top_kind in ("jacket", "shirt") else top_kind
        sleeve = min(sleeve, 0.3) if top_kind != "longsleeve" else sleeve
    else:
        base = _jitter(rng, _TROUSERS[rng.integers(len(_TROUSERS))], 0.03) if rng.random() < 0.7 \
            else _random_colour(rng)
        bottom = _garment(rng, base, ["solid", "checks", "hstripes", "vstripes"], [0.82, 0.08, 0.04, 0.06])
    leg_cover = {"trousers": rng.uniform(0.9, 1.0), "shorts": rng.uniform(0.28, 0.42),
                 "skirt": 0.0, "dress": 0.0}[bottom_kind]
    skirt_length = float(rng.uniform(0.16, 0.36)) if bottom_kind in ("skirt", "dress") else 0.0
    tucked = bool(top_kind == "shirt" and rng.random() < 0.6 or rng.random() < 0.15) and bottom_kind != "dress"
    belt = _jitter(rng, _SHOES[rng.integers(3)], 0.03) if tucked and rng.random() < 0.6 else None
    shoes = _jitter(rng, _SHOES[rng.integers(len(_SHOES))], 0.03) if rng.random() < 0.85 else _random_colour(rng)
    soles = (0.9, 0.9, 0.88) if rng.random() < 0.4 else tuple(0.6 * c for c in shoes)  # type: ignore[assignment]
    backpack = _random_colour(rng) if kind == "market" and rng.random() < 0.25 else None
    cams = np.sort(rng.choice(6, size=int(rng.integers(2, 5)), replace=False) + 1)
    return Identity(
        index=int(index), kind=kind, gender=gender, skin=skin, hair=hair, hair_style=style,
        hairline_front=float(front), hairline_back=float(back), hair_length=hair_length, head=head,
        shoulder=shoulder, hip=hip, chest_depth=chest, limb=limb, leg=leg, top_kind=top_kind, top=top,
        inner=inner, neckline=neckline, sleeve=float(sleeve), logo=logo, logo_colour=logo_colour,
        back_print=back_print, tucked=tucked, bottom_kind=bottom_kind, bottom=bottom,
        leg_cover=float(leg_cover), skirt_length=skirt_length, belt=belt, shoes=shoes, soles=soles,
        backpack=backpack, cameras=tuple(int(c) for c in cams), outfit=int(rng.integers(1, 6)),
    )


def _arm(flex: float, abd: float, elbow: float, ref: Sequence[float] = (0.0, 0.25, 1.0)):
    return (float(flex), float(abd), float(elbow), float(ref[0]), float(ref[1]), float(ref[2]))


def _sample_arms(rng: np.random.Generator, family: str):
    """(right arm, left arm) angles for a pose family; the un-posed arm hangs naturally."""
    def hang():
        return _arm(rng.normal(2, 8), rng.uniform(4, 14), rng.uniform(5, 25))

    r, l = hang(), hang()
    one = rng.random() < 0.5  # True: the right arm does the gesture
    if family == "raise":
        def raised():
            if rng.random() < 0.5:
                return _arm(rng.normal(0, 10), rng.uniform(115, 170), rng.uniform(0, 30))
            return _arm(rng.uniform(115, 170), rng.uniform(0, 20), rng.uniform(0, 30))
        if rng.random() < 0.4:
            r, l = raised(), raised()
        elif one:
            r = raised()
        else:
            l = raised()
    elif family == "wave":
        g = _arm(rng.uniform(-5, 25), rng.uniform(45, 90), rng.uniform(70, 120), (0.2, 1.0, 0.25))
        r, l = (g, l) if one else (r, g)
    elif family == "akimbo":
        def hip_hand():
            return _arm(rng.uniform(-15, 0), rng.uniform(35, 55), rng.uniform(90, 118), (-1.0, -0.3, -0.2))
        if rng.random() < 0.5:
            r, l = hip_hand(), hip_hand()
        elif one:
            r = hip_hand()
        else:
            l = hip_hand()
    elif family == "cross":
        r = _arm(rng.uniform(20, 40), rng.uniform(10, 25), rng.uniform(105, 130), (-1.0, 0.2, 0.6))
        l = _arm(rng.uniform(20, 40), rng.uniform(10, 25), rng.uniform(105, 130), (-1.0, 0.35, 0.7))
    elif family == "behind":
        r = _arm(rng.uniform(-32, -15), rng.uniform(5, 15), rng.uniform(50, 90), (-1.0, 0.0, -0.8))
        l = _arm(rng.uniform(-32, -15), rng.uniform(5, 15), rng.uniform(50, 90), (-1.0, 0.0, -0.8))
    elif family == "reach":
        if rng.random() < 0.5:
            g = _arm(rng.uniform(60, 100), rng.uniform(0, 25), rng.uniform(0, 20))
        else:
            g = _arm(rng.uniform(-10, 20), rng.uniform(65, 95), rng.uniform(0, 20))
        r, l = (g, l) if one else (r, g)
    elif family == "phone":
        g = _arm(rng.uniform(10, 35), rng.uniform(15, 35), rng.uniform(122, 145), (0.0, 0.7, 0.7))
        r, l = (g, l) if one else (r, g)
    return r, l


def sample_pose(rng: np.random.Generator | int, kind: str = "market", view: str | None = None,
                family: str | None = None) -> PoseParams:
    """A random pose: ``view`` in front | back | side | three_quarter and ``family`` (see FAMILIES)."""
    rng = _as_rng(rng)
    kind = _check_kind(kind)
    if view is None:
        view = str(rng.choice(VIEWS, p=VIEW_PROBS))
    if view not in VIEWS:
        raise PoseError(f"unknown view {view!r} (choose from {', '.join(VIEWS)})")
    if family is None:
        family = str(rng.choice(FAMILIES, p=FAMILY_PROBS))
    if family not in FAMILIES:
        raise PoseError(f"unknown pose family {family!r} (choose from {', '.join(FAMILIES)})")
    sign = 1.0 if rng.random() < 0.5 else -1.0
    yaw = {"front": rng.normal(0, 12), "back": 180 + rng.normal(0, 12), "side": sign * (90 + rng.normal(0, 10)),
           "three_quarter": sign * (rng.uniform(30, 60) if rng.random() < 0.65 else rng.uniform(120, 150))}[view]

    arm_r, arm_l = _sample_arms(rng, family)
    lean, twist = rng.normal(0, 3), rng.normal(0, 4)
    # legs: standing variants unless walking/running
    stance = rng.choice(["straight", "contrapposto", "wide", "cross"], p=[0.45, 0.3, 0.15, 0.1])
    leg_r = [rng.normal(0, 4), rng.uniform(0, 8), rng.uniform(0, 8), rng.uniform(0, 15)]
    leg_l = [rng.normal(0, 4), rng.uniform(0, 8), rng.uniform(0, 8), rng.uniform(0, 15)]
    if stance == "contrapposto":
        bent = leg_r if rng.random() < 0.5 else leg_l
        bent[0], bent[2] = rng.uniform(5, 18), rng.uniform(15, 32)
    elif stance == "wide":
        leg_r[1], leg_l[1] = rng.uniform(10, 20), rng.uniform(10, 20)
    elif stance == "cross":
        crossed = leg_r if rng.random() < 0.5 else leg_l
        crossed[1], crossed[0], crossed[2] = rng.uniform(-12, -6), rng.uniform(0, 10), rng.uniform(5, 15)
    if family in ("walk", "run"):
        phase = rng.uniform(0, 2 * math.pi)
        run = family == "run"
        amp = rng.uniform(30, 45) if run else rng.uniform(14, 30)
        s = math.sin(phase)
        for leg, sg in ((leg_r, 1.0), (leg_l, -1.0)):
            f = sg * amp * s
            leg[0], leg[1] = f, rng.uniform(0, 6)
            behind = max(0.0, -f / amp + 0.25)
            leg[2] = rng.uniform(3, 10) + (rng.uniform(50, 90) if run else rng.uniform(25, 45)) * min(1.0, behind)
            if run and f > 0:
                leg[2] = max(leg[2], rng.uniform(30, 60))
        arm_amp = rng.uniform(35, 50) if run else rng.uniform(10, 30)
        elbow = (rng.uniform(80, 100), rng.uniform(80, 100)) if run else (rng.uniform(10, 35), rng.uniform(10, 35))
        if family == "run" or rng.random() < 0.75:  # walking with busy hands keeps the gesture arms
            arm_r = _arm(-arm_amp * s, rng.uniform(4, 12), elbow[0])
            arm_l = _arm(arm_amp * s, rng.uniform(4, 12), elbow[1])
        twist = 0.25 * arm_amp * s
        lean = rng.uniform(8, 15) if run else rng.uniform(0, 5)

    def limit_arm(a):
        return (float(np.clip(a[0] + rng.normal(0, 3), -50, 175)), float(np.clip(a[1] + rng.normal(0, 3), -15, 175)),
                float(np.clip(a[2] + rng.normal(0, 3), 0, 150)), a[3], a[4], a[5])

    def limit_leg(g):
        return (float(np.clip(g[0], -35, 110)), float(np.clip(g[1], -15, 45)), float(np.clip(g[2], 0, 140)),
                float(np.clip(g[3], -10, 30)))

    light_az = rng.uniform(-0.8, 0.8)
    light_el = rng.uniform(0.2, 0.7)
    light = np.array([light_az, -light_el, rng.uniform(0.6, 1.0)])
    light /= np.linalg.norm(light)
    fashion = kind == "fashion"
    return PoseParams(
        view=view, family=family, yaw=float(yaw), lean=float(np.clip(lean, -10, 25)),
        side_bend=float(np.clip(rng.normal(0, 3), -8, 8)), twist=float(np.clip(twist, -20, 20)),
        head_turn=float(np.clip(rng.normal(0, 14), -40, 40)), head_tilt=float(np.clip(rng.normal(0, 6), -15, 15)),
        arm_r=limit_arm(arm_r), arm_l=limit_arm(arm_l), leg_r=limit_leg(leg_r), leg_l=limit_leg(leg_l),
        fill=float(rng.uniform(0.84, 0.92) if fashion else rng.uniform(0.85, 0.94)),
        fill_w=float(rng.uniform(0.88, 0.96)),
        ground=float(rng.uniform(0.95, 0.985) if fashion else rng.uniform(0.945, 0.985)),
        shift=float(rng.uniform(-0.05, 0.05) if fashion else rng.uniform(-0.07, 0.07)),
        light=(float(light[0]), float(light[1]), float(light[2])), ambient=float(rng.uniform(0.42, 0.56)),
        gain=float(rng.uniform(0.88, 1.1)), tint=_jitter(rng, (1.0, 1.0, 1.0), 0.025),
    )


# --------------------------------------------------------------------------------------------------
# Kinematics: 3-D skeleton → projected 2-D rig
# --------------------------------------------------------------------------------------------------
def _rotx(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _roty(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rotz(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-9 else v


_DOWN = np.array([0.0, -1.0, 0.0])
# Body lengths in body heights (sole to top of head = 1).
SPINE, UPPER_ARM, FOREARM, HAND, THIGH, SHIN, FOOT = 0.29, 0.165, 0.145, 0.085, 0.245, 0.245, 0.115

# Names of the 3-D points of a skeleton (the 18 joints first, in COCO order).
_EXTRA = ("head", "r_hand", "l_hand", "r_heel", "r_toe", "l_heel", "l_toe", "hair_top", "hair_end", "bun",
          "pack", "hip_c", "waist")
_POINT_INDEX = {name: i for i, name in enumerate(K.JOINT_NAMES + _EXTRA)}


@dataclass
class _Rig:
    """A projected skeleton in pixels: points (N, 2) (x, y), depth (N,) (towards the camera), plus sizes."""

    pts: np.ndarray
    depth: np.ndarray
    scale: float                     # pixels per body height
    yaw: float                       # radians
    cam_head: np.ndarray             # 3×3 head frame → camera frame
    torso_w: tuple[float, float]     # projected half-widths (shoulders, hips) in body heights
    pack_w: float
    face_visible: dict[int, bool]

    def p(self, name: str) -> np.ndarray:
        return self.pts[_POINT_INDEX[name]]

    def z(self, name: str) -> float:
        return float(self.depth[_POINT_INDEX[name]])


def _skeleton(ident: Identity, pose: PoseParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """3-D points in the person frame (x = person's left, y = up, z = forward), origin at the hip centre.

    Returns (points (N, 3), torso rotation, head rotation).
    """
    rad = math.radians
    pts = np.zeros((len(_POINT_INDEX), 3))
    put = lambda name, v: pts.__setitem__(_POINT_INDEX[name], v)  # noqa: E731
    rt = _roty(rad(pose.twist)) @ _rotx(rad(pose.lean)) @ _rotz(rad(pose.side_bend))
    rp = _roty(rad(-0.5 * pose.twist))
    neck = rt @ np.array([0.0, SPINE, 0.0])
    put("neck", neck)
    put("hip_c", np.zeros(3))
    put("waist", rt @ np.array([0.0, 0.075, 0.0]))
    # arms
    for sg, (sh, el, wr, hand), params in ((-1.0, ("r_shoulder", "r_elbow", "r_wrist", "r_hand"), pose.arm_r),
                                           (1.0, ("l_shoulder", "l_elbow", "l_wrist", "l_hand"), pose.arm_l)):
        flex, abd, elbow, rx, ry, rz = params
        shoulder = neck + rt @ np.array([sg * ident.shoulder, 0.0, 0.0])
        d = rt @ (_rotx(-rad(flex)) @ (_rotz(sg * rad(abd)) @ _DOWN))
        ref = rt @ _unit(np.array([sg * rx, ry, rz]))
        b = ref - float(ref @ d) * d
        if np.linalg.norm(b) < 1e-3:
            b = rt @ np.array([0.0, 0.0, 1.0]) - float((rt @ np.array([0.0, 0.0, 1.0])) @ d) * d
        b = _unit(b)
        e = rad(elbow)
        fa = math.cos(e) * d + math.sin(e) * b
        elbow_p = shoulder + UPPER_ARM * d
        wrist = elbow_p + FOREARM * fa
        put(sh, shoulder), put(el, elbow_p), put(wr, wrist), put(hand, wrist + HAND * fa)
    # legs
    back = rp @ np.array([0.0, 0.0, -1.0])
    for sg, (hp, kn, an, heel, toe), params in ((-1.0, ("r_hip", "r_knee", "r_ankle", "r_heel", "r_toe"), pose.leg_r),
                                                (1.0, ("l_hip", "l_knee", "l_ankle", "l_heel", "l_toe"), pose.leg_l)):
        flex, abd, knee, toe_out = params
        hip = rp @ np.array([sg * ident.hip, 0.0, 0.0])
        d = rp @ (_rotx(-rad(flex)) @ (_rotz(sg * rad(abd)) @ _DOWN))
        b = _unit(back - float(back @ d) * d)
        k = rad(knee)
        shin = math.cos(k) * d + math.sin(k) * b
        knee_p = hip + THIGH * ident.leg * d
        ankle = knee_p + SHIN * ident.leg * shin
        fwd = rp @ (_roty(sg * rad(toe_out)) @ np.array([0.0, 0.0, 1.0]))
        foot = _unit(fwd - float(fwd @ shin) * shin)
        put(hp, hip), put(kn, knee_p), put(an, ankle)
        put(heel, ankle - 0.025 * foot + 0.03 * shin)
        put(toe, ankle + FOOT * foot + 0.03 * shin)
    # head
    rh = rt @ _roty(rad(pose.head_turn)) @ _rotx(rad(pose.head_tilt))
    r = ident.head
    head = neck + rt @ np.array([0.0, 0.048, 0.008]) + rh @ np.array([0.0, 1.02 * r, 0.0])
    put("head", head)
    for j, (unit, _) in _FACE_POINTS.items():
        put(K.JOINT_NAMES[j], head + rh @ (np.array(unit) * np.array([r, 1.12 * r, r])))
    put("hair_top", head + rh @ np.array([0.0, 0.05 * r, -0.55 * r]))
    # long hair hangs behind the back: its lower end lies just behind the torso's back surface
    put("hair_end", neck + rt @ np.array([0.0, 0.12 - ident.hair_length, -(ident.chest_depth + 0.015)]))
    put("bun", head + rh @ np.array([0.0, 0.62 * r, -0.78 * r]))
    put("pack", neck + rt @ np.array([0.0, -0.13, -(ident.chest_depth + 0.04)]))
    return pts, rt, rh


def _project(ident: Identity, pose: PoseParams, size: tuple[int, int]) -> _Rig:
    """Rotate the skeleton by the view yaw, project it and fit the figure into the frame."""
    h, w = size
    pts3, rt, rh = _skeleton(ident, pose)
    yaw = math.radians(pose.yaw)
    ry = _roty(yaw)
    cam = pts3 @ ry.T
    xy = np.stack([cam[:, 0], -cam[:, 1]], axis=1)
    depth = cam[:, 2]
    # projected torso half-widths: an elliptic cross-section seen under the yaw (+ shoulder/hip twist)
    a_sh = yaw + math.radians(pose.twist)
    a_hp = yaw - math.radians(0.5 * pose.twist)
    w_sh = math.hypot((ident.shoulder + 0.022 * ident.limb) * math.cos(a_sh), ident.chest_depth * math.sin(a_sh))
    w_hp = math.hypot((ident.hip + 0.03 * ident.limb) * math.cos(a_hp), (ident.chest_depth + 0.005) * math.sin(a_hp))
    pack_w = math.hypot(0.08 * math.cos(a_sh), 0.05 * math.sin(a_sh))
    # bounding box of the drawn figure (points with their drawing radius), in body heights
    r = ident.head
    idx = _POINT_INDEX
    margin = np.full(len(idx), 0.03)
    margin[[idx["head"]]] = 1.15 * r
    margin[[idx["r_hand"], idx["l_hand"]]] = 0.022
    margin[[idx["r_shoulder"], idx["l_shoulder"], idx["neck"]]] = 0.035
    margin[[idx["r_hip"], idx["l_hip"]]] = 0.045
    use = [i for n, i in idx.items() if n not in ("hair_end", "hair_top", "bun", "pack", "waist")]
    lo = (xy[use] - margin[use, None]).min(axis=0)
    hi = (xy[use] + margin[use, None]).max(axis=0)
    lo[0] = min(lo[0], xy[idx["neck"], 0] - w_sh, xy[idx["hip_c"], 0] - w_hp)
    hi[0] = max(hi[0], xy[idx["neck"], 0] + w_sh, xy[idx["hip_c"], 0] + w_hp)
    ext = hi - lo
    scale = min(pose.fill * h / ext[1], pose.fill_w * w / ext[0])
    cx = w / 2.0 - 0.5 + pose.shift * w
    gy = pose.ground * h
    off = np.array([cx - scale * (lo[0] + hi[0]) / 2.0, gy - scale * hi[1]])
    pix = xy * scale + off
    cam_head = ry @ rh
    visible = {}
    for j, (unit, thr) in _FACE_POINTS.items():
        n = cam_head @ _unit(np.array(unit))
        visible[j] = bool(n[2] > thr)
    return _Rig(pts=pix, depth=depth, scale=float(scale), yaw=yaw, cam_head=cam_head, torso_w=(w_sh, w_hp),
                pack_w=pack_w, face_visible=visible)


# --------------------------------------------------------------------------------------------------
# Rasteriser
# --------------------------------------------------------------------------------------------------
class _Canvas:
    """A float32 RGB image in [0, 1] plus a label map of which part is on top at each pixel."""

    def __init__(self, background: np.ndarray, light: Sequence[float], ambient: float) -> None:
        self.img = background
        self.h, self.w = background.shape[:2]
        self.label = np.zeros((self.h, self.w), dtype=np.uint8)
        self.gx = np.arange(self.w, dtype=np.float32)
        self.gy = np.arange(self.h, dtype=np.float32)
        self.light = np.asarray(light, dtype=np.float32)
        self.ambient = float(ambient)
        self.diffuse = float(1.0 - ambient) * 1.05

    def box(self, x0: float, x1: float, y0: float, y1: float):
        xa, xb = max(0, int(math.floor(x0))), min(self.w, int(math.ceil(x1)) + 1)
        ya, yb = max(0, int(math.floor(y0))), min(self.h, int(math.ceil(y1)) + 1)
        if xa >= xb or ya >= yb:
            return None
        return ya, yb, xa, xb

    def composite(self, box, alpha: np.ndarray, colour: np.ndarray, shade: np.ndarray, part: int) -> None:
        ya, yb, xa, xb = box
        region = self.img[ya:yb, xa:xb]
        if colour.ndim == 1:
            colour = colour[None, None, :]
        target = colour * shade[..., None]
        region += alpha[..., None] * (target - region)
        self.label[ya:yb, xa:xb][alpha > 0.5] = part

    def shade_cyl(self, s: np.ndarray, perp: tuple[float, float]) -> np.ndarray:
        """Lambert shading of a cylinder: ``s`` ∈ [-1, 1] across it, ``perp`` the screen direction of s."""
        lx, ly, lz = self.light
        nz = np.sqrt(np.maximum(1.0 - s * s, 0.0))
        lam = s * (perp[0] * lx + perp[1] * ly) + nz * lz
        return self.ambient + self.diffuse * np.maximum(lam, 0.0)

    def capsule(self, p0: np.ndarray, p1: np.ndarray, r0: float, r1: float):
        """Geometry of a tapered capsule p0→p1 (pixels): (box, alpha, t ∈ [0,1], s ∈ [-1,1], perp, length)."""
        rmax = max(r0, r1) + 1.0
        box = self.box(min(p0[0], p1[0]) - rmax, max(p0[0], p1[0]) + rmax,
                       min(p0[1], p1[1]) - rmax, max(p0[1], p1[1]) + rmax)
        if box is None:
            return None
        ya, yb, xa, xb = box
        dx, dy = float(p1[0] - p0[0]), float(p1[1] - p0[1])
        length = math.hypot(dx, dy)
        if length < 1e-6:
            dx, dy, length = 0.0, 1e-3, 1e-3
        ux, uy = dx / length, dy / length
        px = self.gx[None, xa:xb] - np.float32(p0[0])
        py = self.gy[ya:yb, None] - np.float32(p0[1])
        along = px * np.float32(ux) + py * np.float32(uy)
        across = px * np.float32(-uy) + py * np.float32(ux)
        t = np.clip(along * np.float32(1.0 / length), 0.0, 1.0)
        ex = along - t * np.float32(length)
        dist = np.sqrt(ex * ex + across * across)
        r = np.float32(r0) + t * np.float32(r1 - r0)
        alpha = np.clip(r - dist + np.float32(0.5), 0.0, 1.0)
        s = np.clip(across / r, -1.0, 1.0)
        return box, alpha, t, s, (-uy, ux), length

    def trapezoid(self, top: np.ndarray, bottom: np.ndarray, w_top: float, w_bot: float, corner: float):
        """A rounded trapezoid from ``top`` to ``bottom`` (axis centres, pixels) with half-widths.

        Returns (box, alpha, u ∈ [0, 1] down the axis, s ∈ [-1, 1] across, perp, length).
        """
        wm = max(w_top, w_bot) + 1.0
        box = self.box(min(top[0], bottom[0]) - wm, max(top[0], bottom[0]) + wm,
                       min(top[1], bottom[1]) - wm, max(top[1], bottom[1]) + wm)
        if box is None:
            return None
        ya, yb, xa, xb = box
        dx, dy = float(bottom[0] - top[0]), float(bottom[1] - top[1])
        length = max(math.hypot(dx, dy), 1e-3)
        ax, ay = dx / length, dy / length
        px = self.gx[None, xa:xb] - np.float32(top[0])
        py = self.gy[ya:yb, None] - np.float32(top[1])
        u = px * np.float32(ax) + py * np.float32(ay)
        v = px * np.float32(-ay) + py * np.float32(ax)  # positive towards the image right when upright
        un = np.clip(u * np.float32(1.0 / length), 0.0, 1.0)
        width = np.float32(w_top) + un * np.float32(w_bot - w_top)
        if corner > 0:
            c = np.float32(corner)
            dc = np.maximum(c - u, 0.0)
            width = width - c + np.sqrt(np.maximum(c * c - dc * dc, 0.0))
        av = np.abs(v)
        alpha = np.clip(width - av + np.float32(0.5), 0.0, 1.0)
        alpha = np.minimum(alpha, np.clip(u + np.float32(0.5), 0.0, 1.0))
        alpha = np.minimum(alpha, np.clip(np.float32(length + 0.5) - u, 0.0, 1.0))
        s = np.clip(v / np.maximum(width, np.float32(0.5)), -1.0, 1.0)
        return box, alpha, un, s, (-ay, ax), length


def _square_wave(x: np.ndarray, sharp: float = 2.5) -> np.ndarray:
    """A soft 0/1 square wave of period 1 (anti-aliased stripes)."""
    return np.clip(np.float32(0.5) + np.float32(sharp) * np.cos(np.float32(2 * math.pi) * x), 0.0, 1.0)


def _pattern(g: Garment, u: np.ndarray, phi: np.ndarray | None) -> np.ndarray | None:
    """Pattern mask (1 = second colour) at body-surface coordinates: ``u`` body heights down, ``phi`` angle."""
    p = g.pattern
    if p == "solid":
        return None
    if p == "hstripes":
        return _square_wave(u / np.float32(g.period))
    if p == "colorblock":
        return None
    around = None if phi is None else phi * np.float32(g.around / (2 * math.pi))
    if p == "vstripes":
        return None if around is None else _square_wave(around)
    if p == "checks":
        a = _square_wave(u / np.float32(g.period))
        if around is None:
            return a
        b = _square_wave(around)
        return a + b - 2 * a * b
    if p == "dots":
        if around is None:
            return None
        fu = np.mod(u / np.float32(g.period), 1.0) - 0.5
        fa = np.mod(around, 1.0) - 0.5
        return np.clip((np.float32(0.09) - fu * fu - fa * fa) * 30.0, 0.0, 1.0)
    return None


def _blend(base: np.ndarray, mask: np.ndarray | None, other) -> np.ndarray:
    """``base`` (H,W,3 or 3) with ``other`` where ``mask`` (0..1) is set."""
    if mask is None:
        return base
    other = np.asarray(other, dtype=np.float32)
    if base.ndim == 1:
        base = np.broadcast_to(base, mask.shape + (3,))
    return base + mask[..., None] * (other - base)


def _garment_colour(g: Garment, u: np.ndarray, phi: np.ndarray | None) -> np.ndarray:
    c1 = np.asarray(g.colour, dtype=np.float32)
    return _blend(c1, _pattern(g, u, phi), g.colour2)


# --------------------------------------------------------------------------------------------------
# Drawing one person
# --------------------------------------------------------------------------------------------------
def _draw_limb(cv: _Canvas, rig: _Rig, ident: Identity, a: str, b: str, r0: float, r1: float, part: int,
               cover: float, garment: Garment | None, u0: float, skin: np.ndarray) -> None:
    """A limb segment: garment from its start to ``cover`` (fraction of its length), skin beyond."""
    geo = cv.capsule(rig.p(a), rig.p(b), r0, r1)
    if geo is None:
        return
    box, alpha, t, s, perp, length = geo
    if garment is None or cover <= 0:
        colour = skin
    else:
        u = np.float32(u0) + t * np.float32(length / rig.scale)
        phi = np.arcsin(s) if garment.pattern in ("vstripes", "checks", "dots") else None
        colour = _garment_colour(garment, u, phi)
        if cover < 1:
            m = np.clip((np.float32(cover) - t) * np.float32(length) + np.float32(0.5), 0.0, 1.0)
            if colour.ndim == 1:
                colour = np.broadcast_to(colour, t.shape + (3,))
            colour = skin + m[..., None] * (colour - skin)
    cv.composite(box, alpha, colour, cv.shade_cyl(s, perp), part)


def _draw_shoe(cv: _Canvas, rig: _Rig, ident: Identity, side: str, part: int) -> None:
    s_px = rig.scale
    heel, toe = rig.p(f"{side}_heel"), rig.p(f"{side}_toe")
    geo = cv.capsule(heel, toe, 0.03 * s_px * ident.limb, 0.026 * s_px * ident.limb)
    if geo is None:
        return
    box, alpha, t, s, perp, length = geo
    colour = np.asarray(ident.shoes, dtype=np.float32)
    # sole: the lower edge of the shoe (s on the side facing down)
    down = perp[1]
    sole = np.clip((s * np.float32(math.copysign(1.0, down if abs(down) > 0.2 else 1.0)) - 0.45) * 6, 0, 1) \
        if abs(down) > 0.2 else None
    colour = _blend(colour, sole, ident.soles)
    cv.composite(box, alpha, colour, cv.shade_cyl(s, perp), part)


def _draw_torso(cv: _Canvas, rig: _Rig, ident: Identity, skin: np.ndarray) -> None:
    sc = rig.scale
    neck, hip_c = rig.p("neck"), rig.p("hip_c")
    axis = hip_c - neck
    ln = float(np.hypot(*axis)) or 1.0
    a = axis / ln
    top = neck - a * (0.035 * sc)
    hem = 0.04 if not ident.tucked else 0.02
    bottom = hip_c + a * (hem * sc)
    w_sh, w_hp = rig.torso_w
    geo = cv.trapezoid(top, bottom, w_sh * sc, w_hp * sc, corner=0.045 * sc)
    if geo is None:
        return
    box, alpha, un, s, perp, length = geo
    u = un * np.float32(length / sc)            # body heights from the top of the shoulders
    phi = np.arcsin(s) - np.float32(rig.yaw)  # angle around the body, 0 = the person's front
    phi = np.mod(phi + np.float32(math.pi), np.float32(2 * math.pi)) - np.float32(math.pi)
    top_g = ident.top
    colour = _garment_colour(top_g, u, phi)
    total = length / sc
    if top_g.pattern == "colorblock":
        colour = _blend(colour, np.clip((u - np.float32(0.45 * total)) * sc, 0, 1), top_g.colour2)
    front = np.abs(phi)
    if ident.top_kind == "jacket":
        opening = np.clip((np.float32(0.22) + np.float32(0.35) * un - front) * np.float32(sc * 0.05), 0, 1)
        colour = _blend(colour, opening, ident.inner)
    if ident.logo != "none":
        lx = phi / np.float32(0.42)
        ly = (u - np.float32(0.1)) / np.float32(0.05)
        shape = {
            "circle": lx * lx + ly * ly < 1, "square": (np.abs(lx) < 0.85) & (np.abs(ly) < 0.85),
            "diamond": np.abs(lx) + np.abs(ly) < 1.1, "ring": np.abs(lx * lx + ly * ly - 0.6) < 0.35,
            "bar": (np.abs(lx) < 1.2) & (np.abs(ly) < 0.4), "triangle": (ly > -0.8) & (np.abs(lx) < (ly + 0.8) * 0.6),
        }[ident.logo]
        colour = _blend(colour, shape.astype(np.float32), ident.logo_colour)
    if ident.back_print != "none":
        back = front > np.float32(math.pi - 0.75)
        if ident.back_print == "band":
            m = back & (np.abs(u - np.float32(0.12)) < 0.025)
        else:
            m = (front > np.float32(math.pi - 0.5)) & (np.abs(u - np.float32(0.13)) < 0.05)
        colour = _blend(colour, m.astype(np.float32), ident.logo_colour)
    if ident.top_kind == "shirt":
        buttons = (front < 0.06) & (np.mod(u, np.float32(0.05)) < 0.012) & (u > 0.06)
        colour = _blend(colour, buttons.astype(np.float32), ident.inner)
    # neckline (front only): skin in a round or V cut at the top
    if ident.neckline == "collar":
        m = (front < 0.7) & (u < np.float32(0.035) + np.float32(0.02) * (front > 0.25))
        colour = _blend(colour, m.astype(np.float32), ident.inner)
        vm = (u < np.float32(0.09) * (1 - front / np.float32(0.18))) & (front < 0.18)
        colour = _blend(colour, vm.astype(np.float32), skin)
    else:
        depth = 0.075 if ident.neckline == "v" else 0.04
        width = 0.35 if ident.neckline == "v" else 0.55
        prof = (1 - front / np.float32(width)) if ident.neckline == "v" else np.sqrt(
            np.maximum(1 - (front / np.float32(width)) ** 2, 0))
        m = np.clip((np.float32(depth) * prof + np.float32(0.03) - u) * np.float32(sc), 0, 1)
        m = m * (front < width)
        colour = _blend(colour, m, skin)
        if ident.top_kind == "tank":
            straps = np.clip((np.float32(0.35) - np.abs(np.abs(phi) - np.float32(1.2))) * 4, 0, 1) * (u < 0.06)
            colour = _blend(colour, np.clip(straps * 3 - 1, 0, 1), skin)
    if ident.backpack is not None:
        strap = (np.abs(np.abs(phi) - np.float32(0.75)) < 0.13) & (u < 0.2)
        colour = _blend(colour, strap.astype(np.float32), np.asarray(ident.backpack) * 0.7)
    # below the waist: the bottom garment (tucked shirts, skirts, dresses) and a belt
    waist = np.float32(total - (0.075 + hem))
    if ident.tucked or ident.bottom_kind in ("skirt", "dress"):
        wm = np.clip((u - waist) * np.float32(sc), 0, 1)
        colour = _blend(colour, wm, _garment_colour(ident.bottom, u, phi))
        if ident.belt is not None:
            colour = _blend(colour, (np.abs(u - waist - np.float32(0.008)) < 0.011).astype(np.float32), ident.belt)
    cv.composite(box, alpha, colour, cv.shade_cyl(s, perp), P_TORSO)


def _draw_skirt(cv: _Canvas, rig: _Rig, ident: Identity) -> None:
    sc = rig.scale
    waist, hip_c = rig.p("waist"), rig.p("hip_c")
    axis = _unit(hip_c - waist)
    bottom = waist + axis * (ident.skirt_length * sc)
    w_top = rig.torso_w[1] * sc * 1.03
    flare = w_top * 1.35
    # cover the thighs at the hem line
    frac = np.clip((ident.skirt_length - 0.075) / (THIGH * ident.leg), 0, 1.2)
    for side in ("r", "l"):
        at = rig.p(f"{side}_hip") + frac * (rig.p(f"{side}_knee") - rig.p(f"{side}_hip"))
        flare = max(flare, abs(float(at[0] - bottom[0])) + 0.05 * sc * ident.limb)
    geo = cv.trapezoid(waist, bottom, w_top, flare, corner=0.0)
    if geo is None:
        return
    box, alpha, un, s, perp, length = geo
    u = np.float32(0.3) + un * np.float32(length / sc)
    phi = np.arcsin(s) - np.float32(rig.yaw)
    colour = _garment_colour(ident.bottom, u, phi)
    cv.composite(box, alpha, colour, cv.shade_cyl(s * np.float32(0.85), perp), P_SKIRT)


def _draw_head(cv: _Canvas, rig: _Rig, ident: Identity, skin: np.ndarray, detail: bool) -> None:
    sc = rig.scale
    c = rig.p("head")
    rx, ry = ident.head * sc, 1.12 * ident.head * sc
    box = cv.box(c[0] - rx - 1, c[0] + rx + 1, c[1] - ry - 1, c[1] + ry + 1)
    if box is None:
        return
    ya, yb, xa, xb = box
    nx = (cv.gx[None, xa:xb] - np.float32(c[0])) * np.float32(1.0 / rx)
    ny = (cv.gy[ya:yb, None] - np.float32(c[1])) * np.float32(1.0 / ry)
    rr = nx * nx + ny * ny
    alpha = np.clip((np.float32(1.0) - np.sqrt(rr)) * np.float32(rx) + np.float32(0.5), 0.0, 1.0)
    nz = np.sqrt(np.maximum(np.float32(1.0) - rr, 0.0))
    cam_up = -ny
    # head-frame normal: inverse rotation of the camera-frame normal
    m = rig.cam_head.astype(np.float32)
    hx = m[0, 0] * nx + m[1, 0] * cam_up + m[2, 0] * nz
    hy = m[0, 1] * nx + m[1, 1] * cam_up + m[2, 1] * nz
    hz = m[0, 2] * nx + m[1, 2] * cam_up + m[2, 2] * nz
    colour = np.broadcast_to(skin, rr.shape + (3,))
    # the hairline runs from the front value (face) to the back value (nape) around the sides
    hairline = np.float32(ident.hairline_back) + (np.float32(ident.hairline_front - ident.hairline_back)
                                                  * np.clip((hz + np.float32(0.35)) * np.float32(1.4), 0, 1))
    hair = np.clip((hy - hairline) * np.float32(rx * 0.6), 0, 1)
    # ears stay skin unless the hair is long
    if ident.hair_style != "long":
        ear = np.clip((np.float32(0.25) - np.abs(hy + 0.02) - np.abs(np.abs(hx) - 0.96) * 0.8) * 8, 0, 1)
        hair = hair * (1 - ear)
    colour = _blend(colour, hair, ident.hair)
    # face: eyes, brows and mouth as dark marks on the head sphere
    eye_r = 0.13 if detail else 0.17
    for j in (14, 15):
        ex, ey, ez = _FACE_POINTS[j][0]
        d2 = (hx - ex) ** 2 + ((hy - ey) * 1.3) ** 2 + (hz - ez) ** 2
        colour = _blend(colour, np.clip((np.float32(eye_r ** 2) - d2) * 60, 0, 1) * (hz > 0), (0.1, 0.07, 0.06))
        if detail:
            brow = ((np.abs(hx - ex) < 0.17) & (np.abs(hy - 0.27) < 0.045) & (hz > 0.5)).astype(np.float32)
            colour = _blend(colour, brow * (hy < hairline), np.asarray(ident.hair) * 0.8)
    mouth = ((np.abs(hx) < 0.2) & (np.abs(hy + 0.5) < (0.06 if detail else 0.09)) & (hz > 0.4)).astype(np.float32)
    colour = _blend(colour, mouth, np.asarray(skin) * np.array([0.7, 0.45, 0.45], dtype=np.float32))
    if detail:
        nose = np.clip((np.float32(0.012) - hx ** 2 - ((hy + 0.22) * 0.7) ** 2) * 200, 0, 1) * (hz > 0.6)
        colour = _blend(colour, nose * 0.5, np.asarray(skin) * 0.75)
    lx, ly, lz = cv.light
    lam = nx * lx + ny * ly + nz * lz
    shade = cv.ambient + cv.diffuse * np.maximum(lam, 0.0)
    cv.composite(box, alpha, colour, shade, P_HEAD)


def _draw_ball(cv: _Canvas, centre: np.ndarray, radius: float, colour, part: int) -> None:
    geo = cv.capsule(centre, centre + np.array([0.0, 0.01]), radius, radius)
    if geo is None:
        return
    box, alpha, t, s, perp, length = geo
    cv.composite(box, alpha, np.asarray(colour, dtype=np.float32), cv.shade_cyl(s, perp), part)


def _draw_person(cv: _Canvas, rig: _Rig, ident: Identity, detail: bool) -> None:
    """Draw every part far-to-near (painter's algorithm on the parts' depth)."""
    sc = rig.scale
    lf = ident.limb * sc
    skin = np.asarray(ident.skin, dtype=np.float32)
    z = rig.z
    parts: list[tuple[float, int, object]] = []

    def add(key: float, order: int, fn) -> None:
        parts.append((key, order, fn))

    torso_key = 0.5 * (z("neck") + z("hip_c")) - 0.04
    add(torso_key, 0, lambda: _draw_torso(cv, rig, ident, skin))
    add(torso_key - 0.001, 1, lambda: _draw_limb(cv, rig, ident, "neck", "head", 0.027 * lf, 0.025 * lf, P_NECK,
                                                 0.0, None, 0.0, skin))
    add(z("head") + 0.002, 2, lambda: _draw_head(cv, rig, ident, skin, detail))
    if ident.hair_style == "long":
        hair = np.asarray(ident.hair, dtype=np.float32)
        r = ident.head * sc
        add(z("hair_end"), 3,
            lambda: _draw_limb(cv, rig, ident, "hair_top", "hair_end", 0.98 * r, 0.92 * r, P_HAIR, 0, None, 0, hair))
    elif ident.hair_style == "bun":
        add(z("bun"), 3, lambda: _draw_ball(cv, rig.p("bun"), 0.5 * ident.head * sc, ident.hair, P_BUN))
    # arms
    sleeve_len = ident.sleeve * (UPPER_ARM + FOREARM + 0.02)
    cover_ua = min(1.0, sleeve_len / UPPER_ARM)
    cover_fa = float(np.clip((sleeve_len - UPPER_ARM) / FOREARM, 0, 1))
    for i, (sd, ua, fa, hd) in enumerate((("r", P_RUA, P_RFA, P_RHAND), ("l", P_LUA, P_LFA, P_LHAND))):
        sh, el, wr, hn = f"{sd}_shoulder", f"{sd}_elbow", f"{sd}_wrist", f"{sd}_hand"
        add(0.5 * (z(sh) + z(el)), 10 + 3 * i,
            lambda sh=sh, el=el, ua=ua: _draw_limb(cv, rig, ident, sh, el, 0.033 * lf, 0.027 * lf, ua, cover_ua,
                                                   ident.top, 0.0, skin))
        add(0.5 * (z(el) + z(wr)) + 0.001, 11 + 3 * i,
            lambda el=el, wr=wr, fa=fa: _draw_limb(cv, rig, ident, el, wr, 0.027 * lf, 0.021 * lf, fa, cover_fa,
                                                   ident.top, UPPER_ARM, skin))
        add(0.5 * (z(wr) + z(hn)) + 0.002, 12 + 3 * i,
            lambda wr=wr, hn=hn, hd=hd: _draw_limb(cv, rig, ident, wr, hn, 0.021 * lf, 0.016 * lf, hd, 0.0, None,
                                                   0.0, skin))
    # legs
    leg_len = (THIGH + SHIN) * ident.leg
    cover = ident.leg_cover * leg_len
    cover_th = min(1.0, cover / (THIGH * ident.leg))
    cover_sh = float(np.clip((cover - THIGH * ident.leg) / (SHIN * ident.leg), 0, 1))
    trouser = 1.12 if ident.bottom_kind == "trousers" else 1.0
    leg_keys = []
    for i, (sd, th, sn, sho) in enumerate((("r", P_RTHIGH, P_RSHIN, P_RSHOE), ("l", P_LTHIGH, P_LSHIN, P_LSHOE))):
        hp, kn, an = f"{sd}_hip", f"{sd}_knee", f"{sd}_ankle"
        k_th = 0.5 * (z(hp) + z(kn)) - 0.06
        k_sh = 0.5 * (z(kn) + z(an)) - 0.06 + 0.001
        leg_keys += [k_th, k_sh]
        add(k_th, 20 + 3 * i,
            lambda hp=hp, kn=kn, th=th: _draw_limb(cv, rig, ident, hp, kn, 0.055 * lf * trouser, 0.039 * lf * trouser,
                                                   th, cover_th, ident.bottom, 0.3, skin))
        add(k_sh, 21 + 3 * i,
            lambda kn=kn, an=an, sn=sn: _draw_limb(cv, rig, ident, kn, an, 0.039 * lf * trouser, 0.028 * lf * trouser,
                                                   sn, cover_sh, ident.bottom, 0.3 + THIGH, skin))
        add(0.5 * (z(f"{sd}_heel") + z(f"{sd}_toe")) - 0.06 + 0.002, 22 + 3 * i,
            lambda sd=sd, sho=sho: _draw_shoe(cv, rig, ident, sd, sho))
    if ident.bottom_kind in ("skirt", "dress"):
        add(max(leg_keys) + 0.001, 30, lambda: _draw_skirt(cv, rig, ident))
    if ident.backpack is not None:
        def pack() -> None:
            c = rig.p("pack")
            axis = _unit(rig.p("hip_c") - rig.p("neck"))
            half = 0.075 * sc
            geo = cv.trapezoid(c - axis * half, c + axis * half, rig.pack_w * sc, rig.pack_w * sc * 1.05,
                               corner=0.025 * sc)
            if geo is not None:
                box, alpha, un, s, perp, length = geo
                col = np.asarray(ident.backpack, dtype=np.float32)
                flap = (un < 0.35).astype(np.float32) * 0.25
                colour = _blend(col, flap, col * 0.7)
                cv.composite(box, alpha, colour, cv.shade_cyl(s, perp), P_PACK)
        add(z("pack"), 31, pack)
    for _, _, fn in sorted(parts, key=lambda p: (p[0], p[1])):
        try:
            fn()
        except _Skip:  # a part whose end point is unknown (keypoint-driven drawing)
            pass


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


def sample_scene(rng: np.random.Generator | int, kind: str = "market") -> Scene:
    rng = _as_rng(rng)
    kind = _check_kind(kind)
    if kind == "fashion":
        if rng.random() < 0.75:
            v = rng.uniform(0.86, 0.98)
            wall = _jitter(rng, (v, v, v), 0.008)
        else:
            wall = tuple(float(c) for c in colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.05, 0.2),
                                                               rng.uniform(0.8, 0.95)))
        floor = tuple(float(c) * rng.uniform(0.9, 0.98) for c in wall)
        return Scene(kind=kind, wall=wall, floor=floor, horizon=float(rng.uniform(0.78, 0.92)))  # type: ignore
    wall = tuple(float(c) for c in colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.03, 0.35), rng.uniform(0.3, 0.85)))
    floor = tuple(float(c) for c in colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.0, 0.2), rng.uniform(0.3, 0.7)))
    n = int(rng.integers(2, 6))
    edges = np.sort(rng.uniform(-0.4, 1.4, n))
    panels = [_jitter(rng, np.asarray(wall) * rng.uniform(0.7, 1.2), 0.05) for _ in range(n + 1)]
    boxes = []
    for _ in range(int(rng.integers(0, 3))):
        x0 = rng.uniform(-0.4, 1.2)
        y1 = rng.uniform(0.5, 0.95)
        boxes.append((float(x0), float(x0 + rng.uniform(0.15, 0.6)), float(y1 - rng.uniform(0.1, 0.35)), float(y1),
                      _random_colour(rng)))
    return Scene(kind=kind, wall=wall, floor=floor, horizon=float(rng.uniform(0.45, 0.8)),  # type: ignore[arg-type]
                 edges=tuple(float(e) for e in edges), panels=tuple(panels),
                 sill=float(rng.uniform(0.1, 0.4)) if rng.random() < 0.5 else -1.0,
                 sill_colour=_jitter(rng, wall, 0.15), tiles=float(rng.uniform(0.05, 0.12)) if rng.random() < 0.5 else 0.0,
                 boxes=tuple(boxes))


def render_background(scene: Scene, size: tuple[int, int], rng: np.random.Generator | None = None) -> np.ndarray:
    """Float32 (H, W, 3) background in [0, 1]; ``rng`` adds a per-image pan of the scene."""
    h, w = size
    shift = float(rng.uniform(-0.25, 0.25)) if rng is not None else 0.0
    ys = (np.arange(h, dtype=np.float32) + 0.5) / h
    xs = (np.arange(w, dtype=np.float32) + 0.5) / w + np.float32(shift)
    if scene.kind == "fashion":
        wall = np.asarray(scene.wall, dtype=np.float32)
        grad = (np.float32(1.02) - np.float32(0.06) * ys)[:, None, None]
        img = np.broadcast_to(wall * grad, (h, 1, 3))
        floor = (ys > scene.horizon)[:, None, None]
        img = np.where(floor, np.asarray(scene.floor, dtype=np.float32) * grad, img)
        return np.array(np.broadcast_to(img, (h, w, 3)), dtype=np.float32)
    idx = np.searchsorted(np.asarray(scene.edges, dtype=np.float32), xs)
    cols = np.asarray(scene.panels, dtype=np.float32)[idx]                  # (W, 3)
    vgrad = (np.float32(1.08) - np.float32(0.2) * ys)[:, None, None]
    img = cols[None, :, :] * vgrad
    if scene.sill >= 0:
        band = (np.abs(ys - np.float32(scene.sill)) < 0.03)[:, None, None]
        img = np.where(band, np.asarray(scene.sill_colour, dtype=np.float32), img)
    horizon = scene.horizon + (float(rng.uniform(-0.03, 0.03)) if rng is not None else 0.0)
    fy = np.clip((ys - np.float32(horizon)) / np.float32(max(1e-3, 1 - horizon)), 0, 1)
    floor = np.asarray(scene.floor, dtype=np.float32) * (np.float32(0.85) + np.float32(0.3) * fy)[:, None, None]
    if scene.tiles > 0:
        lines = (np.mod(xs + (ys[:, None] - np.float32(horizon)) * (xs - 0.5 - shift) * 2, scene.tiles)
                 < scene.tiles * 0.12)
        floor = floor * (1 - 0.12 * lines[..., None])
    img = np.where((ys >= horizon)[:, None, None], floor, img)
    for x0, x1, y0, y1, colour in scene.boxes:
        mx = (xs >= x0) & (xs < x1)
        my = (ys >= y0) & (ys < y1)
        m = my[:, None] & mx[None, :]
        img = np.where(m[..., None], np.asarray(colour, dtype=np.float32) * vgrad, img)
    return np.array(np.broadcast_to(img, (h, w, 3)), dtype=np.float32)


def _shadow(img: np.ndarray, rig: _Rig) -> None:
    """A soft contact shadow under the feet (grounds the figure; darkens the background in place)."""
    h, w = img.shape[:2]
    feet = np.stack([rig.p("r_ankle"), rig.p("l_ankle"), rig.p("r_toe"), rig.p("l_toe")])
    cx = float(feet[:, 0].mean())
    cy = float(feet[:, 1].max()) + 0.01 * rig.scale
    rx, ry = 0.16 * rig.scale, 0.03 * rig.scale
    ya, yb = max(0, int(cy - ry) - 1), min(h, int(cy + ry) + 2)
    xa, xb = max(0, int(cx - rx) - 1), min(w, int(cx + rx) + 2)
    if ya >= yb or xa >= xb:
        return
    dx = (np.arange(xa, xb, dtype=np.float32) - cx) / rx
    dy = (np.arange(ya, yb, dtype=np.float32) - cy) / ry
    d = dx[None, :] ** 2 + dy[:, None] ** 2
    img[ya:yb, xa:xb] *= (np.float32(1) - np.float32(0.35) * np.clip(1 - d, 0, 1))[..., None]


# --------------------------------------------------------------------------------------------------
# Public rendering API
# --------------------------------------------------------------------------------------------------
def _as_rng(value) -> np.random.Generator:
    if isinstance(value, np.random.Generator):
        return value
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


def _rig_keypoints(rig: _Rig, label: np.ndarray) -> np.ndarray:
    """(18, 2) int (y, x) keypoints of the drawn figure, -1 where hidden or outside the image."""
    h, w = label.shape
    kp = np.rint(rig.pts[:K.NUM_JOINTS, ::-1]).astype(np.int64)
    for j in range(K.NUM_JOINTS):
        y, x = kp[j]
        if not (0 <= y < h and 0 <= x < w):
            kp[j] = K.MISSING
            continue
        if j in _FACE_POINTS and not rig.face_visible[j]:
            kp[j] = K.MISSING
            continue
        allowed = _VISIBLE_ON.get(j)
        if allowed is not None and int(label[y, x]) not in allowed:
            kp[j] = K.MISSING
    return kp


def _finish(img: np.ndarray, pose: PoseParams) -> np.ndarray:
    """Global lighting change (gain, colour tint) and conversion to uint8."""
    factor = np.asarray(pose.tint, dtype=np.float32) * np.float32(pose.gain * 255.0)
    out = img * factor
    np.clip(out, 0, 255, out=out)
    out += 0.5
    return out.astype(np.uint8)


def render_rig(ident: Identity, pose: PoseParams, size: tuple[int, int], scene: Scene | None = None,
               background_rng: np.random.Generator | None = None, background: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Render ``ident`` in ``pose`` at ``size`` (H, W) → (uint8 H×W×3 image, (18, 2) keypoints)."""
    rig = _project(ident, pose, size)
    if background is not None:
        bg = np.asarray(background, dtype=np.float32) / 255.0
        if bg.shape != (size[0], size[1], 3):
            raise DataError(f"background must be {size[0]}x{size[1]}x3, got {bg.shape}")
        bg = bg.copy()
    else:
        if scene is None:
            scene = sample_scene(np.random.default_rng(ident.index), ident.kind)
        bg = render_background(scene, size, background_rng)
    _shadow(bg, rig)
    cv = _Canvas(bg, pose.light, pose.ambient)
    _draw_person(cv, rig, ident, detail=size[0] >= 192)
    kp = _rig_keypoints(rig, cv.label)
    return _finish(cv.img, pose), kp


def render_person(person: np.random.Generator | int | Identity | None = None,
                  pose: np.ndarray | PoseParams | np.random.Generator | int | None = None,
                  size: str | tuple[int, int] = "market", *, view: str | None = None,
                  scene: Scene | None = None, background: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic photo: ``(uint8 H×W×3 RGB image, (18, 2) int (y, x) keypoints, -1 missing)``.

    ``person``: an :class:`Identity`, or a Generator / int seed to sample one. ``pose``: a
    :class:`PoseParams`, a Generator / int seed to sample one (default: drawn from the person's
    generator), or an (18, 2) (y, x) keypoint array in the pixels of ``size`` — the figure is then drawn
    through those joints (at least neck or shoulders, and both hips are needed) and the returned keypoints
    are the given ones (joints outside the image become -1). ``size``: ``market`` (128×64), ``fashion``
    (256×176) or (H, W). ``background``: a uint8 H×W×3 image to draw on instead of a random scene.
    """
    kind, hw = _resolve_size(size)
    rng = None
    if isinstance(person, Identity):
        ident = person
    else:
        rng = _as_rng(person)
        ident = sample_identity(rng, kind)
    if isinstance(pose, np.ndarray) or (isinstance(pose, (list, tuple)) and len(pose) == K.NUM_JOINTS):
        return _render_from_keypoints(ident, np.asarray(pose), hw, scene, background)
    if isinstance(pose, PoseParams):
        params = pose
    else:
        prng = _as_rng(pose) if pose is not None else (rng if rng is not None else np.random.default_rng())
        params = sample_pose(prng, kind, view=view)
    if scene is None and background is None:
        scene = sample_scene(np.random.default_rng([ident.index, 7]), kind)
    return render_rig(ident, params, hw, scene=scene, background=background)


def _render_from_keypoints(ident: Identity, keypoints: np.ndarray, size: tuple[int, int],
                           scene: Scene | None, background: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Draw the person through given 2-D joints (a target photo for any pose, e.g. an estimated one)."""
    kp = K.validate_keypoints(keypoints, where="render_person keypoints")
    kp = K.crop_keypoints(kp, 0, 0, size)
    miss = K.missing_mask(kp)
    idx = K.JOINT_INDEX
    need_hips = miss[idx["r_hip"]] or miss[idx["l_hip"]]
    if need_hips or (miss[idx["neck"]] and (miss[idx["r_shoulder"]] or miss[idx["l_shoulder"]])):
        raise PoseError("render_person: the keypoints need both hips and the neck or both shoulders")
    xy = kp[:, ::-1].astype(np.float64)
    hip_c = 0.5 * (xy[idx["r_hip"]] + xy[idx["l_hip"]])
    if miss[idx["neck"]]:
        xy[idx["neck"]] = 0.5 * (xy[idx["r_shoulder"]] + xy[idx["l_shoulder"]])
    neck = xy[idx["neck"]]
    spine = float(np.hypot(*(neck - hip_c))) or 1.0
    scale = spine / SPINE
    up = (neck - hip_c) / spine
    side = np.array([-up[1], up[0]])  # image-right when upright
    # yaw from the shoulder (or hip) spread and order: person's right on the image left = facing us
    pairs = [(idx["r_shoulder"], idx["l_shoulder"], ident.shoulder), (idx["r_hip"], idx["l_hip"], ident.hip)]
    yaw = 0.0
    for a, b, half in pairs:
        if not (miss[a] or miss[b]):
            spread = float((xy[b] - xy[a]) @ side) / (2 * half * scale)
            c = float(np.clip(spread, -1, 1))
            facing_back = c < 0
            yaw = math.acos(abs(c))
            nose_seen = not miss[idx["nose"]]
            if facing_back and not nose_seen:
                yaw = math.pi - yaw
            elif not facing_back and not nose_seen and miss[idx["r_eye"]] and miss[idx["l_eye"]]:
                yaw = math.pi - yaw
            if not miss[idx["nose"]]:
                sgn = -1.0 if float((xy[idx["nose"]] - neck) @ side) > 0 else 1.0
                yaw = sgn * yaw if abs(yaw) > 0.3 else yaw
            break
    # fill in the joints the drawing needs
    full = {}
    def get(name: str, fallback: np.ndarray) -> np.ndarray:
        j = idx[name]
        return xy[j] if not miss[j] else fallback
    full["neck"], full["hip_c"] = neck, hip_c
    for sd, sg in (("r", -1.0), ("l", 1.0)):
        sh = get(f"{sd}_shoulder", neck + side * sg * ident.shoulder * scale * math.cos(yaw))
        full[f"{sd}_shoulder"] = sh
        full[f"{sd}_hip"] = xy[idx[f"{sd}_hip"]]
        for a, b, c, extra in (("shoulder", "elbow", "wrist", "hand"), ("hip", "knee", "ankle", None)):
            pa = full[f"{sd}_{a}"]
            pb = xy[idx[f"{sd}_{b}"]] if not miss[idx[f"{sd}_{b}"]] else None
            full[f"{sd}_{b}"] = pb
            pc = xy[idx[f"{sd}_{c}"]] if pb is not None and not miss[idx[f"{sd}_{c}"]] else None
            full[f"{sd}_{c}"] = pc
            if extra and pc is not None:
                full[f"{sd}_{extra}"] = pc + (pc - pb) * (HAND / FOREARM)
        ank = full[f"{sd}_ankle"]
        if ank is not None:
            facing = math.sin(yaw)
            foot = np.array([-facing * FOOT * scale, 0.02 * scale])
            full[f"{sd}_heel"] = ank + np.array([0.0, 0.03 * scale]) - foot * 0.2
            full[f"{sd}_toe"] = ank + np.array([0.0, 0.03 * scale]) + foot + np.array([0.0, 0.0])
    head_c = neck + up * (0.048 + 1.02 * ident.head) * scale
    if not miss[idx["nose"]]:
        head_c = 0.5 * head_c + 0.5 * (xy[idx["nose"]] + up * 0.2 * ident.head * scale)
    full["head"] = head_c
    # a rig in pixels; depth: joints on the person's left are farther when we see the right side
    names = K.JOINT_NAMES + _EXTRA
    pts = np.zeros((len(names), 2))
    depth = np.zeros(len(names))
    for i, name in enumerate(names):
        p = full.get(name)
        if p is None and i < K.NUM_JOINTS and not miss[i]:
            p = xy[i]
        pts[i] = p if p is not None else (np.nan, np.nan)
        lateral = -1.0 if name.startswith("r_") else (1.0 if name.startswith("l_") else 0.0)
        depth[i] = -lateral * 0.1 * math.sin(yaw)
    pts[_POINT_INDEX["waist"]] = hip_c + up * 0.075 * scale
    pts[_POINT_INDEX["hair_top"]] = head_c + up * 0.05 * ident.head * scale
    pts[_POINT_INDEX["hair_end"]] = head_c - up * ident.hair_length * scale
    depth[_POINT_INDEX["hair_top"]] = depth[_POINT_INDEX["hair_end"]] = -0.06 * math.cos(yaw)
    pts[_POINT_INDEX["bun"]] = head_c + up * 0.6 * ident.head * scale
    depth[_POINT_INDEX["bun"]] = -0.05 * math.cos(yaw)
    pts[_POINT_INDEX["pack"]] = neck - up * 0.13 * scale - side * math.sin(yaw) * (ident.chest_depth + 0.04) * scale
    depth[_POINT_INDEX["pack"]] = -(ident.chest_depth + 0.04) * math.cos(yaw)
    cam_head = _roty(yaw)
    w_sh = math.hypot((ident.shoulder + 0.022 * ident.limb) * math.cos(yaw), ident.chest_depth * math.sin(yaw))
    w_hp = math.hypot((ident.hip + 0.03 * ident.limb) * math.cos(yaw), (ident.chest_depth + 0.005) * math.sin(yaw))
    rig = _Rig(pts=pts, depth=depth, scale=scale, yaw=yaw, cam_head=cam_head, torso_w=(w_sh, w_hp),
               pack_w=math.hypot(0.08 * math.cos(yaw), 0.05 * math.sin(yaw)), face_visible={})
    if background is not None:
        bg = np.asarray(background, dtype=np.float32) / 255.0
        if bg.shape != (size[0], size[1], 3):
            raise DataError(f"background must be {size[0]}x{size[1]}x3, got {bg.shape}")
        bg = bg.copy()
    else:
        scene = scene or sample_scene(np.random.default_rng([ident.index, 7]), ident.kind)
        bg = render_background(scene, size)
    cv = _Canvas(bg, (-0.35, -0.45, 0.82), 0.5)
    drawable = _MissingSafe(rig)
    _draw_person(cv, drawable, ident, detail=size[0] >= 192)
    image = _finish(cv.img, PoseParams(view="front", family="stand", yaw=0.0))
    return image, kp


class _MissingSafe(_Rig):
    """A rig view whose parts with an unknown (NaN) end point are simply not drawn."""

    def __init__(self, rig: _Rig) -> None:
        self.__dict__.update(rig.__dict__)

    def p(self, name: str) -> np.ndarray:
        v = self.pts[_POINT_INDEX[name]]
        if np.isnan(v).any():
            raise _Skip
        return v


class _Skip(Exception):
    pass


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


def _identity_rng(seed: int, identity: int) -> np.random.Generator:
    return np.random.default_rng([seed, _D_IDENTITY, identity])


def plan_identity(seed: int, kind: str, identity: int, poses: int) -> tuple[Identity, list[tuple[str, str, int]]]:
    """The person and the (file name, view, camera) of each of its ``poses`` images.

    Market names ``0007_c3s1_000123_01.jpg`` (identity, camera, sequence, frame, detection); DeepFashion
    names ``fashionWOMENTees_Tanksid0000000702_1front.jpg`` (gender, category, item id + outfit, index and
    view). Only the identity's own generator is used, so planning is cheap and order independent.
    """
    ident = sample_identity(_identity_rng(seed, identity), kind, index=identity)
    prng = np.random.default_rng([seed, _D_PLAN, identity])
    views = prng.choice(VIEWS, size=poses, p=VIEW_PROBS)
    cams = prng.choice(ident.cameras, size=poses)
    names: list[tuple[str, str, int]] = []
    if kind == "market":
        seqs = {c: int(prng.integers(1, 7)) for c in ident.cameras}
        frames = np.sort(prng.choice(np.arange(1, 1_000_000), size=poses, replace=False))
        for k in range(poses):
            cam = int(cams[k])
            names.append((f"{identity + 1:04d}_c{cam}s{seqs[cam]}_{int(frames[k]):06d}_01.jpg", str(views[k]), cam))
    else:
        stem = f"fashion{ident.gender}{_fashion_category(ident)}id{identity + 1:08d}{ident.outfit:02d}"
        for k in range(poses):
            names.append((f"{stem}_{k + 1}{_FASHION_VIEW_WORDS[str(views[k])]}.jpg", str(views[k]), 0))
    return ident, names


def render_dataset_image(seed: int, kind: str, identity: int, pose_index: int, view: str, camera: int,
                         ident: Identity | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Image ``pose_index`` of ``identity``: depends only on these numbers (not on order or workers)."""
    if ident is None:
        ident = sample_identity(_identity_rng(seed, identity), kind, index=identity)
    rng = np.random.default_rng([seed, _D_POSE, identity, pose_index])
    pose = sample_pose(rng, kind, view=view)
    scene = sample_scene(np.random.default_rng([seed, _D_SCENE, identity, camera]), kind)
    return render_rig(ident, pose, SIZES[kind], scene=scene, background_rng=rng)


def encode_jpeg(image: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _render_identity_job(job: tuple) -> list[tuple[str, np.ndarray]]:
    """Worker: render and write every image of one identity; returns (name, keypoints) in order."""
    seed, kind, identity, poses, folder, quality = job
    ident, plan = plan_identity(seed, kind, identity, poses)
    out = []
    for k, (name, view, camera) in enumerate(plan):
        image, kp = render_dataset_image(seed, kind, identity, k, view, camera, ident=ident)
        with open(os.path.join(folder, name), "wb") as handle:
            handle.write(encode_jpeg(image, quality))
        out.append((name, kp))
    return out


_SYNTH_ENTRIES = {"train", "test", "dataset.json"}


def _is_synth_output(folder: Path) -> bool:
    """A folder written by :func:`generate_dataset` (dataset.json says so) holding nothing else."""
    import json

    meta_path = folder / "dataset.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not (isinstance(meta, dict) and meta.get("synthetic") is True and meta.get("generator") == GENERATOR_TAG):
        return False
    allowed = set(_SYNTH_ENTRIES)
    for prefix in PREFIXES.values():
        allowed |= {f"{prefix}-{what}-{split}.csv" for what in ("annotation", "pairs") for split in ("train", "test")}
    return all(p.name in allowed or p.name.endswith(".tmp") for p in folder.iterdir())


def _check_destination(out: Path, overwrite: bool) -> str:
    """'new' | 'empty' | 'replace'; refuses a non-empty foreign folder unless ``overwrite``."""
    if not out.exists() and not out.is_symlink():
        return "new"
    if not out.is_dir() or out.is_symlink():
        raise DataError(f"{out}: exists and is not a folder; choose another --out")
    if not any(out.iterdir()):
        return "empty"
    if _is_synth_output(out):
        return "replace"
    if not overwrite:
        raise DataError(f"{out}: folder is not empty and is not a synthetic dataset; use --overwrite to replace it")
    resolved = out.resolve()
    cwd = Path.cwd().resolve()
    if resolved == Path(resolved.anchor) or resolved == Path.home().resolve() or resolved in (cwd, *cwd.parents):
        raise DataError(f"{out}: refusing to replace the root, home or current folder (or one containing it)")
    return "replace"


def generate_dataset(out: str | os.PathLike, size: str = "market", identities: int = 20, poses: int = 8,
                     test_identities: int | None = None, seed: int = 0, workers: int = 1, *,
                     overwrite: bool = False, test_pairs: int | None = None,
                     quality: int = JPEG_QUALITY) -> Path:
    """Write a synthetic PATN-layout dataset to ``out`` and return its path.

    ``identities`` people × ``poses`` images each; the last ``test_identities`` people (default ~20%, at
    least 1) form the test split, the others the train split. Pairs are all ordered pairs of two images of
    one person (``prepare.build_pairs``); ``test_pairs`` keeps a seeded sample of the test pairs.
    The same ``seed`` gives byte-identical files whatever ``workers`` is.
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
    try:
        for split in ("train", "test"):
            (tmp / split).mkdir(parents=True)
        jobs = [(seed, kind, i, poses, str(tmp / split_of[i]), quality) for i in range(identities)]
        annotations: dict[str, dict[str, np.ndarray]] = {"train": {}, "test": {}}
        for i, rows in enumerate(_run_jobs(jobs, workers)):
            annotations[split_of[i]].update(rows)
        prefix = PREFIXES[kind]
        pair_counts = {}
        for split in ("train", "test"):
            ann = annotations[split]
            K.write_annotations(tmp / f"{prefix}-annotation-{split}.csv", ann)
            pairs = build_pairs(ann, kind, test_sample=test_pairs if split == "test" else None, seed=seed)
            if not pairs:
                raise DataError(f"{out}: no {split} pairs could be built (no person has two images with both "
                                f"hips and shoulders)")
            K.write_pairs(tmp / f"{prefix}-pairs-{split}.csv", pairs)
            pair_counts[split] = len(pairs)
        h, w = SIZES[kind]
        write_json(tmp / "dataset.json", {
            "kind": kind, "size": [h, w], "synthetic": True, "generator": GENERATOR_TAG,
            "format_version": FORMAT_VERSION, "seed": seed, "identities": identities, "poses": poses,
            "test_identities": test_identities, "train_identities": n_train,
            "images": {s: len(annotations[s]) for s in ("train", "test")}, "pairs": pair_counts,
            "jpeg_quality": quality, "test_pairs": test_pairs,
        })
        _install(tmp, out, state)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("%s: %d train + %d test images, %d + %d pairs", out, len(annotations["train"]),
             len(annotations["test"]), pair_counts["train"], pair_counts["test"])
    return out


def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        try:
            if float(value) != int(value):
                raise ValueError
            value = int(value)
        except (TypeError, ValueError):
            raise DataError(f"{name} must be an integer, got {value!r}") from None
    if value < minimum:
        raise DataError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def _run_jobs(jobs: list[tuple], workers: int):
    """Yield each job's result in job order, in this process or in ``workers`` spawned processes."""
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield _render_identity_job(job)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx) as pool:
        try:
            yield from pool.map(_render_identity_job, jobs, chunksize=max(1, len(jobs) // (8 * workers)))
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _install(tmp: Path, out: Path, state: str) -> None:
    """Move the finished dataset into place: one rename, or two with the old folder set aside."""
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
