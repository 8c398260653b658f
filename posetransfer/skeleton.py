"""The 18-joint OpenPose/COCO skeleton: joint names and order, limbs, left/right flip pairs, colours.

Why a module of its own, with no imports: models (part masks), data (CSVs, heatmaps, flips), pose
estimators, apps and figures all need the same joint order, and none of them should have to import the CSV
reader or torch to learn it. This is the one place it is written down.

Joint order is OpenPose's COCO-18 order. The official PATN ``LABELS`` list names indices 14–17
``Leye, Reye, Lear, Rear``, but its limb table (shoulder 2 → 16, shoulder 5 → 17) and OpenPose's own
documentation say 14 = right eye, 15 = left eye, 16 = right ear, 17 = left ear. The names below follow
OpenPose. Nothing in the models depends on the names; the horizontal flip does (it swaps 14↔15 and 16↔17,
which is correct under either naming because both pairs are swapped).
"""
from __future__ import annotations

NUM_JOINTS = 18
#: the coordinate value of a missing joint (both entries), as in the PATN annotation CSVs
MISSING = -1

JOINT_NAMES: tuple[str, ...] = (
    "nose", "neck",
    "r_shoulder", "r_elbow", "r_wrist",
    "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle",
    "l_hip", "l_knee", "l_ankle",
    "r_eye", "l_eye", "r_ear", "l_ear",
)
JOINT_INDEX: dict[str, int] = {name: i for i, name in enumerate(JOINT_NAMES)}

#: Limbs used for drawing skeletons (OpenPose / PATN ``LIMB_SEQ``, 0-based).
LIMBS: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12),
    (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17), (2, 16), (5, 17),
)

#: Limbs of the mask used by mask-SSIM / mask-IS / mask-LPIPS (PATN ``produce_ma_mask``), 0-based:
#: the drawing limbs plus hip–hip, hip–shoulder and ear–ear polygons that fill the torso and head.
MASK_LIMBS: tuple[tuple[int, int], ...] = tuple(
    (a - 1, b - 1)
    for a, b in (
        (2, 3), (2, 6), (3, 4), (4, 5), (6, 7), (7, 8), (2, 9), (9, 10), (10, 11), (2, 12), (12, 13),
        (13, 14), (2, 1), (1, 15), (15, 17), (1, 16), (16, 18), (2, 17), (2, 18), (9, 12), (12, 6),
        (9, 3), (17, 18),
    )
)

#: Right/left joint pairs that trade places in a horizontal flip (shoulder, elbow, wrist, hip, knee, ankle,
#: eye, ear).
FLIP_PAIRS: tuple[tuple[int, int], ...] = ((2, 5), (3, 6), (4, 7), (8, 11), (9, 12), (10, 13), (14, 15), (16, 17))


def _flip_permutation() -> tuple[int, ...]:
    order = list(range(NUM_JOINTS))
    for right, left in FLIP_PAIRS:
        order[right], order[left] = left, right
    return tuple(order)


#: Index permutation of a horizontal flip (from :data:`FLIP_PAIRS`): right and left joints trade places.
FLIP_PERMUTATION: tuple[int, ...] = _flip_permutation()

#: Joints whose bounding box is the PCKh head box (nose, neck, eyes, ears).
HEAD_JOINTS: tuple[int, ...] = (0, 1, 14, 15, 16, 17)

#: Joints required by the published pair-filtering rule (both hips, both shoulders).
REQUIRED_FOR_PAIRS: tuple[int, ...] = (JOINT_INDEX["r_hip"], JOINT_INDEX["l_hip"],
                                       JOINT_INDEX["l_shoulder"], JOINT_INDEX["r_shoulder"])

#: Colours of the 19 drawing limbs (OpenPose's rainbow palette, RGB); joint j is drawn in colour j.
LIMB_COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
    (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
    (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85), (255, 0, 0),
)
