"""Helpers shared by the application tests (imported by tests/apps/conftest.py and the test modules)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from posetransfer.data import keypoints as K
from posetransfer import viz
from posetransfer.io import save_image

#: a standing person in the 128×64 Market frame, (y, x)
TEMPLATE = np.array([
    [20, 32], [30, 32], [30, 24], [45, 22], [58, 22], [30, 40], [45, 42], [58, 42], [64, 27],
    [86, 27], [110, 27], [64, 37], [86, 37], [110, 37], [17, 30], [17, 34], [19, 27], [19, 37],
])
TINY_MODEL = {"ngf": 8, "n_blocks": 2, "norm": "batch", "dropout": 0.0}


def standin_dataset(root: Path, identities: int = 4, poses: int = 3, seed: int = 0) -> Path:
    """A stick-figure dataset in the PATN layout, used only while posetransfer.data.synth is missing."""
    from posetransfer.data.prepare import build_pairs

    rng = np.random.default_rng(seed)
    for split, ids in (("train", range(identities)), ("test", range(identities, identities + 2))):
        annotations = {}
        for pid in ids:
            colour = rng.integers(40, 255, size=3)
            for k in range(poses):
                kp = TEMPLATE + rng.integers(-4, 5, size=TEMPLATE.shape)
                kp[[3, 4, 6, 7], 1] += rng.integers(-8, 9, size=4)
                kp = np.clip(kp, 0, [127, 63])
                canvas = np.full((128, 64, 3), rng.integers(60, 200), dtype=np.uint8)
                image = viz.draw_skeleton(kp, canvas=canvas, thickness=5)
                image = (image * 0.5 + colour * 0.5).astype(np.uint8)
                name = f"{pid + 1:04d}_c{k % 6 + 1}s1_{k:06d}_01.jpg"
                save_image(root / split / name, image)
                annotations[name] = kp
        K.write_annotations(root / f"market-annotation-{split}.csv", annotations)
        K.write_pairs(root / f"market-pairs-{split}.csv", build_pairs(annotations, "market"))
    (root / "dataset.json").write_text(json.dumps({"kind": "market", "size": [128, 64], "synthetic": True}))
    return root



def write_pose_json(path: Path, keypoints: np.ndarray, size: tuple[int, int]) -> Path:
    """Our own keypoints JSON format ({"keypoints": [[y, x]...], "size": [H, W]})."""
    path.write_text(json.dumps({"keypoints": np.asarray(keypoints).tolist(), "size": list(size)}))
    return path
