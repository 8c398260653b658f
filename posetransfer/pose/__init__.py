"""Pose estimation and keypoint files, all in the 18-point OpenPose/COCO order, (y, x), -1 missing.

* :func:`estimate_keypoints` — BlazePose (MediaPipe, offline) on one image; raises :class:`PoseError`
  ``"<file>: no person found"`` when nobody is detected.
* :func:`read_keypoints_json` / :func:`write_keypoints_json` — OpenPose BODY_25 / COCO-18 output and our own
  single-person JSON.
* :func:`annotate` — keypoints of many images (and/or JSON files) into a PATN annotation CSV
  (the ``posetransfer keypoints`` command).

Note for PCKh: the benchmarks' keypoints and the published PCKh come from the CMU OpenPose model; ours from
BlazePose, whose joints sit at slightly different places (no native neck, higher hips), so PCKh measured
here is not directly comparable to the papers'.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import PoseError
from .annotate import AnnotationReport, annotate
from .blazepose import DEFAULT_VISIBILITY, estimate
from .openpose import read_keypoints_json, write_keypoints_json

__all__ = [
    "AnnotationReport", "PoseError", "annotate", "estimate_keypoints", "estimator_description",
    "read_keypoints_json", "write_keypoints_json",
]


def estimate_keypoints(image: np.ndarray | str | os.PathLike,
                       visibility_threshold: float = DEFAULT_VISIBILITY) -> np.ndarray:
    """(18, 2) int64 (y, x) keypoints of the person in ``image`` (uint8 RGB H×W×3, or an image file path).

    Joints below ``visibility_threshold`` or outside the image are -1. Raises :class:`PoseError` when no
    person is found (the message names the file when a path is given).
    """
    if isinstance(image, (str, os.PathLike)):
        from ..io import read_image

        path = Path(image)
        return estimate(read_image(path), visibility_threshold, where=str(path))
    return estimate(image, visibility_threshold)


def estimator_description() -> dict[str, str]:
    """What produced the keypoints (recorded in evaluation results next to PCKh)."""
    try:
        from importlib.metadata import version

        mp_version = version("mediapipe")
    except Exception:  # noqa: BLE001 - metadata missing just leaves the version out
        mp_version = "unknown"
    return {
        "network": f"BlazePose full (mediapipe {mp_version}, pose_landmark_full.tflite) mapped to COCO-18",
        "kind": "package",
        "note": "papers used CMU OpenPose (Keras); PCKh values are not directly comparable",
    }
