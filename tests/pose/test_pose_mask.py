"""The mask-SSIM / mask-LPIPS body mask covers a synthetic person's limbs and little else."""
from __future__ import annotations

import numpy as np

from posetransfer.data import keypoints as K
from posetransfer import viz

# A standing person in a Market-sized 128×64 frame, (y, x), COCO-18 order.
PERSON = np.array([[16, 32], [28, 32], [28, 22], [44, 18], [60, 16], [28, 42], [44, 46], [60, 48], [64, 26],
                   [86, 26], [110, 26], [64, 38], [86, 38], [110, 38], [13, 29], [13, 35], [15, 26], [15, 38]])


def test_mask_covers_every_drawn_limb_of_a_stick_figure():
    size = (128, 64)
    drawing = viz.draw_skeleton(PERSON, size=size, thickness=2)
    body = drawing.any(axis=2)
    mask = K.pose_mask(PERSON, size)
    assert body.sum() > 300
    assert (body & mask).sum() / body.sum() > 0.97
    for a, b in K.LIMBS:
        for t in np.linspace(0, 1, 9):
            y, x = np.rint(PERSON[a] + t * (PERSON[b] - PERSON[a])).astype(int)
            assert mask[y, x], (K.JOINT_NAMES[a], K.JOINT_NAMES[b], t)
    # it is a body mask, not the whole frame: background corners and the space beside the legs are out
    assert mask.mean() < 0.4
    assert not mask[0, 0] and not mask[127, 63] and not mask[100, 5] and not mask[100, 58]


def test_missing_joints_shrink_the_mask():
    size = (128, 64)
    full = K.pose_mask(PERSON, size)
    no_legs = PERSON.copy()
    no_legs[[9, 10, 12, 13]] = -1
    partial = K.pose_mask(no_legs, size)
    assert partial.sum() < full.sum()
    assert not partial[100, 26] and full[100, 26]


def test_mask_covers_rendered_synthetic_people():
    """On the synthetic people of posetransfer.data.synth (clothed bodies, not sticks), drawn on black: the mask
    built from the returned keypoints lies on the body and covers most of it when every limb joint is visible."""
    from posetransfer.data import synth

    limb_joints = [K.JOINT_INDEX[n] for n in ("r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow",
                                              "l_wrist", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle")]
    black = np.zeros((128, 64, 3), np.uint8)
    checked = 0
    for seed in range(8):
        image, kp = synth.render_person(seed, size="market", background=black)
        if (kp[limb_joints] < 0).any():
            continue  # a limb is hidden: the mask legitimately misses it
        body = image.astype(int).sum(axis=2) > 30
        mask = K.pose_mask(kp, (128, 64))
        assert (body & mask).sum() / body.sum() > 0.75, seed   # covers the body...
        assert (body & mask).sum() / mask.sum() > 0.75, seed   # ...and little background
        checked += 1
    assert checked >= 3
