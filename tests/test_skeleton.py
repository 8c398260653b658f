"""The COCO-18 skeleton: the flip permutation follows from the flip pairs; the module imports nothing heavy."""
from __future__ import annotations

import subprocess
import sys

from posetransfer import skeleton as S


def test_flip_permutation_swaps_each_pair_and_is_its_own_inverse():
    perm = S.FLIP_PERMUTATION
    assert perm == (0, 1, 5, 6, 7, 2, 3, 4, 11, 12, 13, 8, 9, 10, 15, 14, 17, 16)
    assert all(perm[perm[j]] == j for j in range(S.NUM_JOINTS))
    for right, left in S.FLIP_PAIRS:
        assert S.JOINT_NAMES[right].startswith("r_") and S.JOINT_NAMES[left] == "l_" + S.JOINT_NAMES[right][2:]


def test_limbs_join_known_joints_and_have_a_colour_each():
    assert len(S.LIMBS) == len(S.LIMB_COLORS) == 19
    assert all(0 <= j < S.NUM_JOINTS for limb in S.LIMBS + S.MASK_LIMBS for j in limb)


def test_ground_floor_modules_do_not_import_torch():
    code = "import sys, posetransfer.skeleton, posetransfer.kinds; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
