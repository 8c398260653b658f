"""The ``gfla`` generator: GFLA's parameter counts, shapes and extras at both presets, gradients, the local
attention, stage-1 flow prediction, odd sizes, save/load and input errors."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import posetransfer
from posetransfer.errors import ModelError
from posetransfer.models.base import GeneratorOutput
from posetransfer.models.blocks import count_parameters
from posetransfer.models.gfla import ExtractorAttn, select_flow_net_inputs
from posetransfer.models.gfla_convert import gfla_contract
from posetransfer.models.registry import build_generator
from posetransfer.modelfile import save_generator

TINY = dict(ngf=4, max_channels=16, flow_ngf=4, flow_max_channels=8)
SIZES = {"market": (128, 64), "deepfashion": (64, 64)}


def batch(size, b=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(b, 3, *size, generator=gen) * 2 - 1, torch.rand(b, 18, *size, generator=gen),
            torch.rand(b, 18, *size, generator=gen))


def test_parameter_counts_are_gflas():
    """Equal to GFLA's own PoseGenerator with the released settings (checked against its code); the paper
    reports 14.04 M for DeepFashion."""
    with torch.device("meta"):
        deepfashion = build_generator("gfla", dataset="deepfashion")
        market = build_generator("gfla", dataset="market")
    assert count_parameters(deepfashion) == 14_047_395 and round(count_parameters(deepfashion) / 1e6, 2) == 14.05
    assert count_parameters(deepfashion.flow_net) == 6_608_212
    assert count_parameters(market) == 12_926_471
    assert deepfashion.config["attn_layers"] == [2, 3] and deepfashion.config["kernel_sizes"] == [5, 3]
    assert market.config["attn_layers"] == [2] and market.config["kernel_sizes"] == [3]


@pytest.mark.parametrize("preset", ["market", "deepfashion"])
def test_shapes_extras_and_every_parameter_gets_a_gradient(preset):
    g = build_generator("gfla", dataset=preset, **TINY)
    h, w = SIZES[preset]
    image, src, tgt = batch((h, w))
    out = g(image, src, tgt, return_extras=True)
    assert isinstance(out, GeneratorOutput) and out.image.shape == (2, 3, h, w)
    scales = [4] if preset == "market" else [8, 4]
    assert out.extras["flow_names"] == [f"1/{s}" for s in scales]
    assert [f.shape for f in out.flows] == [(2, 2, h // s, w // s) for s in scales]
    assert [v.shape for v in out.visibility] == [(2, 1, h // s, w // s) for s in scales]
    kernels = [3] if preset == "market" else [3, 5]
    assert out.extras["regularization_kernels"] == kernels
    for weights, k, s in zip(out.extras["attention_weights"], kernels, scales):
        assert weights.shape == (2, k * k, h // s, w // s)
        torch.testing.assert_close(weights.sum(1), torch.ones(2, h // s, w // s))
    assert out.extras["warped"].shape == image.shape and callable(out.extras["flow_sampler"])
    assert torch.is_tensor(g(image, src, tgt))
    loss = out.image.square().mean() + sum(f.square().mean() for f in out.flows)
    loss.backward()
    missing = [n for n, p in g.named_parameters() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    # GFLA's layout: with attention at 1/4 only (Market) the source encoder's 1/8 block is computed, unused
    unused = [n for n, _ in g.named_parameters() if n.startswith("source.encoder1.")] if preset == "market" else []
    assert missing == unused, missing


def test_local_attention_with_a_one_hot_softmax_copies_the_sampled_source_pixel():
    """With all weight on the block's centre, ExtractorAttn returns the source at the flow target / k²."""
    attn = ExtractorAttn(2, 3)
    fc = attn.fully_connect_layer
    torch.nn.init.zeros_(fc[0].weight), torch.nn.init.zeros_(fc[0].bias)
    torch.nn.init.zeros_(fc[2].weight)
    with torch.no_grad():
        fc[2].bias.copy_(torch.tensor([0, 0, 0, 0, 50.0, 0, 0, 0, 0]))
    source = torch.randn(1, 2, 6, 5)
    flow = torch.zeros(1, 2, 6, 5)
    flow[:, 0] = 1.0                                   # sample one pixel to the right
    out, weights = attn(source, torch.randn(1, 2, 6, 5), flow)
    expected = torch.cat([source[..., 1:], source[..., -1:]], dim=3) / 9     # border-clamped
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)


