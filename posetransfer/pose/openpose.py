"""Keypoint JSON files: OpenPose output (BODY_25 or COCO-18) and our own single-person format.

OpenPose writes ``{"people": [{"pose_keypoints_2d": [x0, y0, c0, x1, y1, c1, ...]}, ...]}`` (older versions:
``pose_keypoints``) with 25 (BODY_25, the default model) or 18 (COCO) joints; a joint not found is
``0, 0, 0``. We keep the person with the largest summed confidence, drop joints whose confidence is below the
threshold, map BODY_25 to COCO-18 (drop MidHip and the feet) and convert ``x, y`` to our ``(y, x)`` ints.

Our format: ``{"format": "posetransfer-keypoints", "keypoints": [[y, x], ...18], "size": [H, W]}`` with
``[-1, -1]`` for missing joints (``size`` optional on reading).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..data.keypoints import MAX_COORDINATE, validate_keypoints
from ..errors import DataError, PoseError
from ..io import atomic_write_text, read_json
from ..kinds import parse_size
from ..skeleton import MISSING, NUM_JOINTS

#: BODY_25 index of each COCO-18 joint (MidHip 8 and the six foot points 19–24 are dropped).
BODY25_TO_COCO18: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)
DEFAULT_CONFIDENCE = 0.1
FORMAT_NAME = "posetransfer-keypoints"


def _person_to_coco18(values: list, where: str, threshold: float) -> tuple[np.ndarray, float]:
    if not isinstance(values, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                               for v in values):
        raise DataError(f"{where}: pose_keypoints_2d must be a list of numbers")
    if len(values) == 25 * 3:
        order = BODY25_TO_COCO18
    elif len(values) == 18 * 3:
        order = tuple(range(18))
    else:
        raise DataError(f"{where}: {len(values)} pose values; expected 75 (BODY_25) or 54 (COCO-18)")
    arr = np.asarray(values, dtype=np.float64).reshape(-1, 3)
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{where}: non-finite keypoint value")
    if np.abs(arr[:, :2]).max(initial=0) > MAX_COORDINATE:
        raise DataError(f"{where}: keypoint coordinate larger than {MAX_COORDINATE}")
    kp = np.full((NUM_JOINTS, 2), MISSING, dtype=np.int64)
    for joint, index in enumerate(order):
        x, y, c = arr[index]
        if c >= threshold and c > 0 and x >= 0 and y >= 0:
            kp[joint] = (int(round(y)), int(round(x)))
    return kp, float(arr[list(order), 2].sum())


def read_keypoints_json(path: str | os.PathLike, size: tuple[int, int] | None = None,
                        confidence: float = DEFAULT_CONFIDENCE) -> np.ndarray:
    """(18, 2) (y, x) keypoints from an OpenPose JSON or our own JSON; ``size`` (H, W) drops outside joints.

    Malformed files raise :class:`DataError` naming the file; an OpenPose file with nobody in it raises
    :class:`PoseError`.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: keypoints file not found")
    doc = read_json(path)
    if not isinstance(doc, dict):
        raise DataError(f"{path}: expected a JSON object")
    where = str(path)
    if "keypoints" in doc:
        kp = np.asarray(doc["keypoints"], dtype=object)
        if kp.shape != (NUM_JOINTS, 2):
            raise DataError(f"{path}: 'keypoints' must be 18 [y, x] pairs, got shape {kp.shape}")
        try:
            kp = validate_keypoints(kp.astype(np.float64), where=where)
        except (TypeError, ValueError):
            raise DataError(f"{path}: 'keypoints' must contain numbers") from None
        if size is None and "size" in doc:
            size = parse_size(doc["size"], where=f"{path}: 'size'", error=DataError)
    elif "people" in doc:
        people = doc["people"]
        if not isinstance(people, list):
            raise DataError(f"{path}: 'people' must be a list")
        best, best_score = None, -1.0
        for i, person in enumerate(people):
            if not isinstance(person, dict):
                raise DataError(f"{path}: people[{i}] is not an object")
            values = person.get("pose_keypoints_2d", person.get("pose_keypoints"))
            if values is None:
                raise DataError(f"{path}: people[{i}] has no pose_keypoints_2d")
            kp_i, score = _person_to_coco18(values, f"{path}: people[{i}]", confidence)
            if score > best_score and (kp_i != MISSING).any():
                best, best_score = kp_i, score
        if best is None:
            raise PoseError(f"{path}: no person in OpenPose JSON")
        kp = best
    else:
        raise DataError(f"{path}: neither an OpenPose file ('people') nor a posetransfer file ('keypoints')")
    if size is not None:
        h, w = size
        outside = (kp[:, 0] >= h) | (kp[:, 1] >= w)
        kp = kp.copy()
        kp[outside] = MISSING
    return kp


def write_keypoints_json(path: str | os.PathLike, keypoints: np.ndarray, size: tuple[int, int] | None = None) -> None:
    """Write our single-person format atomically."""
    kp = validate_keypoints(keypoints, size, where=str(path))
    doc: dict = {"format": FORMAT_NAME, "keypoints": [[int(y), int(x)] for y, x in kp]}
    if size is not None:
        doc["size"] = [int(size[0]), int(size[1])]
    atomic_write_text(path, json.dumps(doc) + "\n")
