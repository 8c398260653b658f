"""Keypoints of many images → one PATN annotation CSV, or pose files (``posetransfer keypoints``).

Inputs are image files, folders of images, or OpenPose/posetransfer JSON files (an OpenPose file
``<stem>_keypoints.json`` names the image ``<stem><image_ext>``). In a CSV every input gets a row; an image
where no person is found gets an all ``-1`` row (the PATN convention for "no pose") and is listed in the
report — never dropped silently. ``skip_missing=True`` leaves such rows out instead. Pose files
(docs/pose-format.md) are what ``transfer --target`` / ``--source-pose``, ``animate --poses`` and the web
demo read; an input without a person gets none (and is listed).
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
    return _pose_stem(path) + (image_ext if image_ext.startswith(".") else "." + image_ext)


def output_kind(out: str | os.PathLike) -> str:
    """``csv`` (a PATN annotation CSV), ``json`` (one pose file) or ``folder`` (one pose file per input)."""
    path = Path(out)
    suffix = path.suffix.lower()
    if suffix in (".csv", ".json"):
        return suffix[1:]
    if path.is_dir() or not suffix or str(out).endswith(os.sep):
        return "folder"
    raise DataError(f"{out}: --out must be a .csv file, a .json file or a folder")


def annotate(paths: Iterable[str | os.PathLike], out: str | os.PathLike, *, skip_missing: bool = False,
             image_ext: str = ".jpg", estimator: Callable[[np.ndarray], np.ndarray] | None = None,
             json_confidence: float = 0.1, progress: bool = False) -> AnnotationReport:
    """Estimate (or read) keypoints for every input and write ``out``; returns what happened.

    ``out`` (see :func:`output_kind`): a ``.csv`` gets one row per input (all -1 where no person is found,
    unless ``skip_missing``); a ``.json`` (one input) or a folder (``<image stem>.json`` per input) gets pose
    files (docs/pose-format.md) in the frame of each image — an input without a person gets no file.
    """
    from .openpose import read_pose_json

    kind = output_kind(out)
    files = collect_inputs(paths)
    if kind == "json" and len(files) != 1:
        raise DataError(f"{out}: one .json file holds one pose, but {len(files)} inputs were given "
                        f"(use a folder or a .csv)")
    if kind != "csv":
        skip_missing = True      # a pose file of all -1 joints would be a pose of nobody
        _check_stems(files, out)
    if estimator is None:
        from .blazepose import estimate, require_mediapipe

        if any(path.suffix.lower() != ".json" for path in files):
            require_mediapipe()    # before any work: never a file of all -1 rows for a missing package

        def run(image: np.ndarray, path: Path) -> np.ndarray:
            return estimate(image, where=str(path))
    else:
        def run(image: np.ndarray, path: Path) -> np.ndarray:
            return estimator(image)
    rows: dict[str, np.ndarray] = {}
    frames: dict[str, tuple[int, int] | None] = {}
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
        frame = None
        try:
            if path.suffix.lower() == ".json":
                kp, frame = read_pose_json(path, confidence=json_confidence)
            else:
                image = read_image(path)
                frame = image.shape[:2]
                kp = np.asarray(run(image, path))
                h, w = frame
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
        frames[name] = frame
        origin[name] = path
    if not rows:
        raise DataError(f"{out}: nothing to write — no person found in any of the {len(files)} inputs")
    _write(kind, Path(out), rows, frames, origin)
    report.rows = len(rows)
    return report


def _check_stems(files: list[Path], out: str | os.PathLike) -> None:
    """Pose files are named after the image stem: two inputs must not claim the same file."""
    seen: dict[str, Path] = {}
    for path in files:
        stem = _pose_stem(path)
        if stem in seen:
            raise DataError(f"{path}: its pose file {stem}.json in {out} would replace that of {seen[stem]}")
        seen[stem] = path


def _pose_stem(path: Path) -> str:
    return path.stem[: -len("_keypoints")] if path.suffix.lower() == ".json" and path.stem.endswith("_keypoints") \
        else path.stem


def _write(kind: str, out: Path, rows: dict[str, np.ndarray], frames: dict[str, tuple[int, int] | None],
           origin: dict[str, Path]) -> None:
    from .openpose import write_keypoints_json

    if kind == "csv":
        write_annotations(out, rows)
        return
    for name, kp in rows.items():
        target = out if kind == "json" else out / f"{_pose_stem(origin[name])}.json"
        write_keypoints_json(target, kp, frames[name], extra={"image": name})
