"""Detection score: weights resolution (never a random network) and per-image scoring."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from posetransfer.errors import WeightsUnavailable
from posetransfer.metrics.detection import DetectionScore
from posetransfer.weights import find_in_hub_cache
from posetransfer.weights.detector import DETECTOR_FILES, build_architecture, build_detector


@pytest.mark.skipif(any(find_in_hub_cache(f) for f in DETECTOR_FILES.values()),
                    reason="a detector is cached on this machine")
def test_without_weights_ds_is_unavailable_with_instructions(monkeypatch):
    monkeypatch.delenv("POSETRANSFER_DETECTOR_WEIGHTS", raising=False)
    with pytest.raises(WeightsUnavailable, match="--detector-weights") as info:
        build_detector()
    assert "ssdlite320_mobilenet_v3_large_coco-a79551df.pth" in str(info.value)
    assert "\n" not in str(info.value)


def test_a_torchvision_detector_file_is_loaded_and_scores_each_image(tmp_path):
    # Weights of the right architecture stand in for the COCO file (no download here): this checks loading
    # by file name and the per-image max-person-confidence output, not detection quality.
    torch.manual_seed(0)
    model = build_architecture("ssdlite320_mobilenet_v3_large")
    path = tmp_path / DETECTOR_FILES["ssdlite320_mobilenet_v3_large"]
    torch.save(model.state_dict(), path)
    ds = DetectionScore(path)
    assert ds.source.kind == "path" and "ssdlite320" in ds.source.network
    images = [np.random.default_rng(i).integers(0, 255, (128, 64, 3), dtype=np.uint8) for i in range(2)]
    scores = ds(images)
    assert scores.shape == (2,)
    assert np.all((scores >= 0) & (scores <= 1))
    # the same file under a name that does not tell the architecture needs --detector-arch
    renamed = tmp_path / "my_detector.pth"
    path.rename(renamed)
    with pytest.raises(WeightsUnavailable, match="my_detector.pth: cannot tell the detector architecture"):
        build_detector(renamed)
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(WeightsUnavailable, match="list.pth: expected a state dict"):
        build_detector(tmp_path / "list.pth", arch="ssdlite320_mobilenet_v3_large")
