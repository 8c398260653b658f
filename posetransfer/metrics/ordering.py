"""Which images the official scripts used, and in which order — for exact reproduction only.

* GFLA's ``script/metrics.py`` runs FID and LPIPS in batches of 64 and never processes the last partial batch
  (``n_batches = n // 64``; all images when there are fewer than 64). Which images fall off depends on the
  order: FID reads each folder as ``glob('*.jpg') + glob('*.png')`` (directory order within each suffix),
  LPIPS reads the generated files sorted by name.
* PATN's ``getMetrics_*.py`` loads the generated strips in ``os.listdir`` order, and the Inception Score splits
  the images into 10 consecutive parts in that order.

Directory order is what the file system returns (``os.scandir``), as the scripts saw it on their machine.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from .protocols import GFLA_BATCH


def gfla_used_count(n: int, batch: int = GFLA_BATCH) -> int:
    """How many of ``n`` images GFLA's batching processes: whole batches only, or all when ``n < batch``."""
    return n if n < batch else (n // batch) * batch


def listdir_positions(folder: str | os.PathLike) -> dict[str, int]:
    """File name → position in ``os.listdir(folder)``."""
    return {name: i for i, name in enumerate(os.listdir(folder))}


def gfla_glob_order(files: Sequence[Path]) -> list[Path]:
    """``files`` (of one folder) in the order of ``glob('*.jpg') + glob('*.png')``; other suffixes after them.

    ``glob`` matches case-sensitively and lists in directory order, like the script on Linux.
    """
    if not files:
        return []
    positions = listdir_positions(Path(files[0]).parent)

    def key(path: Path) -> tuple[int, int]:
        suffix = 0 if path.name.endswith(".jpg") else 1 if path.name.endswith(".png") else 2
        return suffix, positions.get(path.name, len(positions))

    return sorted(files, key=key)


def gfla_fid_kept(files: Sequence[Path], batch: int = GFLA_BATCH) -> list[Path]:
    """The files of one folder that GFLA's FID uses (glob order, last partial batch dropped)."""
    ordered = gfla_glob_order(files)
    return ordered[:gfla_used_count(len(ordered), batch)]


def gfla_lpips_kept(files: Sequence[Path], batch: int = GFLA_BATCH) -> list[Path]:
    """The generated files that GFLA's LPIPS uses (sorted by name, last partial batch dropped)."""
    ordered = sorted(files, key=lambda p: str(p))
    return ordered[:gfla_used_count(len(ordered), batch)]
