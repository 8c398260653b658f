"""patn_resnet discriminator: official index layout, both output variants, w/o resD, parameter counts."""
from __future__ import annotations

import pytest
import torch

from posetransfer.models.blocks import count_parameters
from posetransfer.models.registry import build_discriminator


@pytest.mark.parametrize("output, channels", [("features", 256), ("patch", 1)])
def test_output_shapes(output, channels):
    d = build_discriminator("patn_resnet", input_nc=21, output=output, ndf=64 if output == "patch" else 64)
    x = torch.randn(2, 21, 128, 64)
    y = d(x)
    assert y.shape == (2, channels, 32, 16)


def test_sigmoid_scores_are_probabilities():
    d = build_discriminator("patn_resnet", input_nc=6, ndf=8, use_sigmoid=True, output="patch")
    y = d(torch.randn(2, 6, 64, 32) * 5)
    assert y.min() >= 0 and y.max() <= 1


def test_official_key_layout_and_counts():
    d = build_discriminator("patn_resnet", input_nc=21, norm="instance", dropout=0.5)
    keys = set(d.state_dict())
    assert {"model.1.weight", "model.4.weight", "model.7.weight", "model.10.conv_block.1.weight",
            "model.10.conv_block.6.weight", "model.12.conv_block.6.bias"} <= keys
    # computed from the official ResnetDiscriminator (prior_art.md §1.1.4): ~3.98 M (D_S) / ~3.93 M (D_A)
    assert round(count_parameters(d) / 1e6, 2) == 3.98
    assert round(count_parameters(build_discriminator("patn_resnet", input_nc=6, norm="instance")) / 1e6, 2) == 3.93


def test_without_residual_blocks():
    d = build_discriminator("patn_resnet", input_nc=6, ndf=8, n_blocks=0)
    assert len(d.model) == 10
    assert d(torch.randn(1, 6, 32, 16)).shape == (1, 32, 8, 4)


@pytest.mark.parametrize("activation, cls", [("leaky", torch.nn.LeakyReLU), ("relu", torch.nn.ReLU)])
def test_activation_switch(activation, cls):
    d = build_discriminator("patn_resnet", input_nc=6, ndf=8, activation=activation)
    assert type(d.model[3]) is cls and type(d.model[10].conv_block[3]) is cls


def test_gradients_reach_every_parameter(grad_check):
    d = build_discriminator("patn_resnet", input_nc=21, ndf=8, norm="batch", output="patch")
    grad_check(d, d(torch.randn(2, 21, 32, 16)).sum())
