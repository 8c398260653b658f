"""BlazePose → COCO-18 on real photos shipped with installed packages (nothing stored in the repo).

Expected positions were read off the photos by eye: astronaut (512×512): nose ≈ (y 125, x 222), her right eye
≈ (103, 202) and left eye ≈ (105, 244), right shoulder (image left) ≈ (240, 105), left shoulder ≈ (250, 320).
Bus photo (810×1080), pedestrian in the beige coat cropped at x 45–255, y 380–920: head at the top
(y < 110 in the crop), feet at the bottom (y > 430), facing the camera.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from posetransfer.data.keypoints import JOINT_INDEX as J
from posetransfer.errors import PoseError
from posetransfer.pose import estimate_keypoints
from posetransfer.pose.blazepose import BLAZEPOSE_TO_COCO18, landmarks_to_coco18

LIMBS = ("r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
         "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle")


def bus_pedestrian() -> np.ndarray:
    spec = importlib.util.find_spec("ultralytics")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("ultralytics (for its bus.jpg asset) not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "assets" / "bus.jpg"
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB").crop((45, 380, 255, 920)))


def near(kp: np.ndarray, joint: str, y: float, x: float, tol: float) -> bool:
    py, px = kp[J[joint]]
    return py >= 0 and abs(py - y) <= tol and abs(px - x) <= tol


def test_astronaut_face_and_shoulders_are_where_they_are_in_the_photo():
    kp = estimate_keypoints(data.astronaut())
    assert kp.shape == (18, 2) and kp.dtype == np.int64
    assert near(kp, "nose", 125, 222, 15)
    assert near(kp, "r_eye", 103, 202, 15) and near(kp, "l_eye", 105, 244, 15)
    assert near(kp, "r_shoulder", 240, 105, 35) and near(kp, "l_shoulder", 250, 320, 35)
    # the neck is the shoulder midpoint (BlazePose has no neck landmark)
    mid = (kp[J["r_shoulder"]] + kp[J["l_shoulder"]]) / 2
    assert np.all(np.abs(kp[J["neck"]] - mid) <= 1)
    # her hips and legs are outside the photo: missing, not guessed
    for joint in ("r_knee", "l_knee", "r_ankle", "l_ankle"):
        assert tuple(kp[J[joint]]) == (-1, -1)


def test_bus_pedestrian_full_body_top_to_bottom():
    image = bus_pedestrian()
    h, w = image.shape[:2]
    kp = estimate_keypoints(image)
    assert all(kp[J[j], 0] >= 0 for j in LIMBS), kp
    assert 0 <= kp[J["nose"], 0] < 110
    assert kp[J["r_ankle"], 0] > 430 and kp[J["l_ankle"], 0] > 430
    assert kp[J["nose"], 0] < kp[J["neck"], 0] < kp[J["r_hip"], 0] < kp[J["r_knee"], 0] < kp[J["r_ankle"], 0]
    # facing the camera: the person's right side is on the image's left
    assert kp[J["r_shoulder"], 1] < kp[J["l_shoulder"], 1]
    assert kp[J["r_ankle"], 1] < kp[J["l_ankle"], 1]
    assert np.all(kp[kp[:, 0] >= 0, 0] < h) and np.all(kp[kp[:, 1] >= 0, 1] < w)


def test_works_at_market_resolution():
    small = np.asarray(Image.fromarray(bus_pedestrian()).resize((64, 128), Image.BICUBIC))
    kp = estimate_keypoints(small)
    assert sum(kp[J[j], 0] >= 0 for j in LIMBS) >= 10
    assert kp[J["nose"], 0] < 30 and kp[J["r_ankle"], 0] > 100


def test_no_person_raises_pose_error_naming_the_file(tmp_path):
    flat = np.full((128, 64, 3), 127, np.uint8)
    with pytest.raises(PoseError, match="no person found"):
        estimate_keypoints(flat)
    path = tmp_path / "empty_wall.png"
    Image.fromarray(flat).save(path)
    with pytest.raises(PoseError, match=r"empty_wall.png: no person found"):
        estimate_keypoints(path)
    with pytest.raises(PoseError, match="uint8 RGB"):
        estimate_keypoints(np.zeros((10, 10), np.float32))


def test_landmark_mapping_visibility_and_image_bounds():
    xy = np.zeros((33, 2))
    xy[:, 0] = np.arange(33) * 2.0        # x encodes the BlazePose index
    xy[:, 1] = 10.0
    vis = np.ones(33)
    vis[13] = 0.2                          # left elbow not visible
    xy[28] = (500.0, 10.0)                 # right ankle outside the 100-wide image
    kp = landmarks_to_coco18(xy, vis, (50, 100), threshold=0.5)
    for joint, index in enumerate(BLAZEPOSE_TO_COCO18):
        if index is None or joint in (J["l_elbow"], J["r_ankle"]):
            continue
        assert tuple(kp[joint]) == (10, index * 2), (joint, index)
    assert tuple(kp[J["l_elbow"]]) == (-1, -1) and tuple(kp[J["r_ankle"]]) == (-1, -1)
    assert tuple(kp[J["neck"]]) == (10, 23)     # midpoint of x 22 (index 11) and 24 (index 12)
    vis[11] = 0.0
    assert tuple(landmarks_to_coco18(xy, vis, (50, 100))[J["neck"]]) == (-1, -1)
