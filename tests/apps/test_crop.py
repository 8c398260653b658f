"""The person crop: aspect ratio of the model frame, keypoints moved with the pixels, and the way back."""
from __future__ import annotations

import numpy as np
import pytest

from posetransfer.apps import crop as C
from posetransfer.data import keypoints as K
from posetransfer import viz
from posetransfer.kinds import FASHION, MARKET
from posetransfer.errors import PoseError

from apps_support import TEMPLATE


def _person_photo(offset=(150, 220), scale=3, size=(600, 500)):
    """A skeleton drawn at ``scale`` into a bigger grey photo; returns (photo, keypoints in the photo)."""
    kp = TEMPLATE * scale + np.array(offset)
    photo = np.full((*size, 3), 90, dtype=np.uint8)
    return viz.draw_skeleton(kp, canvas=photo, thickness=6), kp


@pytest.mark.parametrize("model_size", [MARKET.size, FASHION.size])
def test_box_has_model_aspect_and_contains_every_joint(model_size):
    _, kp = _person_photo()
    box = C.box_from_keypoints(kp, model_size)
    assert abs(box.height / box.width - model_size[0] / model_size[1]) < 0.03
    assert (kp[:, 0] > box.top).all() and (kp[:, 0] < box.top + box.height).all()
    assert (kp[:, 1] > box.left).all() and (kp[:, 1] < box.left + box.width).all()


def test_keypoints_follow_the_pixels_through_crop_and_resize():
    """A joint's pixel colour in the crop is the colour drawn at that joint in the photo."""
    photo, kp = _person_photo()
    box = C.box_from_keypoints(kp, MARKET.size)
    crop = C.crop_image(photo, box, MARKET.size)
    model_kp = C.keypoints_to_model(kp, box, MARKET.size)
    assert crop.shape == (128, 64, 3)
    grey = np.array([90, 90, 90])
    for j in range(K.NUM_JOINTS):
        y, x = model_kp[j]
        assert np.abs(crop[y, x].astype(int) - grey).sum() > 60, f"joint {j} lands on background"
    back = C.keypoints_to_photo(model_kp, box, MARKET.size)
    scale = box.height / 128
    assert np.abs(back - kp).max() <= scale  # within one model pixel


def test_box_leaving_the_photo_is_padded_and_paste_back_only_touches_the_box():
    photo, kp = _person_photo(offset=(-45, -60), size=(300, 260))   # person at the top-left corner
    box = C.box_from_keypoints(kp, MARKET.size)
    assert box.top < 0 and box.left < 0
    edge = C.crop_image(photo, box, MARKET.size, pad="edge")
    grey = C.crop_image(photo, box, MARKET.size, pad="grey")
    assert edge.shape == grey.shape == (128, 64, 3)
    assert (grey[0, 0] == C.GREY).all()
    generated = np.full((128, 64, 3), 255, dtype=np.uint8)
    pasted = C.paste_back(photo, generated, box)
    inside = np.zeros(photo.shape[:2], dtype=bool)
    inside[:box.top + box.height, :box.left + box.width] = True
    assert (pasted[inside] == 255).all()
    assert (pasted[~inside] == photo[~inside]).all()
    cut = C.box_to_photo(generated, box, photo.shape[:2])
    assert cut.shape[:2] == (min(box.top + box.height, 300), min(box.left + box.width, 260))


def test_too_few_joints_is_a_pose_error_naming_the_input():
    kp = np.full((18, 2), -1)
    kp[0] = (10, 10)
    with pytest.raises(PoseError, match="photo.jpg"):
        C.box_from_keypoints(kp, MARKET.size, where="photo.jpg")


def test_sequence_box_keeps_motion():
    """Two poses walking right: one shared box, so the model-frame poses are still apart."""
    a = TEMPLATE * 2 + np.array([100, 50])
    b = TEMPLATE * 2 + np.array([100, 150])
    box = C.box_for_sequence([a, b], MARKET.size)
    ka, kb = (C.keypoints_to_model(k, box, MARKET.size) for k in (a, b))
    shift = (kb[:, 1] - ka[:, 1])[(ka[:, 1] >= 0) & (kb[:, 1] >= 0)]
    assert len(shift) > 0 and shift.min() > 5
