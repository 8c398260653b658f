"""BlazePose (MediaPipe 0.10.21) → the 18 OpenPose/COCO keypoints used everywhere in posetransfer.

Why BlazePose: its models ship inside the mediapipe wheel (``pose_detection.tflite`` +
``pose_landmark_full.tflite``), so pose estimation works offline on CPU; the CMU OpenPose model the
benchmarks' CSVs were made with is not pip-installable. The two skeletons differ (BlazePose has no neck and
its hip points sit higher), so keypoints and PCKh from this estimator are close to, but not the same as,
OpenPose's.

Mapping (BlazePose index → COCO-18): nose 0→0, neck = midpoint of the shoulders (both needed),
shoulders/elbows/wrists 12,14,16 → 2,3,4 (right) and 11,13,15 → 5,6,7 (left), hips/knees/ankles
24,26,28 → 8,9,10 and 23,25,27 → 11,12,13, eyes 5→14 (right), 2→15 (left), ears 8→16, 7→17.
"Right" is the person's right in both. A landmark is missing (-1) when its visibility is below the threshold
or it falls outside the image.
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading

import numpy as np

from ..errors import PoseError
from ..skeleton import MISSING, NUM_JOINTS

#: COCO-18 index → BlazePose landmark index (None = neck, computed from the shoulders).
BLAZEPOSE_TO_COCO18: tuple[int | None, ...] = (
    0, None, 12, 14, 16, 11, 13, 15, 24, 26, 28, 23, 25, 27, 5, 2, 8, 7,
)
DEFAULT_VISIBILITY = 0.5
DEFAULT_DETECTION_CONFIDENCE = 0.5

_lock = threading.Lock()
_estimators: dict[tuple[float, int], object] = {}
_warmed_up: set[tuple[float, int]] = set()


@contextlib.contextmanager
def _quiet_native_stderr():
    """Silence the C++ log lines MediaPipe/TFLite print on first use (XNNPACK, absl, projection warnings).

    They go straight to file descriptor 2, so Python-level redirection cannot catch them. Only used
    around graph creation and the first inference; Python exceptions are unaffected.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _mediapipe_pose(min_detection_confidence: float):
    """One cached ``mediapipe.solutions.pose.Pose`` per setting (creating one loads two TFLite graphs).

    ``model_complexity=1`` because that model (``pose_landmark_full``) is the one shipped in the wheel;
    0 and 2 would be downloaded at run time.
    """
    key = (float(min_detection_confidence), 1)
    with _lock:
        if key not in _estimators:
            os.environ.setdefault("GLOG_minloglevel", "2")  # silence MediaPipe's C++ INFO lines
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
            try:
                import mediapipe as mp
            except ImportError as exc:
                raise PoseError(f"pose estimation needs mediapipe==0.10.21 (pip install mediapipe): {exc}") from None
            with _quiet_native_stderr():
                _estimators[key] = mp.solutions.pose.Pose(
                    static_image_mode=True, model_complexity=1, enable_segmentation=False,
                    min_detection_confidence=min_detection_confidence,
                )
        return _estimators[key], key


def landmarks_to_coco18(xy: np.ndarray, visibility: np.ndarray, size: tuple[int, int],
                        threshold: float = DEFAULT_VISIBILITY) -> np.ndarray:
    """33 BlazePose landmarks in pixels (x, y) + visibilities → (18, 2) int (y, x), -1 missing."""
    h, w = size
    out = np.full((NUM_JOINTS, 2), MISSING, dtype=np.int64)

    def point(index: int) -> tuple[float, float] | None:
        if visibility[index] < threshold:
            return None
        x, y = float(xy[index, 0]), float(xy[index, 1])
        if not (0 <= round(x) < w and 0 <= round(y) < h):
            return None
        return y, x

    for joint, index in enumerate(BLAZEPOSE_TO_COCO18):
        if index is None:
            left, right = point(11), point(12)
            p = None if left is None or right is None else ((left[0] + right[0]) / 2, (left[1] + right[1]) / 2)
        else:
            p = point(index)
        if p is not None:
            out[joint] = (int(round(p[0])), int(round(p[1])))
    return out


def estimate(image: np.ndarray, visibility_threshold: float = DEFAULT_VISIBILITY,
             min_detection_confidence: float = DEFAULT_DETECTION_CONFIDENCE, where: str = "image") -> np.ndarray:
    """(18, 2) keypoints of the most prominent person in a uint8 RGB H×W×3 image; PoseError if nobody."""
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise PoseError(f"{where}: expected a uint8 RGB image H×W×3, got {arr.dtype} {arr.shape}")
    h, w = arr.shape[:2]
    estimator, key = _mediapipe_pose(min_detection_confidence)
    with _lock:  # the MediaPipe graph is not re-entrant
        if key in _warmed_up:
            result = estimator.process(np.ascontiguousarray(arr))
        else:
            with _quiet_native_stderr():
                result = estimator.process(np.ascontiguousarray(arr))
            _warmed_up.add(key)
    if result.pose_landmarks is None:
        raise PoseError(f"{where}: no person found")
    marks = result.pose_landmarks.landmark
    xy = np.array([[m.x * w, m.y * h] for m in marks], dtype=np.float64)
    vis = np.array([m.visibility for m in marks], dtype=np.float64)
    kp = landmarks_to_coco18(xy, vis, (h, w), visibility_threshold)
    if (kp == MISSING).all():
        raise PoseError(f"{where}: no person found (no landmark above visibility {visibility_threshold})")
    return kp
