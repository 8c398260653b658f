"""3-vectors and 3×3 rotations as plain Python tuples, for the skeleton.

Why not numpy: a skeleton is a few dozen points; on arrays that small numpy's per-call overhead costs
more than the arithmetic, so the kinematics stay in Python floats and only the finished 2-D rig becomes
an array.
"""
from __future__ import annotations

import math
from typing import Sequence

Vec = tuple[float, float, float]
Mat = tuple[Vec, Vec, Vec]


def rotx(a: float) -> Mat:
    """Rotation by ``a`` radians about x (likewise :func:`roty`, :func:`rotz`)."""
    c, s = math.cos(a), math.sin(a)
    return ((1.0, 0.0, 0.0), (0.0, c, -s), (0.0, s, c))


def roty(a: float) -> Mat:
    c, s = math.cos(a), math.sin(a)
    return ((c, 0.0, s), (0.0, 1.0, 0.0), (-s, 0.0, c))


def rotz(a: float) -> Mat:
    c, s = math.cos(a), math.sin(a)
    return ((c, -s, 0.0), (s, c, 0.0), (0.0, 0.0, 1.0))


def mv(m: Mat, v: Sequence[float]) -> Vec:
    """The matrix ``m`` times the vector ``v``."""
    return (m[0][0] * v[0] + m[0][1] * v[1] + m[0][2] * v[2],
            m[1][0] * v[0] + m[1][1] * v[1] + m[1][2] * v[2],
            m[2][0] * v[0] + m[2][1] * v[1] + m[2][2] * v[2])


def mm(a: Mat, b: Mat) -> Mat:
    """The matrix product ``a · b``."""
    return tuple(tuple(a[i][0] * b[0][j] + a[i][1] * b[1][j] + a[i][2] * b[2][j] for j in range(3))
                 for i in range(3))  # type: ignore[return-value]


def add(a: Sequence[float], b: Sequence[float], k: float = 1.0) -> Vec:
    """``a + k · b``."""
    return (a[0] + k * b[0], a[1] + k * b[1], a[2] + k * b[2])


def dot(a: Sequence[float], b: Sequence[float]) -> float:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def normalize(v: Sequence[float]) -> Vec:
    """``v`` scaled to unit length (a near-zero vector is returned as it is)."""
    n = math.sqrt(dot(v, v))
    return (v[0] / n, v[1] / n, v[2] / n) if n > 1e-9 else (v[0], v[1], v[2])


def orthogonal(ref: Vec, d: Vec) -> Vec:
    """The unit component of ``ref`` orthogonal to the unit vector ``d``."""
    return normalize(add(ref, d, -dot(ref, d)))

