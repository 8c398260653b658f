"""Detection score (DS, Siarohin et al. 2018): how confidently a detector finds a person in each image.

Per image: the maximum confidence among person detections (0 when there is none); DS = the mean over the
generated images. DeepFashion images are padded with 40 white columns each side first (PATN protocol).
The detector is a torchvision COCO model (see :mod:`posetransfer.weights.detector`), not the papers'
Caffe SSD, so compare DS only between runs of this tool.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch

from ..weights.detector import COCO_PERSON, build_detector


class DetectionScore:
    """Callable: ``ds(images) -> (N,) per-image max person confidence``."""

    def __init__(self, weights: str | os.PathLike | None = None, arch: str | None = None,
                 device: str | torch.device = "cpu") -> None:
        self.model, self.source = build_detector(weights, arch)
        self.device = torch.device(device)
        self.model.to(self.device)

    @torch.inference_mode()
    def __call__(self, images: Sequence[np.ndarray]) -> np.ndarray:
        batch = [torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1).float().div(255).to(self.device)
                 for im in images]
        scores = []
        for out in self.model(batch):
            person = out["scores"][out["labels"] == COCO_PERSON]
            scores.append(float(person.max()) if person.numel() else 0.0)
        return np.asarray(scores, dtype=np.float64)
