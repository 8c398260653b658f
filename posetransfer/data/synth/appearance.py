"""Who a synthetic person is: skin, hair, body proportions and clothes, fixed across all their poses.

Why a layer of its own: a pose-transfer dataset needs the same person in many poses, so everything that
must not change from one image of a person to the next is drawn once, from the identity's own stream.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .kinds import check_kind
from .sampling import Colour, Draws, contrasting, draws, jitter, random_colour


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


_SKIN = ((0.97, 0.82, 0.71), (0.93, 0.74, 0.60), (0.87, 0.66, 0.51), (0.78, 0.57, 0.42),
         (0.66, 0.46, 0.32), (0.51, 0.35, 0.24), (0.38, 0.26, 0.18))
_HAIR = ((0.07, 0.06, 0.05), (0.16, 0.11, 0.08), (0.32, 0.2, 0.11), (0.5, 0.34, 0.18),
         (0.78, 0.63, 0.38), (0.55, 0.22, 0.1), (0.62, 0.6, 0.58))
_TROUSERS = ((0.17, 0.25, 0.42), (0.28, 0.38, 0.56), (0.08, 0.08, 0.09), (0.35, 0.35, 0.37),
             (0.66, 0.6, 0.45), (0.14, 0.16, 0.28), (0.3, 0.27, 0.2))
_SHOES = ((0.06, 0.06, 0.06), (0.92, 0.92, 0.9), (0.35, 0.22, 0.13), (0.55, 0.55, 0.57), (0.6, 0.1, 0.1))


def _garment(d: Draws, colour: Colour, patterns: Sequence[str], probs: Sequence[float]) -> Garment:
    """A garment of ``colour`` with a contrasting second colour and one of ``patterns``."""
    return Garment(colour=colour, colour2=contrasting(d, colour), pattern=d.choice(patterns, probs),
                   period=d.uniform(0.035, 0.075), around=d.integers(6, 14))


def sample_identity(rng: np.random.Generator | int | Draws, kind: str = "market", index: int = 0) -> Identity:
    """A random person (appearance and body proportions) for ``kind`` = market | fashion."""
    d = draws(rng)
    kind = check_kind(kind)
    women = d.random() < (0.65 if kind == "fashion" else 0.5)
    skin = jitter(d, d.choice(_SKIN), 0.025)
    hair = jitter(d, d.choice(_HAIR), 0.02)
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
    top = _garment(d, random_colour(d), ("solid", "hstripes", "vstripes", "checks", "dots", "colorblock"),
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
        base = jitter(d, d.choice(_TROUSERS), 0.03) if d.random() < 0.7 else random_colour(d)
        bottom = _garment(d, base, ("solid", "checks", "hstripes", "vstripes"), (0.82, 0.08, 0.04, 0.06))
    tucked = (top_kind == "shirt" and d.random() < 0.6 or d.random() < 0.15) and bottom_kind != "dress"
    shoes = jitter(d, d.choice(_SHOES), 0.03) if d.random() < 0.85 else random_colour(d)
    n_cams = d.integers(2, 5)
    return Identity(
        index=int(index), kind=kind, gender="WOMEN" if women else "MEN", skin=skin, hair=hair, hair_style=style,
        hairline_front=front, hairline_back=back,
        hair_length=d.uniform(0.13, 0.24) if style == "long" else 0.0,
        head=d.uniform(0.06, 0.068),
        shoulder=d.uniform(0.088, 0.102) if women else d.uniform(0.102, 0.118),
        hip=d.uniform(0.075, 0.085) if women else d.uniform(0.066, 0.076),
        chest_depth=d.uniform(0.055, 0.07), limb=d.uniform(0.88, 1.15), leg=d.uniform(0.95, 1.05),
        top_kind=top_kind, top=top, inner=contrasting(d, top.colour), neckline=neckline, sleeve=sleeve,
        logo=logo, logo_colour=contrasting(d, top.colour),
        back_print=d.choice(("none", "band", "block"), (0.6, 0.2, 0.2)), tucked=tucked,
        bottom_kind=bottom_kind, bottom=bottom,
        leg_cover={"trousers": d.uniform(0.9, 1.0), "shorts": d.uniform(0.28, 0.42)}.get(bottom_kind, 0.0),
        skirt_length=d.uniform(0.16, 0.36) if bottom_kind in ("skirt", "dress") else 0.0,
        belt=jitter(d, _SHOES[d.integers(0, 3)], 0.03) if tucked and d.random() < 0.6 else None,
        shoes=shoes,
        soles=(0.9, 0.9, 0.88) if d.random() < 0.4 else (0.6 * shoes[0], 0.6 * shoes[1], 0.6 * shoes[2]),
        backpack=random_colour(d) if kind == "market" and d.random() < 0.25 else None,
        cameras=tuple(sorted(d.sample(range(1, 7), n_cams))), outfit=d.integers(1, 6),
    )
