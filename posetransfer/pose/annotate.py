"""Keypoints of many images → one PATN annotation CSV (``posetransfer keypoints``).

Inputs are image files, folders of images, or OpenPose/posetransfer JSON files (an OpenPose file
``<stem>_keypoints.json`` names the image ``<stem><image_ext>``). Every input gets a row; an image where no
person is found gets an all ``-1`` row (the PATN convention for "no pose") and is listed in the report —
never dropped silently. ``skip_missing=True`` leaves such rows out instead.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from ..data.keypoints import write_annotations
from ..errors import DataError, PoseError
from ..io import read_image
from ..skeleton import MISSING, NUM_JOINTS

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass
class AnnotationReport:
    rows: int = 0
    no_person: list[tuple[str, str]] = field(default_factory=list)  # (name, one-line reason)
    skipped: int = 0


def collect_inputs(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given plus the images/JSON files of given folders (sorted); unknown paths are a DataError."""
    files: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(f for f in p.iterdir()
                           if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES + (".json",))
            if not found:
                raise DataError(f"{p}: no images or keypoint JSON files in this folder")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise DataError(f"{p}: no such file or folder")
    if not files:
        raise DataError("no input images given")
    return files


def image_name_for(path: Path, image_ext: str) -> str:
    """CSV name of an input: the image file name, or for JSON ``<stem>_keypoints.json`` → ``<stem><ext>``."""
    if path.suffix.lower() != ".json":
        return path.name
    stem = path.stem[: -len("_keypoints")] if path.stem.endswith("_keypoints") else path.stem
    return stem + (image_ext if image_ext.startswith(".") else "." + image_ext)


def annotate(paths: Iterable[str | os.PathLike], out_csv: str | os.PathLike, *, skip_missing: bool = False,
             image_ext: str = ".jpg", estimator: Callable[[np.ndarray], np.ndarray] | None = None,
             json_confidence: float = 0.1, progress: bool = False) -> AnnotationReport:
    """Estimate (or read) keypoints for every input and write ``out_csv``; returns what happened."""
    from .openpose import read_keypoints_json

    if estimator is None:
        from .blazepose import estimate

        def run(image: np.ndarray, path: Path) -> np.ndarray:
            return estimate(image, where=str(path))
    else:
        def run(image: np.ndarray, path: Path) -> np.ndarray:
            return estimator(image)
    files = collect_inputs(paths)
    rows: dict[str, np.ndarray] = {}
    origin: dict[str, Path] = {}
    report = AnnotationReport()
    iterator = files
    if progress:
        from tqdm import tqdm

        iterator = tqdm(files, desc="keypoints", unit="img", disable=None)  # off when not a terminal
    for path in iterator:
        name = image_name_for(path, image_ext)
        if name in rows:
            raise DataError(f"{path}: image name {name!r} already used by {origin[name]}")
        try:
            if path.suffix.lower() == ".json":
                kp = read_keypoints_json(path, confidence=json_confidence)
            else:
                image = read_image(path)
                kp = np.asarray(run(image, path))
                h, w = image.shape[:2]
                outside = (kp[:, 0] >= h) | (kp[:, 1] >= w)
                kp = kp.copy()
                kp[outside] = MISSING
        except PoseError as exc:
            reason = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
            report.no_person.append((name, reason))
            log.warning("%s", reason)
            if skip_missing:
                report.skipped += 1
                continue
            kp = np.full((NUM_JOINTS, 2), MISSING, dtype=np.int64)
        rows[name] = kp
        origin[name] = path
    if not rows:
        raise DataError(f"{out_csv}: nothing to write — no person found in any of the {len(files)} inputs")
    write_annotations(out_csv, rows)
    report.rows = len(rows)
    return report
