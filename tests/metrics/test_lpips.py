"""LPIPS: our network against the reference packages, and its behaviour on real photo distortions."""
from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter
from skimage import data

from posetransfer.data import keypoints as K
from posetransfer.errors import WeightsUnavailable
from posetransfer.metrics.lpips import LPIPSMetric
from posetransfer.weights.lpips import build_lpips

def crop(y: int, x: int, dy: int = 0, dx: int = 0) -> np.ndarray:
    window = data.astronaut()[y + dy:y + dy + 256, x + dx:x + dx + 128]
    return np.asarray(Image.fromarray(window).resize((64, 128), Image.BICUBIC))


SPOTS = ((20, 150), (100, 300), (200, 60))


@pytest.fixture(scope="module")
def metric() -> LPIPSMetric:
    return LPIPSMetric()  # offline here: the shift-tolerant fallback


def test_offline_fallback_is_labelled(metric):
    assert metric.source.kind == "package"
    assert not metric.is_standard
    assert "NOT the published LPIPS" in metric.source.note


def test_zero_for_identical_images_and_ordered_shift_blur_noise(metric):
    refs = [crop(y, x) for y, x in SPOTS]
    shifted = [crop(y, x, dx=2) for y, x in SPOTS]  # 1 px after the 2x downscale
    blurred = [np.asarray(Image.fromarray(r).filter(ImageFilter.GaussianBlur(1.0))) for r in refs]
    rng = np.random.default_rng(0)
    noisy = [np.clip(r + rng.normal(0, 40, r.shape), 0, 255).astype(np.uint8) for r in refs]
    np.testing.assert_allclose(metric(refs, refs), 0.0, atol=1e-7)
    d_shift, d_blur, d_noise = metric(shifted, refs), metric(blurred, refs), metric(noisy, refs)
    assert np.all(d_shift < d_blur) and np.all(d_blur < d_noise)
    assert np.all(d_shift > 0)


def test_mask_lpips_ignores_the_background(metric):
    ref = crop(20, 150)
    kp = np.array([[16, 32], [28, 32], [28, 22], [44, 18], [60, 16], [28, 42], [44, 46], [60, 48], [64, 26],
                   [86, 26], [110, 26], [64, 38], [86, 38], [110, 38], [13, 29], [13, 35], [15, 26], [15, 38]])
    mask = K.pose_mask(kp, ref.shape[:2])
    other_background = np.where(mask[..., None], ref, crop(200, 60))
    assert metric([other_background], [ref], [mask])[0] == pytest.approx(0.0, abs=1e-7)
    assert metric([other_background], [ref])[0] > 0.05


def test_shift_tolerant_network_equals_the_stlpips_reference(monkeypatch, metric):
    # stlpips imports IPython and torchsummary at module level (unused); stub them to load the reference.
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(embed=None))
    monkeypatch.setitem(sys.modules, "torchsummary", types.SimpleNamespace(summary=None))
    for name in [m for m in sys.modules if m.startswith("stlpips_pytorch.")]:
        monkeypatch.delitem(sys.modules, name)
    from stlpips_pytorch import stlpips

    reference = stlpips.LPIPS(net="alex", variant="shift_tolerant", verbose=False).eval()
    torch.manual_seed(0)
    a = torch.rand(3, 3, 128, 64) * 2 - 1
    b = torch.rand(3, 3, 128, 64) * 2 - 1
    with torch.no_grad():
        expected = reference(a, b).flatten()
        ours = metric.model(a, b)
    torch.testing.assert_close(ours, expected, atol=1e-6, rtol=1e-5)


def test_standard_lpips_from_an_alexnet_file_equals_the_lpips_package(tmp_path):
    import lpips  # the eval extra, installed by .ci/run

    from torchvision.models import alexnet

    torch.manual_seed(1)
    backbone = alexnet(weights=None)  # stands in for alexnet-owt-7be5be79.pth (no download here)
    path = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save(backbone.state_dict(), path)
    model, source = build_lpips(path)
    assert source.network == "LPIPS v0.1 alex" and source.kind == "path"
    reference = lpips.LPIPS(net="alex", version="0.1", pnet_rand=True, verbose=False).eval()
    bounds = [(0, 2), (2, 5), (5, 8), (8, 10), (10, 12)]
    reference.net.load_state_dict({
        f"slice{k}.{i}.{p}": t for k, (lo, hi) in enumerate(bounds, 1) for i in range(lo, hi)
        for p, t in backbone.features[i].state_dict().items()
    })
    a = torch.rand(2, 3, 128, 64) * 2 - 1
    b = torch.rand(2, 3, 128, 64) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(model(a, b), reference(a, b).flatten(), atol=1e-6, rtol=1e-5)


def test_unusable_weight_files_are_one_line_errors(tmp_path):
    with pytest.raises(WeightsUnavailable, match="missing.pth: AlexNet weights file not found"):
        build_lpips(tmp_path / "missing.pth")
    torch.save({"something": torch.zeros(1)}, tmp_path / "wrong.pth")
    with pytest.raises(WeightsUnavailable, match=r"wrong.pth: not a torchvision AlexNet") as info:
        build_lpips(tmp_path / "wrong.pth")
    assert "\n" not in str(info.value)
    assert Path(tmp_path / "wrong.pth").exists()
