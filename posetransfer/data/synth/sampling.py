"""Random numbers for the generator: seeds, independent streams, pre-drawn scalars and random colours.

Why: every random number of an image must come from a generator seeded with ``(seed, identity, pose)``
so that a dataset does not depend on the order or on the number of workers, and sampling a person or a
pose needs many scalars: drawing them one numpy call at a time would cost more than the rendering.
"""
from __future__ import annotations

import bisect
import colorsys
from typing import Sequence

import numpy as np

from ...errors import DataError

Colour = tuple[float, float, float]

# Seed-sequence domains: the identity, pose, scene and naming streams of one seed never share state.
STREAM_IDENTITY, STREAM_POSE, STREAM_SCENE, STREAM_PLAN = 0, 1, 2, 3


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


def as_rng(value) -> np.random.Generator:
    """A numpy Generator from a Generator, :class:`Draws`, an int seed (>= 0), a seed sequence or None."""
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


def draws(value) -> Draws:
    """``value`` itself if it is a :class:`Draws` (the caller's stream continues), else fresh draws from it."""
    if isinstance(value, Draws):
        return value
    return Draws(as_rng(value))


# --------------------------------------------------------------------------------------------------
# Random colours (clothes, scenes)
# --------------------------------------------------------------------------------------------------
_NEUTRALS = ((0.08, 0.08, 0.09), (0.93, 0.93, 0.92), (0.5, 0.5, 0.52), (0.14, 0.17, 0.32),
             (0.25, 0.35, 0.55), (0.75, 0.68, 0.52), (0.35, 0.25, 0.18))


def jitter(d: Draws, colour: Sequence[float], amount: float = 0.04) -> Colour:
    """``colour`` with normal noise on each channel, kept inside (0.02, 0.98)."""
    return tuple(min(0.98, max(0.02, float(c) + d.normal(0.0, amount))) for c in colour)  # type: ignore


def random_colour(d: Draws) -> Colour:
    """A plausible fabric colour: a neutral 35% of the time, otherwise a muted or vivid hue."""
    if d.random() < 0.35:
        return jitter(d, d.choice(_NEUTRALS), 0.03)
    h = d.random()
    s = d.uniform(0.15, 0.45) if d.random() < 0.5 else d.uniform(0.5, 0.9)
    return tuple(float(c) for c in colorsys.hsv_to_rgb(h, s, d.uniform(0.25, 0.95)))  # type: ignore


def contrasting(d: Draws, colour: Colour) -> Colour:
    """A second colour clearly different from ``colour`` (patterns must be visible)."""
    for _ in range(20):
        c = random_colour(d)
        if sum(abs(a - b) for a, b in zip(c, colour)) > 0.6:
            return c
    return tuple(1.0 - v for v in colour)  # type: ignore[return-value]
