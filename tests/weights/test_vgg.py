"""VGG features for the perceptual loss: explicit file, offline fallback (pretrained, logged), clear errors."""
from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F

import posetransfer.weights as weights_pkg
from posetransfer.errors import WeightsUnavailable
from posetransfer.weights import vgg as V


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """No torchvision VGG-19 in the hub cache, no env override, fresh 'announce once' memory."""
    monkeypatch.setattr(weights_pkg, "hub_checkpoint_dir", lambda: tmp_path / "hub")
    monkeypatch.delenv(V.ENV_VARIABLE, raising=False)
    monkeypatch.setattr(weights_pkg, "_announced", set())
    return tmp_path


def test_offline_fallback_warns_and_is_the_pretrained_shift_tolerant_vgg(empty_hub, caplog):
    caplog.set_level(logging.INFO, logger="posetransfer.weights")
    features = V.VGGFeatures(["relu1_2"])
    assert features.kind == "st-vgg16"
    assert features.source.kind == "package"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "shift-tolerant VGG-16" in warnings[0].getMessage()
    # the weights are those of the file shipped in stlpips-pytorch, not a random init
    stored = torch.load(V.fallback_file(), map_location="cpu", weights_only=True)
    assert torch.equal(features.features[0].weight, stored["net.slice1.0.weight"])
    assert torch.equal(features.features[2].weight, stored["net.slice1.2.weight"])
    assert torch.equal(features.features[2].bias, stored["net.slice1.2.bias"])
    out = features(torch.zeros(2, 3, 32, 16))
    assert out["relu1_2"].shape == (2, 64, 32, 16)
    assert not any(p.requires_grad for p in features.parameters())
    # a second network from the same source does not warn again
    caplog.clear()
    V.VGGFeatures(["relu1_2"])
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


def test_fallback_maps_vgg19_layer_names_and_blur_pools(empty_hub):
    features = V.VGGFeatures(["relu1_2", "relu2_2", "relu3_4"])
    out = features(torch.rand(1, 3, 64, 32) * 2 - 1)
    assert out["relu2_2"].shape[1] == 128 and out["relu3_4"].shape[1] == 256
    assert out["relu3_4"].shape[2] < out["relu2_2"].shape[2] < 64


def test_explicit_torchvision_style_file_is_used_and_normalises_like_imagenet(empty_hub):
    gen = torch.Generator().manual_seed(0)
    state = {"features.0.weight": torch.randn(64, 3, 3, 3, generator=gen) * 0.1,
             "features.0.bias": torch.randn(64, generator=gen) * 0.1,
             "features.2.weight": torch.randn(64, 64, 3, 3, generator=gen) * 0.05,
             "features.2.bias": torch.randn(64, generator=gen) * 0.1,
             "classifier.0.weight": torch.zeros(1)}
    path = empty_hub / "vgg19-test.pth"
    torch.save(state, path)
    features = V.VGGFeatures(["relu1_2"], weights=path)
    assert features.kind == "vgg19" and features.source.kind == "path"
    x = torch.rand(1, 3, 16, 8) * 2 - 1
    mean = torch.tensor(V.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(V.IMAGENET_STD).view(1, 3, 1, 1)
    h = ((x + 1) / 2 - mean) / std
    h = F.relu(F.conv2d(h, state["features.0.weight"], state["features.0.bias"], padding=1))
    expected = F.relu(F.conv2d(h, state["features.2.weight"], state["features.2.bias"], padding=1))
    assert torch.allclose(features(x)["relu1_2"], expected, atol=1e-5)


def test_hub_cache_file_is_found(empty_hub, monkeypatch):
    hub = empty_hub / "hub"
    hub.mkdir()
    state = {f"features.{i}.{k}": torch.zeros(64, 3 if i == 0 else 64, 3, 3) if k == "weight" else torch.zeros(64)
             for i in (0, 2) for k in ("weight", "bias")}
    torch.save(state, hub / V.VGG19_FILE)
    assert V.VGGFeatures(["relu1_1"]).source.kind == "hub-cache"


def test_missing_explicit_file_names_it(empty_hub):
    with pytest.raises(WeightsUnavailable, match="nope.pth"):
        V.VGGFeatures(weights=empty_hub / "nope.pth")


class NotWeights:
    """Pickling this needs code execution on load: weights_only must refuse it."""


def test_pickled_code_is_refused(empty_hub):
    path = empty_hub / "evil.pth"
    torch.save({"features.0.weight": NotWeights()}, path)
    with pytest.raises(WeightsUnavailable, match=r"evil\.pth: refused") as err:
        V.VGGFeatures(weights=path)
    assert "\n" not in str(err.value)


def test_no_weights_anywhere_is_an_error_not_a_random_network(empty_hub, monkeypatch):
    monkeypatch.setattr(V, "fallback_file", lambda: None)
    with pytest.raises(WeightsUnavailable, match="VGG-19 weights not found"):
        V.VGGFeatures()


def test_unknown_layer(empty_hub):
    with pytest.raises(WeightsUnavailable, match="relu9_9"):
        V.VGGFeatures(["relu9_9"])


@pytest.mark.parametrize("kind", ["st-vgg16", "vgg19"])
def test_features_stop_at_the_deepest_layer_the_loss_uses_with_identical_values(empty_hub, kind):
    """The perceptual loss on relu1_2 runs VGG's first 4 layers, not the whole network: its features, loss
    value and gradient equal those of the full network's relu1_2 exactly."""
    from posetransfer.losses import PerceptualLoss

    weights = None
    if kind == "vgg19":   # a torchvision-layout VGG-19 file with every layer (random weights)
        torch.manual_seed(1)
        full_net = V._vgg19_features(max(V.VGG19_LAYERS.values()))
        weights = empty_hub / "vgg19-full.pth"
        torch.save({f"features.{k}": v for k, v in full_net.state_dict().items()}, weights)
    short = V.VGGFeatures(["relu1_2"], weights=weights)
    full = V.VGGFeatures(["relu1_2", "relu5_4"], weights=weights)
    assert short.kind == full.kind == kind
    assert len(short.features) == 4 and len(full.features) > 30
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(2, 3, 64, 32, generator=gen) * 2 - 1).requires_grad_(True)
    y = torch.rand(2, 3, 64, 32, generator=gen) * 2 - 1
    assert torch.equal(short(x)["relu1_2"], full(x)["relu1_2"])
    losses, grads = [], []
    for net in (short, full):
        loss = PerceptualLoss(net, ["relu1_2"])(x, y)
        (grad,) = torch.autograd.grad(loss, x)
        losses.append(loss.item())
        grads.append(grad)
    assert losses[0] == losses[1] and torch.equal(grads[0], grads[1])
