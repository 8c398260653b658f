"""The ResNet-generator baseline of PATN's ablation (5/9/13 residual blocks)."""
from __future__ import annotations

import pytest
import torch

from posetransfer.models.blocks import count_parameters
from posetransfer.models.registry import build_generator


@pytest.mark.parametrize("preset", ["market", "deepfashion"])
def test_output_shape(preset, inputs):
    g = build_generator("resnet", dataset=preset, ngf=8, n_blocks=2)
    image, src, tgt = inputs(preset, batch=1)
    out = g(image, src, tgt, return_extras=True)
    assert out.image.shape == image.shape and out.attention == []


def test_block_counts_of_the_ablation():
    with torch.device("meta"):
        counts = [count_parameters(build_generator("resnet", dataset="deepfashion", n_blocks=n)) for n in (5, 9, 13)]
    per_block = 2 * (3 * 3 * 256 * 256 + 256)
    assert counts[1] - counts[0] == counts[2] - counts[1] == 4 * per_block


def test_pose_input_matters_and_gradients(inputs, grad_check):
    g = build_generator("resnet", dataset="market", ngf=8, n_blocks=2).train()
    image, src, tgt = inputs("market")
    grad_check(g, g(image, src, tgt).sum())
    g.eval()
    with torch.no_grad():
        assert not torch.allclose(g(image, src, tgt), g(image, src, tgt.flip(2)))
