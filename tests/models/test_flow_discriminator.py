"""The unconditional spectral-norm residual discriminator (`spectral_resnet`, GFLA's ResDiscriminator)."""
from __future__ import annotations

import pytest
import torch

from posetransfer.errors import ModelError
from posetransfer.models.registry import build_discriminator, discriminator_names


@pytest.mark.parametrize("preset, size, layers", [("market", (128, 64), 3), ("deepfashion", (256, 176), 4)])
def test_patch_logits_shape_and_gradient(preset, size, layers):
    d = build_discriminator("spectral_resnet", dataset=preset, ndf=8, max_channels=16)
    assert "spectral_resnet" in discriminator_names()
    x = (torch.rand(2, 3, *size) * 2 - 1).requires_grad_(True)
    score = d(x)
    assert score.shape == (2, 1, size[0] // 2 ** layers, size[1] // 2 ** layers)
    score.mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in d.parameters())


def test_every_conv_is_spectrally_normalised():
    d = build_discriminator("spectral_resnet", dataset="market", ndf=8, max_channels=16)
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 3 * 3 + 1
    assert all(hasattr(m, "parametrizations") and "weight" in m.parametrizations for m in convs)
    d.train()
    x = torch.randn(1, 3, 64, 32)
    for _ in range(20):                 # power iteration converges: the largest singular value → 1
        d(x)
    conv = convs[1]
    weight = conv.weight.detach().reshape(conv.weight.shape[0], -1)
    assert torch.linalg.matrix_norm(weight, ord=2).item() == pytest.approx(1.0, rel=0.05)


def test_full_size_widths_and_state_dict_round_trip():
    d = build_discriminator("spectral_resnet", dataset="deepfashion")
    widths = [d.block0.model[3].out_channels] + [b.model[3].out_channels for b in d.encoders]
    assert widths == [32, 64, 128, 128]                     # ndf 32, capped at 128 (GFLA)
    again = build_discriminator("spectral_resnet", dataset="deepfashion")
    again.load_state_dict(d.state_dict(), strict=True)
    d.eval(), again.eval()
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(d(x), again(x))


def test_bad_options_and_inputs():
    with pytest.raises(ModelError, match="bogus"):
        build_discriminator("spectral_resnet", bogus=1)
    with pytest.raises(ModelError, match="dataset"):
        build_discriminator("spectral_resnet", dataset="nope")
    d = build_discriminator("spectral_resnet", input_nc=3, ndf=4, max_channels=8, n_layers=2)
    with pytest.raises(ModelError, match="B×3×H×W"):
        d(torch.randn(1, 21, 32, 32))
