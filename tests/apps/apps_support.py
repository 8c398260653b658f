"""Helpers shared by the application tests (imported by tests/apps/conftest.py and the test modules)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np


#: a standing person in the 128×64 Market frame, (y, x)
TEMPLATE = np.array([
    [20, 32], [30, 32], [30, 24], [45, 22], [58, 22], [30, 40], [45, 42], [58, 42], [64, 27],
    [86, 27], [110, 27], [64, 37], [86, 37], [110, 37], [17, 30], [17, 34], [19, 27], [19, 37],
])
TINY_MODEL = {"ngf": 8, "n_blocks": 2, "norm": "batch", "dropout": 0.0}


def write_pose_json(path: Path, keypoints: np.ndarray, size: tuple[int, int]) -> Path:
    """Our own keypoints JSON format ({"keypoints": [[y, x]...], "size": [H, W]})."""
    path.write_text(json.dumps({"keypoints": np.asarray(keypoints).tolist(), "size": list(size)}))
    return path