def test_predict_flows_runs_only_the_flow_net():
    g = build_generator("gfla", dataset="deepfashion", **TINY)
    out = g.predict_flows(*batch((64, 64), b=1))
    assert out.image.shape == (1, 3, 64, 64) and len(out.flows) == 2
    (sum(f.sum() for f in out.flows) + sum(v.sum() for v in out.visibility)).backward()
    flow_ids = {id(p) for p in g.flow_parameters()}
    assert all((p.grad is not None) == (id(p) in flow_ids) for p in g.parameters())


def test_sizes_gfla_cannot_run_are_resized_inside():
    """256×176 (the library's DeepFashion frame): the flow net's 1/32 is 5.5 px; GFLA itself fails there."""
    g = build_generator("gfla", dataset="deepfashion", **TINY)
    out = g(*batch((96, 88), b=1), return_extras=True)
    assert out.image.shape == (1, 3, 96, 88) and out.flows[-1].shape == (1, 2, 24, 22)


def test_round_trip(tmp_path):
    g = build_generator("gfla", dataset="market", **TINY).eval()
    save_generator(g, tmp_path / "g.safetensors")
    loaded = posetransfer.load_generator(tmp_path / "g.safetensors")
    assert loaded.arch == "gfla" and loaded.config == g.config
    inputs = batch((128, 64), b=1)
    with torch.no_grad():
        assert torch.equal(g(*inputs), loaded(*inputs))


def test_flow_net_input_selection_keeps_the_chosen_channels():
    g = build_generator("gfla", dataset="market", **TINY)
    state = {f"flow_net.{k}": v for k, v in g.flow_net.state_dict().items()}
    picked = select_flow_net_inputs(state, [3, 4, 21], prefix="flow_net.")
    assert picked["block0.model.2.weight"].shape[1] == 3 and picked["block0.model.0.weight"].shape == (3,)
    assert torch.equal(picked["block0.model.2.weight"][:, 2], g.flow_net.block0.model[2].weight[:, 21])
    assert torch.equal(picked["encoder0.model.2.weight"], g.flow_net.encoder0.model[2].weight)


@pytest.mark.parametrize("kwargs, match", [
    ({"attn_layers": [2, 3], "kernel_sizes": [3]}, "equally long"),
    ({"attn_layers": [5], "kernel_sizes": [3]}, "attention layers"),
    ({"norm": "group"}, "norm"),
    ({"bogus": 1}, "bogus"),
    ({"max_channels": 2}, "cap"),
])
def test_bad_options_are_model_errors(kwargs, match):
    with pytest.raises(ModelError, match=match):
        build_generator("gfla", dataset="market", **{**TINY, **kwargs})


def test_bad_inputs_are_one_line_model_errors():
    g = build_generator("gfla", dataset="market", **TINY)
    image, src, tgt = batch((128, 64), b=1)
    with pytest.raises(ModelError, match="target heatmaps"):
        g(image, src, tgt[:, :17])
    with pytest.raises(ModelError, match="do not match"):
        g(image, src, F.interpolate(tgt, size=(64, 32)))
    with pytest.raises(ModelError, match="too small"):
        g(*(F.interpolate(x, size=(16, 16)) for x in (image, src, tgt)))
    with pytest.raises(ModelError, match="dataset"):
        gfla_contract("celeba")


def test_models_catalog_lists_gfla_at_its_released_frames():
    from posetransfer.models.summary import catalog

    entry = next(e for e in catalog() if e["name"] == "gfla")
    assert entry["params_deepfashion"] == 14_047_395 and entry["params_market"] == 12_926_471
    assert entry["input_deepfashion"].startswith("3×256×256")
