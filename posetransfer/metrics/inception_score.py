"""Inception Score (Salimans et al. 2016) as computed by the TF ``inception_score.py`` PATN used.

``IS = exp(E_x KL(p(y|x) || p(y)))`` over the 1008 classes of the TF Inception, computed on 10 consecutive
splits of the generated images (in the test pairs' order, or in ``os.listdir`` order like PATN's script —
the caller orders them); the mean over splits is reported (with the std). The class probabilities
are the softmax of the **unbiased** logits (pool3 @ W, no bias), like the TF script. Mask-IS is the same on
images whose background was blacked out with the target-pose mask.
"""
from __future__ import annotations

import numpy as np

from ..errors import DataError

DEFAULT_SPLITS = 10


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def inception_score(probabilities: np.ndarray, splits: int = DEFAULT_SPLITS) -> tuple[float, float, int]:
    """``(mean, std, splits used)`` of the IS of N×C class probabilities (``splits`` capped at N)."""
    p = np.asarray(probabilities, dtype=np.float64)
    n = len(p)
    if n == 0:
        raise DataError("Inception Score needs at least one image")
    splits = max(1, min(int(splits), n))
    scores = []
    for k in range(splits):
        part = p[k * n // splits:(k + 1) * n // splits]
        marginal = part.mean(axis=0, keepdims=True)
        kl = part * (np.log(np.clip(part, 1e-30, None)) - np.log(np.clip(marginal, 1e-30, None)))
        scores.append(np.exp(kl.sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores)), splits
