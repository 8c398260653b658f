"""The two dataset kinds the generator writes and their frame sizes.

Why a module of its own: every layer (appearance, poses, scenes, the writer) checks the kind it is given,
and the renderer also accepts a free (H, W) size; one place turns both into (kind, (H, W)).
"""
from __future__ import annotations

from ...errors import DataError
from .. import keypoints as K

KINDS = ("market", "fashion")
SIZES: dict[str, tuple[int, int]] = {"market": K.MARKET_SIZE, "fashion": K.FASHION_SIZE}


def check_kind(kind: str) -> str:
    """``kind`` normalised to market | fashion (``deepfashion`` and the dataset's ``fasion`` spelling too)."""
    k = str(kind).strip().lower()
    if k in ("deepfashion", "fasion"):
        k = "fashion"
    if k not in KINDS:
        raise DataError(f"unknown synthetic dataset size {kind!r} (market or fashion)")
    return k


def resolve_size(size) -> tuple[str, tuple[int, int]]:
    """(kind, (H, W)) of a kind name or of an (H, W) pair (192 rows or more: people sampled as for fashion)."""
    if isinstance(size, str):
        kind = check_kind(size)
        return kind, SIZES[kind]
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise DataError(f"size must be 'market', 'fashion' or (H, W), got {size!r}") from None
    if h < 32 or w < 16:
        raise DataError(f"size must be at least 32x16, got {h}x{w}")
    return ("fashion" if h >= 192 else "market"), (h, w)
