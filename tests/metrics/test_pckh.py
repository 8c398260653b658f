"""PCKh counting rules of PATN's calPCKH_*.py on hand-made keypoint sets."""
from __future__ import annotations

import numpy as np
import pytest

from posetransfer.metrics.pckh import PCKhAccumulator, count_correct, head_size, pckh

M = -1


def target() -> np.ndarray:
    """A target pose whose head box is 10 wide (x 30..40) and 8 high (y 10..18)."""
    kp = np.full((18, 2), M)
    kp[0] = (14, 35)   # nose
    kp[1] = (18, 35)   # neck
    kp[14] = (10, 32)  # r_eye
    kp[15] = (10, 38)  # l_eye
    kp[16] = (12, 30)  # r_ear
    kp[17] = (12, 40)  # l_ear
    kp[2] = (20, 25)   # r_shoulder
    kp[5] = (20, 45)   # l_shoulder
    return kp  # 8 present joints


def test_head_box_comes_from_the_present_head_joints():
    assert head_size(target()) == (10, 8)
    only_two = np.full((18, 2), M)
    only_two[0] = (5, 5)
    only_two[1] = (9, 12)
    assert head_size(only_two) == (7, 4)
    only_one = np.full((18, 2), M)
    only_one[0] = (5, 5)
    only_one[2] = (20, 20)  # not a head joint
    assert head_size(only_one) is None


def test_per_axis_thresholds_are_half_the_head_box_and_strict():
    t = target()
    p = t.copy()
    p[2] = (20 + 3, 25 + 4)   # |dy| 3 < 4, |dx| 4 < 5 → correct
    p[5] = (20 + 4, 45)       # |dy| 4 == 0.5*8: strict test → wrong
    p[0] = (14, 35 + 5)       # |dx| 5 == 0.5*10 → wrong
    p[1] = (18 - 3, 35 - 4)   # correct
    correct, counted = count_correct(p, t)
    assert counted == 8
    assert correct == 8 - 2
    # Euclidean distance would reject (3, 4.9) with radius 5 — the per-axis test accepts it
    p2 = t.copy()
    p2[2] = (23, 29)
    assert count_correct(p2, t) == (8, 8)


def test_missing_predictions_count_as_wrong_and_missing_targets_are_not_counted():
    t = target()
    p = t.copy()
    p[[2, 5, 14]] = M                   # three joints not predicted
    p[10] = (100, 30)                   # predicted but absent in the target: ignored
    assert count_correct(p, t) == (5, 8)


def test_whole_set_fraction_with_skipped_images_and_no_person():
    t = target()
    good = t.copy()
    half = t.copy()
    half[[0, 1, 2, 5]] = M              # 4 of 8 wrong
    headless = np.full((18, 2), M)
    headless[[2, 5, 8, 11]] = [(20, 20), (20, 40), (60, 22), (60, 38)]  # no head joints → skipped
    acc = PCKhAccumulator()
    acc.add(good, t)                    # 8 / 8
    acc.add(half, t)                    # 4 / 8
    acc.add(None, t)                    # nobody found: 0 / 8
    acc.add(good, headless)             # skipped entirely (not in the denominator)
    assert (acc.correct, acc.total) == (12, 24)
    assert acc.value == pytest.approx(0.5)
    assert acc.skipped == 1 and acc.images == 3 and acc.no_person == 1
    assert pckh([good, half, None, good], [t, t, t, headless]) == pytest.approx(12 / 24)
    assert pckh([good], [headless]) is None
