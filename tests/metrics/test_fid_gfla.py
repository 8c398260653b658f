"""GFLA's FID kind: torchvision's ImageNet Inception-v3 fed as GFLA's ``script/inception.py`` feeds it.

The real weights (``inception_v3_google-0cc3c7bd.pth``) are not available offline, so the preprocessing is pinned
with a tiny stand-in network and the loading path with a randomly initialised torchvision Inception-v3 saved to a
file — both against a reference of GFLA's formula written out here.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from posetransfer.errors import WeightsUnavailable
from posetransfer.weights.inception_torchvision import (IMAGENET_INCEPTION_FILES, GFLAInceptionExtractor,
                                                        build_imagenet_inception, resolve_imagenet_inception_file)


def gfla_input(images: list[np.ndarray]) -> torch.Tensor:
    """GFLA: ``imgs /= 255`` (float32), ``F.upsample(x, size=(299, 299), mode='bilinear')`` (PyTorch 1.0:
    align_corners False), then ``x[:, c] = x[:, c] * (std_c / 0.5) + (mean_c - 0.5) / 0.5``."""
    x = torch.from_numpy(np.stack(images).astype(np.float32).transpose(0, 3, 1, 2)) / 255
    x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False).clone()
    x[:, 0] = x[:, 0] * (0.229 / 0.5) + (0.485 - 0.5) / 0.5
    x[:, 1] = x[:, 1] * (0.224 / 0.5) + (0.456 - 0.5) / 0.5
    x[:, 2] = x[:, 2] * (0.225 / 0.5) + (0.406 - 0.5) / 0.5
    return x


class Recorder(nn.Module):
    """Stand-in network: remembers its input and returns a cheap 8-d feature of it."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        return F.adaptive_avg_pool2d(x, 2).flatten(1)[:, :8]


def images(n: int, size=(128, 64), seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(n)]


def test_preprocessing_is_gflas_resize_and_normalisation():
    recorder = Recorder()
    extractor = GFLAInceptionExtractor(network=recorder, batch_size=2)
    batch = images(3)
    features, logits = extractor(batch)
    assert logits is None and features.shape == (3, 8) and features.dtype == torch.float64
    seen = torch.cat(recorder.seen)  # two batches (2 + 1)
    assert len(recorder.seen) == 2 and seen.shape == (3, 3, 299, 299)
    torch.testing.assert_close(seen, gfla_input(batch), atol=1e-6, rtol=1e-6)
    assert extractor.describe()["kind"] == "gfla" and extractor.describe()["preprocess"] == "gfla"


def gfla_reference_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """GFLA's ``InceptionV3`` wrapper with ``output_blocks=[3]``: blocks 0-3 of torchvision's modules in turn."""
    blocks = [
        [model.Conv2d_1a_3x3, model.Conv2d_2a_3x3, model.Conv2d_2b_3x3, nn.MaxPool2d(kernel_size=3, stride=2)],
        [model.Conv2d_3b_1x1, model.Conv2d_4a_3x3, nn.MaxPool2d(kernel_size=3, stride=2)],
        [model.Mixed_5b, model.Mixed_5c, model.Mixed_5d, model.Mixed_6a, model.Mixed_6b, model.Mixed_6c,
         model.Mixed_6d, model.Mixed_6e],
        [model.Mixed_7a, model.Mixed_7b, model.Mixed_7c, nn.AdaptiveAvgPool2d(output_size=(1, 1))],
    ]
    for block in blocks:
        for layer in block:
            x = layer(x)
    return x.reshape(x.shape[0], -1)


def test_torchvision_weights_load_from_a_path_and_give_gflas_features(tmp_path):
    from torchvision.models import inception_v3

    torch.manual_seed(0)
    reference = inception_v3(weights=None, aux_logits=True, init_weights=False).eval()
    path = tmp_path / IMAGENET_INCEPTION_FILES[0]
    torch.save(reference.state_dict(), path)
    extractor = GFLAInceptionExtractor(path, batch_size=4)
    assert extractor.source.kind == "path" and "torchvision inception_v3" in extractor.source.network
    batch = images(2, seed=1)
    ours, _ = extractor(batch)
    with torch.inference_mode():
        expected = gfla_reference_features(reference, gfla_input(batch))
    assert ours.shape == (2, 2048)
    torch.testing.assert_close(ours.float(), expected, atol=1e-4, rtol=1e-4)
    assert extractor.identity().endswith("|gfla") and path.name in extractor.identity()


def test_absent_or_wrong_weights_are_one_line_refusals(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    monkeypatch.delenv("POSETRANSFER_IMAGENET_INCEPTION_WEIGHTS", raising=False)
    with pytest.raises(WeightsUnavailable) as info:
        resolve_imagenet_inception_file()
    message = str(info.value)
    assert "\n" not in message and "no package" in message and "--imagenet-inception-weights" in message
    assert IMAGENET_INCEPTION_FILES[0] in message and "--fid-kind tf" in message
    with pytest.raises(WeightsUnavailable, match="missing.pth: torchvision Inception-v3 weights file not found"):
        build_imagenet_inception(tmp_path / "missing.pth")
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "wrong.pth")
    with pytest.raises(WeightsUnavailable, match="wrong.pth: not torchvision Inception-v3 weights") as info:
        build_imagenet_inception(tmp_path / "wrong.pth")
    assert "\n" not in str(info.value)
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsUnavailable, match="garbage.pth: cannot read torchvision Inception-v3 weights"):
        build_imagenet_inception(tmp_path / "garbage.pth")


def test_hub_cache_and_environment_are_searched(tmp_path, monkeypatch):
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("POSETRANSFER_IMAGENET_INCEPTION_WEIGHTS", raising=False)
    old_name = hub / IMAGENET_INCEPTION_FILES[1]  # the name torchvision used in GFLA's time
    old_name.write_bytes(b"x")
    assert resolve_imagenet_inception_file() == (old_name, "hub-cache")
    (hub / IMAGENET_INCEPTION_FILES[0]).write_bytes(b"x")
    assert resolve_imagenet_inception_file() == (hub / IMAGENET_INCEPTION_FILES[0], "hub-cache")
    monkeypatch.setenv("POSETRANSFER_IMAGENET_INCEPTION_WEIGHTS", str(old_name))
    assert resolve_imagenet_inception_file() == (old_name, "path")
