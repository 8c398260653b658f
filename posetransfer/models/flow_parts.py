"""Pose decomposition for the structure-aware part-flow model (Tang et al., "Structure-aware
Person Image Generation with Pose Decomposition and Semantic Correlation", AAAI'21).

The paper splits the 18 OpenPose joints into three sub-poses, head / torso / leg, "based on the inherent
connection relationship among them" (each sub-pose is a subset of the 18 heatmap channels), and crops
"part images" from the source image. The exact joint sets were only drawn in Fig. 2 (not in the text) and
the crop is not described, so both are choices, made configurable here:

* head  — 0 nose, 14 r_eye, 15 l_eye, 16 r_ear, 17 l_ear, 1 neck (the neck anchors the head);
* torso — 1 neck, 2–4 right arm, 5–7 left arm, 8 r_hip, 11 l_hip (with only three parts the arms must
  join one of them, and they hang off the shoulders);
* leg   — 8 r_hip, 11 l_hip, 9–10 right leg, 12–13 left leg (the hips anchor the legs).

(Joint indices: COCO-18 / OpenPose order, see ``posetransfer.skeleton``.)

The anchor joints (neck, hips) appear in two neighbouring parts, so each flow network sees where its part
attaches to the rest of the body.

Part "crop" = masking on the full canvas: ``I_s^part = I_s * M_s^part`` where ``M`` is the axis-aligned
bounding box of the part's visible joints, grown by ``margin * H`` pixels on every side and clipped to the
image. Why masking and not crop-and-resize: the three warped part features are concatenated channel-wise
in one target-aligned canvas (paper eq. 6), so every part must live in the global image frame; a real crop
would need crop-local flows and a paste-back that the paper never mentions. The box (rather than a tight
limb polygon) keeps some context around the part, e.g. the background next to the legs. A part with no
visible joint gets an all-zero mask. Outside the mask the part image is 0, i.e. mid-grey in [-1, 1].

Everything here works on batched torch heatmaps (what the generator sees), plus a numpy version on
(18, 2) keypoints for figures and tests. Joint positions are read back from the heatmaps by arg-max; a
channel whose peak is below ``threshold`` is a missing joint (an all-zero channel is missing).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch

from ..data.keypoints import missing_mask
from ..skeleton import JOINT_NAMES, NUM_JOINTS
from ..errors import ModelError

#: The default decomposition (see the module docstring); names in the paper's order.
PART_JOINTS: dict[str, tuple[int, ...]] = {
    "head": (0, 14, 15, 16, 17, 1),
    "torso": (1, 2, 3, 4, 5, 6, 7, 8, 11),
    "leg": (8, 11, 9, 10, 12, 13),
}

#: The "w/o Part" ablation: one sub-pose holding every joint, and a mask covering the whole image.
WHOLE_BODY: dict[str, tuple[int, ...]] = {"body": tuple(range(NUM_JOINTS))}

#: Default margin around a part's joint box, as a fraction of the image height (≈13 px at 128, 26 px at 256).
DEFAULT_MARGIN = 0.1

#: Heatmap peak below which a joint counts as missing (Gaussian and one-hot maps both peak at 1).
PRESENT_THRESHOLD = 0.5


def resolve_parts(part_joints: Mapping[str, Sequence[int]] | None = None,
                  num_joints: int = NUM_JOINTS) -> dict[str, tuple[int, ...]]:
    """Validate a ``{part name: joint indices}`` table (None → :data:`PART_JOINTS`)."""
    table = PART_JOINTS if part_joints is None else part_joints
    if not isinstance(table, Mapping) or not table:
        raise ModelError("part_joints must be a non-empty mapping {part name: [joint indices]}")
    parts: dict[str, tuple[int, ...]] = {}
    for name, joints in table.items():
        try:
            joints = tuple(int(j) for j in joints)
        except (TypeError, ValueError):
            raise ModelError(f"part {name!r}: joints must be a list of integers, got {joints!r}") from None
        if not joints:
            raise ModelError(f"part {name!r} has no joints")
        bad = [j for j in joints if not 0 <= j < num_joints]
        if bad:
            raise ModelError(f"part {name!r}: joint index {bad[0]} outside 0..{num_joints - 1}")
        if len(set(joints)) != len(joints):
            raise ModelError(f"part {name!r} lists a joint twice")
        parts[str(name)] = joints
    return parts


def describe_parts(parts: Mapping[str, Sequence[int]] | None = None) -> str:
    """One line per part with joint names — for logs and the model summary."""
    parts = resolve_parts(parts)
    return "\n".join(
        f"{name}: " + ", ".join(f"{j} {JOINT_NAMES[j] if j < len(JOINT_NAMES) else '?'}" for j in joints)
        for name, joints in parts.items()
    )


def sub_pose(heatmaps: torch.Tensor, joints: Sequence[int]) -> torch.Tensor:
    """B×18×H×W → B×k×H×W: the sub-pose is the subset of heatmap channels (paper §Part-based flow)."""
    return heatmaps[:, list(joints)]


# --------------------------------------------------------------------------------------------------
# Torch (batched) version: what the generator uses
# --------------------------------------------------------------------------------------------------
def joint_positions(heatmaps: torch.Tensor, threshold: float = PRESENT_THRESHOLD,
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Arg-max (y, x) of every channel, B×J×2 long, and a B×J bool "present" (peak ≥ threshold)."""
    b, j, h, w = heatmaps.shape
    peak, index = heatmaps.detach().flatten(2).max(dim=2)
    positions = torch.stack((index // w, index % w), dim=2)
    return positions, peak >= threshold


def part_boxes(heatmaps: torch.Tensor, parts: Mapping[str, Sequence[int]], margin: float = DEFAULT_MARGIN,
               threshold: float = PRESENT_THRESHOLD) -> tuple[torch.Tensor, torch.Tensor]:
    """Inclusive boxes (y0, x0, y1, x1), B×P×4 long, and B×P bool "part has a visible joint".

    The box spans the visible joints of the part, grown by ``round(margin * H)`` pixels and clipped.
    """
    b, _, h, w = heatmaps.shape
    positions, present = joint_positions(heatmaps, threshold)
    pad = int(round(margin * h))
    big = max(h, w) + 1
    boxes, valid = [], []
    for joints in parts.values():
        idx = list(joints)
        pos, ok = positions[:, idx], present[:, idx]                       # B×k×2, B×k
        ok2 = ok.unsqueeze(-1)
        low = torch.where(ok2, pos, torch.full_like(pos, big)).amin(dim=1)  # B×2
        high = torch.where(ok2, pos, torch.full_like(pos, -1)).amax(dim=1)
        y0 = (low[:, 0] - pad).clamp(0, h - 1)
        x0 = (low[:, 1] - pad).clamp(0, w - 1)
        y1 = (high[:, 0] + pad).clamp(0, h - 1)
        x1 = (high[:, 1] + pad).clamp(0, w - 1)
        boxes.append(torch.stack((y0, x0, y1, x1), dim=1))
        valid.append(ok.any(dim=1))
    return torch.stack(boxes, dim=1), torch.stack(valid, dim=1)


def box_masks(boxes: torch.Tensor, valid: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """B×P×H×W float masks, 1 inside each (valid) inclusive box; boxes are in pixels of ``size``."""
    h, w = size
    ys = torch.arange(h, device=boxes.device).view(1, 1, h, 1)
    xs = torch.arange(w, device=boxes.device).view(1, 1, 1, w)
    y0, x0, y1, x1 = (boxes[..., i].unsqueeze(-1).unsqueeze(-1) for i in range(4))
    inside = (ys >= y0) & (ys <= y1) & (xs >= x0) & (xs <= x1)
    return (inside & valid.unsqueeze(-1).unsqueeze(-1)).float()


def part_masks(heatmaps: torch.Tensor, parts: Mapping[str, Sequence[int]], margin: float = DEFAULT_MARGIN,
               threshold: float = PRESENT_THRESHOLD) -> torch.Tensor:
    """B×P×H×W box masks of every part at the heatmaps' resolution (no gradient: masks are data)."""
    boxes, valid = part_boxes(heatmaps, parts, margin, threshold)
    return box_masks(boxes, valid, heatmaps.shape[2:]).to(heatmaps.dtype)


def part_images(image: torch.Tensor, masks: torch.Tensor) -> list[torch.Tensor]:
    """The masked part images ``I * M^part`` (one B×3×H×W tensor per part)."""
    if masks.shape[2:] != image.shape[2:]:
        raise ModelError(f"part masks are {tuple(masks.shape[2:])}, image is {tuple(image.shape[2:])}")
    return [image * masks[:, i:i + 1] for i in range(masks.shape[1])]


def downsample_masks(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Area-average masks to a feature resolution (values in [0, 1]: the covered fraction of each cell)."""
    if tuple(masks.shape[2:]) == tuple(size):
        return masks
    return torch.nn.functional.adaptive_avg_pool2d(masks, size)


# --------------------------------------------------------------------------------------------------
# Numpy version on (18, 2) (y, x) keypoints: figures and tests
# --------------------------------------------------------------------------------------------------
def keypoint_part_boxes(keypoints: np.ndarray, size: tuple[int, int],
                        parts: Mapping[str, Sequence[int]] | None = None,
                        margin: float = DEFAULT_MARGIN) -> dict[str, tuple[int, int, int, int] | None]:
    """``{part: (y0, x0, y1, x1)}`` inclusive boxes from keypoints (None for a part with no visible joint).

    Same rule as :func:`part_boxes`; joints outside the image count as missing.
    """
    parts = resolve_parts(parts)
    h, w = size
    kp = np.asarray(keypoints)
    miss = missing_mask(kp) | (kp[:, 0] >= h) | (kp[:, 1] >= w)
    pad = int(round(margin * h))
    out: dict[str, tuple[int, int, int, int] | None] = {}
    for name, joints in parts.items():
        idx = [j for j in joints if not miss[j]]
        if not idx:
            out[name] = None
            continue
        pts = kp[idx]
        out[name] = (max(0, int(pts[:, 0].min()) - pad), max(0, int(pts[:, 1].min()) - pad),
                     min(h - 1, int(pts[:, 0].max()) + pad), min(w - 1, int(pts[:, 1].max()) + pad))
    return out
