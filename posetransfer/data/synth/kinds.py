"""Which dataset kind the generator renders for a kind name or a free (H, W) size.

Why a module of its own: every layer (appearance, poses, scenes, the writer) checks the kind it is given,
and the renderer also accepts a free (H, W) size; one place turns both into (kind, (H, W)). The kinds
themselves (names, aliases, frame sizes, CSV prefixes) are :mod:`posetransfer.kinds`'.
"""
from __future__ import annotations

from typing import Any

from ...errors import DataError
from ...kinds import KIND_NAMES, parse_kind, parse_size

KINDS = KIND_NAMES
#: free sizes of this many rows or more are sampled as DeepFashion people (full-body studio shots)
FASHION_MIN_ROWS = 192


def check_kind(kind: str) -> str:
    """``kind`` normalised to market | fashion (any spelling :func:`posetransfer.kinds.parse_kind` accepts)."""
    return parse_kind(kind, what="synthetic dataset size").name


def resolve_size(size: Any) -> tuple[str, tuple[int, int]]:
    """(kind, (H, W)) of a kind name or of an (H, W) pair (192 rows or more: people sampled as for fashion)."""
    if isinstance(size, str):
        kind = parse_kind(size, what="synthetic dataset size")
        return kind.name, kind.size
    h, w = parse_size(size, where="synthetic image size", error=DataError, minimum=(32, 16))
    return ("fashion" if h >= FASHION_MIN_ROWS else "market"), (h, w)
