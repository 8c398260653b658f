"""PATN generator: shapes at both dataset sizes, the paper's parameter counts, masks, gradients, ablations."""
from __future__ import annotations

import pytest
import torch

from posetransfer.models.blocks import count_parameters
from posetransfer.models.registry import build_generator


@pytest.mark.parametrize("preset", ["market", "deepfashion"])
def test_output_shape_and_range(preset, inputs):
    g = build_generator("patn", dataset=preset, ngf=8, n_blocks=2)
    image, src, tgt = inputs(preset)
    out = g(image, src, tgt)
    assert out.shape == image.shape
    assert out.min() >= -1 and out.max() <= 1


def test_preset_chooses_norm():
    assert isinstance(build_generator("patn", dataset="market", ngf=8, n_blocks=1).stream1_down[2],
                      torch.nn.BatchNorm2d)
    assert isinstance(build_generator("patn", dataset="deepfashion", ngf=8, n_blocks=1).stream1_down[2],
                      torch.nn.InstanceNorm2d)
    # an explicit override beats the preset
    assert isinstance(build_generator("patn", dataset="market", norm="instance", ngf=8, n_blocks=1).stream1_down[2],
                      torch.nn.InstanceNorm2d)


def test_parameter_counts_match_paper():
    with torch.device("meta"):
        g = build_generator("patn", dataset="deepfashion")  # 9 blocks, ngf 64, instance norm
        market = build_generator("patn", dataset="market")
    total = count_parameters(g)
    assert round(total / 1e6, 2) == 41.36            # TPAMI Table 2 / CVPR Table 2
    assert total == 41_358_019                        # exact figure from the official layout
    assert round(count_parameters(g.att[1]) / 1e6, 2) == 4.72   # "a single PATB has 4.72 M"
    assert all(count_parameters(b) == count_parameters(g.att[1]) for b in g.att[1:])
    assert count_parameters(market) == 41_365_763     # batch norm: affine params, no conv biases


def test_attention_masks(inputs):
    g = build_generator("patn", dataset="market", ngf=8, n_blocks=3).eval()
    out = g(*inputs("market"), return_extras=True)
    assert len(out.attention) == 3
    for mask in out.attention:
        assert mask.shape == (2, 32, 32, 16)
        assert mask.min() >= 0 and mask.max() <= 1
    # the masks depend on the target pose
    image, src, tgt = inputs("market")
    other = g(image, src, torch.flip(tgt, dims=[2]), return_extras=True)
    assert not torch.allclose(out.attention[0], other.attention[0])


def test_every_parameter_gets_a_gradient(inputs, grad_check):
    # batch norm: with instance norm the conv biases right before a (non-affine) InstanceNorm get a zero
    # gradient by construction (the official layout keeps those biases); that is the one documented exception.
    g = build_generator("patn", dataset="market", ngf=8, n_blocks=2).train()
    grad_check(g, g(*inputs("market")).sum())


@pytest.mark.parametrize("flags, first_pose_in", [({"residual": False}, 64), ({"concat": False}, 32)])
def test_ablation_switches(flags, first_pose_in, inputs):
    g = build_generator("patn", dataset="market", ngf=8, n_blocks=2, **flags).eval()
    assert g.att[1].conv_block_stream2[1].in_channels == first_pose_in
    image, src, tgt = inputs("market")
    assert g(image, src, tgt).shape == image.shape
    if "residual" in flags:  # same weights as the full block, only the wiring differs → another image
        full = build_generator("patn", dataset="market", ngf=8, n_blocks=2).eval()
        full.load_state_dict(g.state_dict())
        assert not torch.allclose(full(image, src, tgt), g(image, src, tgt))


def test_any_number_of_blocks(inputs):
    for n in (0, 1, 4):
        g = build_generator("patn", dataset="market", ngf=8, n_blocks=n).eval()
        out = g(*inputs("market", batch=1), return_extras=True)
        assert len(out.attention) == n


def test_unknown_option_is_a_model_error():
    from posetransfer.errors import ModelError

    with pytest.raises(ModelError, match="n_block"):
        build_generator("patn", n_block=3)
    with pytest.raises(ModelError, match="dataset"):
        build_generator("patn", dataset="mars")
