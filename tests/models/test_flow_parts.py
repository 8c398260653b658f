"""Pose decomposition of the part-flow model: joint sets, part boxes/masks from heatmaps, part images."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from posetransfer.data.keypoints import NUM_JOINTS, heatmaps
from posetransfer.errors import ModelError
from posetransfer.models.flow_parts import (PART_JOINTS, describe_parts, downsample_masks, joint_positions,
                                            keypoint_part_boxes, part_boxes, part_images, part_masks,
                                            resolve_parts, sub_pose)

SIZE = (128, 64)
KP = np.array([
    [14, 32], [26, 32], [26, 24], [42, 21], [57, 20], [26, 40], [42, 43], [57, 44],
    [62, 27], [87, 27], [112, 27], [62, 37], [87, 37], [112, 37], [12, 30], [12, 34], [13, 27], [13, 37],
])


def test_default_parts_cover_every_joint_and_share_only_the_anchors():
    parts = resolve_parts()
    assert list(parts) == ["head", "torso", "leg"]
    covered = set().union(*map(set, parts.values()))
    assert covered == set(range(NUM_JOINTS))
    assert set(parts["head"]) & set(parts["torso"]) == {1}            # neck
    assert set(parts["torso"]) & set(parts["leg"]) == {8, 11}        # hips
    assert not set(parts["head"]) & set(parts["leg"])
    text = describe_parts()
    assert "head: 0 nose" in text and "leg:" in text and "l_ankle" in text


@pytest.mark.parametrize("table, match", [
    ({}, "non-empty"), ({"a": []}, "no joints"), ({"a": [0, 18]}, "18"), ({"a": [1, 1]}, "twice"),
    ({"a": ["x"]}, "integers"),
])
def test_bad_part_tables(table, match):
    with pytest.raises(ModelError, match=match):
        resolve_parts(table)


def test_boxes_from_heatmaps_match_the_keypoint_version():
    maps = torch.from_numpy(heatmaps(KP, SIZE))[None]
    pos, present = joint_positions(maps)
    assert present.all() and torch.equal(pos[0], torch.from_numpy(KP))
    boxes, valid = part_boxes(maps, PART_JOINTS, margin=0.1)
    expected = keypoint_part_boxes(KP, SIZE, margin=0.1)
    assert valid.all()
    for i, name in enumerate(PART_JOINTS):
        assert tuple(boxes[0, i].tolist()) == expected[name]
    # head box: eyes/ears/nose/neck rows 12..26 grown by round(0.1*128)=13 px, clipped at the top
    assert expected["head"] == (0, 27 - 13, 26 + 13, 37 + 13)
    # leg box: from the hips (row 62) to the ankles (row 112) plus margin
    assert expected["leg"] == (62 - 13, 27 - 13, 112 + 13, 37 + 13)
    assert keypoint_part_boxes(KP, SIZE, margin=0.2)["leg"][2] == 127     # clipped at the bottom


def test_masks_images_and_missing_parts():
    kp = KP.copy()
    kp[[8, 9, 10, 11, 12, 13]] = -1                   # no leg joint at all (e.g. a DeepFashion half-body)
    maps = torch.from_numpy(heatmaps(kp, SIZE))[None]
    masks = part_masks(maps, PART_JOINTS, margin=0.0)
    assert masks.shape == (1, 3, *SIZE)
    assert masks[0, 2].sum() == 0                       # leg: zero mask
    y0, x0, y1, x1 = keypoint_part_boxes(kp, SIZE, margin=0.0)["torso"]
    assert masks[0, 1].sum() == (y1 - y0 + 1) * (x1 - x0 + 1)
    assert masks[0, 1, y0, x0] == 1 and masks[0, 1, y0 - 1, x0] == 0
    image = torch.rand(1, 3, *SIZE) * 2 - 1
    head, torso, leg = part_images(image, masks)
    assert torch.equal(torso * masks[:, 1:2], torso) and torch.all(leg == 0)
    assert torch.equal(torso[..., y0:y1 + 1, x0:x1 + 1], image[..., y0:y1 + 1, x0:x1 + 1])
    small = downsample_masks(masks, (32, 16))
    assert small.shape == (1, 3, 32, 16) and 0 <= small.min() and small.max() <= 1
    assert small[0, 1].sum() * 16 == pytest.approx(float(masks[0, 1].sum()))


def test_sub_pose_is_a_channel_subset():
    maps = torch.rand(2, 18, 8, 4)
    assert torch.equal(sub_pose(maps, PART_JOINTS["leg"]), maps[:, [8, 11, 9, 10, 12, 13]])
