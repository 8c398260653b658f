"""Pair generated images with their ground truth by file name.

Two namings are accepted in one folder:

* ``<from>___<to>.png`` — ``posetransfer test`` (full image names including their extension,
  e.g. ``a.jpg___b.jpg.png``); the whole file is the generated image;
* ``<from>___<to>_vis.jpg`` (or ``.png``) — the official PATN/PoNA test output: a horizontal strip of 5
  panels [source | source pose | target | target pose | generated]; the generated image is the last panel
  (Market panels 64 wide, DeepFashion 176).

When both exist for one pair the single image wins (lossless, exact size). Files that do not parse, and
pairs that are not in the test pairs list, are *extra*; test pairs without a file are *missing*. Both are
reported, never silently ignored.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import DataError
from ..io import read_image

SEPARATOR = "___"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
STRIP_PANELS = 5


@dataclass(frozen=True)
class GeneratedFile:
    path: Path
    source: str
    target: str
    layout: str  # "single" or "strip"


@dataclass
class Matching:
    matched: list[GeneratedFile] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    duplicates: int = 0

    def counts(self) -> dict[str, int]:
        layouts = [m.layout for m in self.matched]
        return {"matched": len(self.matched), "missing": len(self.missing), "extra": len(self.extra),
                "single": layouts.count("single"), "strip": layouts.count("strip"),
                "both_layouts_present": self.duplicates}


def parse_name(name: str) -> tuple[str, str, str] | None:
    """``(from, to, layout)`` for a generated file name, or None if it follows neither naming."""
    lower = name.lower()
    if not lower.endswith(IMAGE_SUFFIXES):
        return None
    stem, _ = os.path.splitext(name)
    layout = "single"
    if stem.endswith("_vis"):
        stem, layout = stem[: -len("_vis")], "strip"
    parts = stem.split(SEPARATOR)
    if len(parts) != 2 or not parts[0] or not parts[1]:
        return None
    return parts[0], parts[1], layout


def match_generated(generated_dir: str | os.PathLike, pairs: Iterable[tuple[str, str]]) -> Matching:
    """Match the files of ``generated_dir`` (not recursive) to the test ``pairs`` (in pairs order)."""
    folder = Path(generated_dir)
    if not folder.is_dir():
        raise DataError(f"{folder}: generated image folder not found")
    wanted = list(dict.fromkeys(tuple(p) for p in pairs))
    wanted_set = set(wanted)
    found: dict[tuple[str, str], GeneratedFile] = {}
    result = Matching()
    for entry in sorted(folder.iterdir()):
        if not entry.is_file() or entry.name.startswith("."):
            continue
        parsed = parse_name(entry.name)
        if parsed is None or (parsed[0], parsed[1]) not in wanted_set:
            result.extra.append(entry.name)
            continue
        key = (parsed[0], parsed[1])
        candidate = GeneratedFile(entry, parsed[0], parsed[1], parsed[2])
        if key in found:
            result.duplicates += 1
            if found[key].layout == "single":
                continue
        found[key] = candidate
    for key in wanted:
        if key in found:
            result.matched.append(found[key])
        else:
            result.missing.append(key)
    return result


def load_generated(item: GeneratedFile, panels: int = STRIP_PANELS) -> tuple[np.ndarray, np.ndarray | None]:
    """``(generated, target panel or None)`` of one file; strips are cut into ``panels`` equal panels."""
    image = read_image(item.path)
    if item.layout == "single":
        return image, None
    h, w = image.shape[:2]
    if w % panels:
        raise DataError(f"{item.path}: strip is {w} px wide, not a multiple of {panels} panels")
    pw = w // panels
    return image[:, (panels - 1) * pw:], image[:, 2 * pw:3 * pw]
