"""PCKh with the counting rules of PATN's ``tool/calPCKH_{market,fashion}.py``.

For each (predicted, target) keypoint set:

* head box = bounding box of the *target*'s present joints among {nose, neck, eyes, ears}
  (:data:`HEAD_JOINTS`); fewer than 2 present → the image is skipped entirely (not in the denominator);
* a joint is correct iff both the prediction and the target are present and
  ``|px - tx| < alpha * w_head`` **and** ``|py - ty| < alpha * h_head`` (per axis, strict, alpha = 0.5);
* the denominator counts the target's present joints (a missing prediction counts as wrong).

PCKh = total correct / total counted over the whole test set (not a mean of per-image ratios).

The official predictions came from the CMU OpenPose model; ours come from BlazePose
(:mod:`posetransfer.pose`), so absolute values differ from the papers' even on the same images.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.keypoints import missing_mask
from ..skeleton import HEAD_JOINTS

DEFAULT_ALPHA = 0.5


def head_size(target: np.ndarray) -> tuple[int, int] | None:
    """``(w_head, h_head)`` from the target's present head joints, or None if fewer than 2 are present."""
    kp = np.asarray(target)
    present = [j for j in HEAD_JOINTS if not missing_mask(kp)[j]]
    if len(present) < 2:
        return None
    ys = kp[present, 0]
    xs = kp[present, 1]
    return int(xs.max() - xs.min()), int(ys.max() - ys.min())


def count_correct(predicted: np.ndarray, target: np.ndarray,
                  alpha: float = DEFAULT_ALPHA) -> tuple[int, int] | None:
    """``(correct, counted)`` for one image, or None when the image is skipped (no head box)."""
    size = head_size(target)
    if size is None:
        return None
    w, h = size
    pred = np.asarray(predicted)
    tgt = np.asarray(target)
    tgt_present = ~missing_mask(tgt)
    both = tgt_present & ~missing_mask(pred)
    dx = np.abs(pred[:, 1] - tgt[:, 1])
    dy = np.abs(pred[:, 0] - tgt[:, 0])
    correct = both & (dx < alpha * w) & (dy < alpha * h)
    return int(correct.sum()), int(tgt_present.sum())


@dataclass
class PCKhAccumulator:
    """Sums correct/counted joints over images; ``skipped`` counts images without a head box."""

    alpha: float = DEFAULT_ALPHA
    correct: int = 0
    total: int = 0
    images: int = 0
    skipped: int = 0
    no_person: int = 0

    def add(self, predicted: np.ndarray | None, target: np.ndarray) -> None:
        """``predicted`` None = the estimator found no person (every joint counts as wrong)."""
        if predicted is None:
            predicted = np.full_like(np.asarray(target), -1)
            no_person = True
        else:
            no_person = False
        result = count_correct(predicted, target, self.alpha)
        if result is None:
            self.skipped += 1
            return
        self.images += 1
        self.no_person += no_person
        self.correct += result[0]
        self.total += result[1]

    @property
    def value(self) -> float | None:
        return self.correct / self.total if self.total else None

    def as_dict(self) -> dict:
        return {"alpha": self.alpha, "correct": self.correct, "total": self.total, "images": self.images,
                "skipped_no_head_box": self.skipped, "no_person_found": self.no_person}


def pckh(predicted: list[np.ndarray | None], targets: list[np.ndarray], alpha: float = DEFAULT_ALPHA) -> float | None:
    """PCKh over a whole set (None when no image has a head box)."""
    acc = PCKhAccumulator(alpha)
    for p, t in zip(predicted, targets):
        acc.add(p, t)
    return acc.value
