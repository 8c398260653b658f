"""Keypoints given by a user — a JSON file, a PATN annotation CSV row, or a photo (pose estimator) — and
the way a photo and a pose are brought into a model's frame (the person crop of :mod:`.crop`).

A :class:`Pose` carries the frame (H, W) its keypoints are in, when known, so the consumers can tell a
pose already in a model's frame (rescaled) from one in a photo (cropped around the person).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ..data import keypoints as K
from ..data.layout import IMAGE_SUFFIXES, read_dataset_json
from ..errors import DataError, PoseError, PosetransferError
from ..io import read_image
from ..kinds import parse_size
from . import crop as C

CropMode = Literal["auto", "keypoints", "none"]


@dataclass
class Pose:
    """Keypoints and the size (H, W) of the frame they are given in (None = unknown: crop around them)."""

    keypoints: np.ndarray
    frame: tuple[int, int] | None = None
    where: str = "pose"


def image_size(image: np.ndarray) -> tuple[int, int]:
    """(H, W) of an H×W(×C) image array (``shape[:2]``, typed as a pair)."""
    return int(image.shape[0]), int(image.shape[1])


def read_pose_file(path: str | os.PathLike) -> Pose:
    """A keypoints JSON file: OpenPose BODY_25 / COCO-18, or our ``{"keypoints": [[y, x]...], "size": [H, W]}``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: keypoints file not found")
    from ..pose.openpose import read_keypoints_json

    kp = read_keypoints_json(path)
    frame = None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and isinstance(data.get("size"), (list, tuple)) and len(data["size"]) == 2:
            frame = (int(data["size"][0]), int(data["size"][1]))
    except (ValueError, TypeError, OSError):
        frame = None
    return Pose(K.validate_keypoints(kp, where=str(path)), frame, str(path))


def pose_from_csv(csv_path: str | os.PathLike, name: str, frame: tuple[int, int] | None = None) -> Pose:
    """Keypoints of image ``name`` in a PATN annotation CSV (in the frame of that dataset's images)."""
    annotations = K.read_annotations(csv_path)
    if name not in annotations:
        raise DataError(f"{csv_path}: no row for image {name!r}")
    if frame is None:  # the CSV of a dataset root: its images' size, when dataset.json says it
        try:
            frame = parse_size(read_dataset_json(Path(csv_path).parent).get("size"), multiple=4)
        except (PosetransferError, TypeError, ValueError):
            frame = None
    return Pose(annotations[name], frame, f"{csv_path} ({name})")


def estimate_pose(image: np.ndarray, where: str) -> Pose:
    """Keypoints of the person in ``image`` with the pose estimator; errors name ``where``."""
    from ..pose import estimate_keypoints  # mediapipe itself is imported (and its absence reported) there

    try:
        kp = estimate_keypoints(image)
    except PoseError as exc:
        message = str(exc)
        raise PoseError(message if where in message else f"{where}: {message}") from None
    kp = K.validate_keypoints(kp, where=where)
    if int((~K.missing_mask(kp)).sum()) < C.MIN_JOINTS:
        raise PoseError(f"{where}: no person found")
    return Pose(kp, image_size(image), where)


def load_pose(spec: str | os.PathLike) -> Pose:
    """A target pose given as a JSON file or as a photo (pose estimated)."""
    path = Path(spec)
    if path.suffix.lower() == ".json":
        return read_pose_file(path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return estimate_pose(read_image(path), str(path))
    raise DataError(f"{path}: expected a keypoints .json file or an image")


def source_pose_for(image_path: Path, source_pose: Path | None, photo: np.ndarray) -> Pose:
    """The source keypoints: estimated from the photo, or read from a JSON file / ``<dir>/<stem>.json``."""
    if source_pose is None:
        return estimate_pose(photo, str(image_path))
    if source_pose.is_dir():
        candidate = source_pose / f"{image_path.stem}.json"
        if not candidate.is_file():
            raise DataError(f"{image_path}: no keypoints file {candidate}")
        return read_pose_file(candidate)
    return read_pose_file(source_pose)


# --------------------------------------------------------------------------------------------------
# Into the model frame
# --------------------------------------------------------------------------------------------------
@dataclass
class Prepared:
    """A photo brought into the model frame: the crop, its keypoints, and how to go back."""

    image: np.ndarray            # model-frame uint8
    keypoints: np.ndarray        # model-frame keypoints
    box: C.CropBox               # in photo pixels
    photo: np.ndarray            # the original photo


def _use_identity(frame: tuple[int, int] | None, size: tuple[int, int], crop: CropMode) -> bool:
    return crop == "none" or (crop == "auto" and frame is not None and tuple(frame) == tuple(size))


def prepare_source(photo: np.ndarray, pose: Pose, size: tuple[int, int], crop: CropMode = "auto",
                   pad: C.PadMode = "edge") -> Prepared:
    """Crop the person out of ``photo`` (box from its keypoints) and resize to the model frame ``size``.

    ``crop="auto"`` leaves photos that already have the frame's size alone (dataset images).
    """
    if _use_identity(image_size(photo), size, crop):
        box = C.CropBox.full(image_size(photo))
    else:
        box = C.box_from_keypoints(pose.keypoints, size, where=pose.where, photo_size=image_size(photo))
    image = C.crop_image(photo, box, size, pad, where=pose.where)
    return Prepared(image, C.keypoints_to_model(pose.keypoints, box, size), box, photo)


def target_to_model(pose: Pose, size: tuple[int, int], crop: CropMode = "auto") -> np.ndarray:
    """Target keypoints in the model frame: rescaled when given in a frame of the model's size/shape,
    else cropped around the person like a source photo so both people have the same framing."""
    if _use_identity(pose.frame, size, crop):
        frame = pose.frame or size
        return K.rescale_keypoints(K.validate_keypoints(pose.keypoints, frame, where=pose.where), frame, size)
    box = C.box_from_keypoints(pose.keypoints, size, where=pose.where)
    return C.keypoints_to_model(pose.keypoints, box, size)
