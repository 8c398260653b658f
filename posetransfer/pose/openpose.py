"""Keypoint JSON files: OpenPose output (BODY_25 or COCO-18) and our own single-person pose file.

OpenPose writes ``{"people": [{"pose_keypoints_2d": [x0, y0, c0, x1, y1, c1, ...]}, ...]}`` (older versions:
``pose_keypoints``) with 25 (BODY_25, the default model) or 18 (COCO) joints; a joint not found is
``0, 0, 0``. We keep the person with the largest summed confidence, drop joints whose confidence is below the
threshold, map BODY_25 to COCO-18 (drop MidHip and the feet) and convert ``x, y`` to our ``(y, x)`` ints.

Our pose file (specified in ``docs/pose-format.md``; the one format every command writes and reads)::

    {"format": "posetransfer-keypoints", "version": 1, "size": [H, W], "keypoints": [[y, x], ... 18]}

COCO-18 joint order, integer pixels, ``[-1, -1]`` for a missing joint, ``size`` the frame the keypoints are
in. Any other key is allowed and ignored by readers (``transfer``'s sidecar carries its crop box and the
source keypoints that way). On reading, ``format``, ``version`` and ``size`` are optional (files written
before the version field), a ``format`` other than ours or a newer ``version`` is refused with a message.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

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
#: version of our pose file this code writes; readers accept this one and older ones
FORMAT_VERSION = 1
#: keys of our pose file that ``extra`` fields may not replace
_RESERVED = ("format", "version", "size", "keypoints")


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


def _check_format(doc: dict, path: Path) -> None:
    name, version = doc.get("format", FORMAT_NAME), doc.get("version", 1)
    if name != FORMAT_NAME:
        raise DataError(f"{path}: 'format' is {name!r}, expected {FORMAT_NAME!r}")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise DataError(f"{path}: 'version' must be a positive integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise DataError(f"{path}: pose file version {version} is newer than this posetransfer reads "
                        f"(up to {FORMAT_VERSION}); upgrade posetransfer")


def read_pose_json(path: str | os.PathLike, confidence: float = DEFAULT_CONFIDENCE,
                   ) -> tuple[np.ndarray, tuple[int, int] | None]:
    """(keypoints (18, 2) (y, x), the frame (H, W) they are in or None) of an OpenPose JSON or our pose file.

    Joints outside the file's own frame are missing (-1). Malformed files raise :class:`DataError` naming the file; an OpenPose file with nobody in it raises
    :class:`PoseError`. OpenPose files carry no frame (None).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: keypoints file not found")
    doc = read_json(path)
    if not isinstance(doc, dict):
        raise DataError(f"{path}: expected a JSON object")
    where = str(path)
    size = None
    if "keypoints" in doc:
        _check_format(doc, path)
        kp = np.asarray(doc["keypoints"], dtype=object)
        if kp.shape != (NUM_JOINTS, 2):
            raise DataError(f"{path}: 'keypoints' must be 18 [y, x] pairs, got shape {kp.shape}")
        try:
            kp = validate_keypoints(kp.astype(np.float64), where=where)
        except (TypeError, ValueError):
            raise DataError(f"{path}: 'keypoints' must contain numbers") from None
        if "size" in doc:
            size = parse_size(doc["size"], where=f"{path}: 'size'", error=DataError)
            if size is None:
                raise DataError(f"{path}: 'size' must be [H, W] positive integers, got null")
            kp = _drop_outside(kp, size)
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
        raise DataError(f"{path}: neither an OpenPose file ('people') nor a posetransfer pose file ('keypoints'); "
                        f"see docs/pose-format.md")
    return kp, size


def read_keypoints_json(path: str | os.PathLike, size: tuple[int, int] | None = None,
                        confidence: float = DEFAULT_CONFIDENCE) -> np.ndarray:
    """(18, 2) (y, x) keypoints of :func:`read_pose_json`; joints outside ``size`` (H, W; default the file's
    own frame) are dropped (-1)."""
    kp, _ = read_pose_json(path, confidence)
    return kp if size is None else _drop_outside(kp, size)


def _drop_outside(kp: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    out = kp.copy()
    out[(out[:, 0] >= h) | (out[:, 1] >= w)] = MISSING
    return out


def pose_document(keypoints: np.ndarray, size: tuple[int, int] | None, where: str = "keypoints",
                  extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Our pose file as a dict (``extra`` keys after the format's own; they may not replace them)."""
    kp = validate_keypoints(keypoints, size, where=where)
    doc: dict[str, Any] = {"format": FORMAT_NAME, "version": FORMAT_VERSION}
    if size is not None:
        doc["size"] = [int(size[0]), int(size[1])]
    doc["keypoints"] = [[int(y), int(x)] for y, x in kp]
    for key, value in (extra or {}).items():
        if key in _RESERVED:
            raise ValueError(f"pose file field {key!r} is reserved")
        doc[key] = value
    return doc


def write_keypoints_json(path: str | os.PathLike, keypoints: np.ndarray, size: tuple[int, int] | None = None,
                         extra: Mapping[str, Any] | None = None) -> None:
    """Write our pose file atomically (``extra``: further fields, e.g. ``transfer``'s crop box), one field per
    line so that the 18 joints stay on one line of their own."""
    doc = pose_document(keypoints, size, str(path), extra)
    fields = [f"  {json.dumps(key)}: {json.dumps(value, default=_plain)}" for key, value in doc.items()]
    atomic_write_text(path, "{\n" + ",\n".join(fields) + "\n}\n")


def _plain(value: Any) -> Any:
    """numpy arrays and scalars in ``extra`` as JSON lists and numbers."""
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
