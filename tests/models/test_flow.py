"""The structure-aware part-flow generator (`flow`): shapes and gradients at both dataset sizes, the warp
convention, the pyramid non-local block against the explicit softmax formulation, ablations, save/load."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import posetransfer
from posetransfer.data.keypoints import heatmaps
from posetransfer.errors import ModelError
from posetransfer.models.base import GeneratorOutput
from posetransfer.models.flow import (PyramidNonLocal, non_local_attention, relation_map, resize_flow, warp)
from posetransfer.models.registry import build_generator
from posetransfer.modelfile import save_generator

TINY = dict(ngf=4, max_channels=16, flow_ngf=4, flow_max_channels=8)
SIZES = {"market": (128, 64), "deepfashion": (256, 176)}

# a standing person in (y, x) at 128×64; scaled for other sizes
STANDING = np.array([
    [14, 32], [26, 32], [26, 24], [42, 21], [57, 20], [26, 40], [42, 43], [57, 44],
    [62, 27], [87, 27], [112, 27], [62, 37], [87, 37], [112, 37], [12, 30], [12, 34], [13, 27], [13, 37],
])


def person_maps(size, shift=0, raise_arm=False):
    kp = STANDING.copy().astype(float)
    if raise_arm:
        kp[3] = [14, 18]
        kp[4] = [2, 16]
    kp[:, 1] += shift
    kp = np.rint(kp * [size[0] / 128, size[1] / 64]).astype(np.int64)
    kp[:, 0] = kp[:, 0].clip(0, size[0] - 1)
    kp[:, 1] = kp[:, 1].clip(0, size[1] - 1)
    return torch.from_numpy(heatmaps(kp, size, sigma=6 * size[0] / 128))


def make_batch(preset, batch=2):
    size = SIZES[preset]
    gen = torch.Generator().manual_seed(3)
    image = torch.rand(batch, 3, *size, generator=gen) * 2 - 1
    src = torch.stack([person_maps(size, shift=i) for i in range(batch)])
    tgt = torch.stack([person_maps(size, shift=-3, raise_arm=True) for _ in range(batch)])
    return image, src, tgt


@pytest.mark.parametrize("preset", ["market", "deepfashion"])
def test_shapes_and_every_parameter_gets_a_gradient(preset):
    g = build_generator("flow", dataset=preset, **TINY)
    image, src, tgt = make_batch(preset)
    out = g(image, src, tgt, return_extras=True)
    h, w = SIZES[preset]
    assert isinstance(out, GeneratorOutput)
    assert out.image.shape == (2, 3, h, w)
    assert out.image.min() >= -1 and out.image.max() <= 1
    scales = [4] if preset == "market" else [8, 4]
    assert out.extras["flow_names"] == [f"{p}@1/{s}" for p in ("head", "torso", "leg") for s in scales]
    assert len(out.flows) == len(out.visibility) == len(out.extras["flow_masks"]) == 3 * len(scales)
    for name, flow, vis, mask in zip(out.extras["flow_names"], out.flows, out.visibility, out.extras["flow_masks"]):
        s = int(name.split("/")[1])
        assert flow.shape == (2, 2, h // s, w // s)
        assert vis.shape == mask.shape == (2, 1, h // s, w // s)
        assert 0 <= float(vis.detach().min()) and float(vis.detach().max()) <= 1
    assert set(out.extras["relations"]) == {"4", "6"}
    for key, rel in out.extras["relations"].items():
        n = int(key) ** 2
        assert rel.shape == (2, n, n)
        torch.testing.assert_close(rel.sum(-1), torch.ones(2, n))
    assert out.extras["warped"].shape == image.shape
    # plain call returns the image only
    assert torch.is_tensor(g(image, src, tgt))

    loss = out.image.square().mean() + sum(f.square().mean() for f in out.flows)
    g.zero_grad(set_to_none=True)
    loss.backward()
    missing = [n for n, p in g.named_parameters() if p.grad is None]
    zero = [n for n, p in g.named_parameters() if p.grad is not None and not bool(p.grad.abs().sum() > 0)]
    assert not missing and not zero, (missing, zero)


def test_image_loss_alone_reaches_the_flow_networks():
    """The generated image depends on the flows through the warp and on the visibility maps."""
    g = build_generator("flow", dataset="market", **TINY)
    image, src, tgt = make_batch("market")
    g(image, src, tgt).mean().backward()
    for name, p in g.flow_nets.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_translation_flow_moves_the_image_by_the_expected_pixels():
    """Convention: out(x, y) = source(x + dx, y + dy), (dx, dy) in pixels of the flow's resolution."""
    gen = torch.Generator().manual_seed(0)
    img = torch.rand(1, 3, 20, 30, generator=gen)
    flow = torch.zeros(1, 2, 20, 30)
    flow[:, 0], flow[:, 1] = 3.0, -2.0
    out = warp(img, flow)
    # content moves 3 px left and 2 px down: out[y, x] == img[y - 2, x + 3]
    torch.testing.assert_close(out[..., 2:, :-3], img[..., :-2, 3:])
    # sampled outside the source: zeros (up to float rounding of the normalised coordinates)
    assert out[..., :2, :].abs().max() < 1e-5 and out[..., :, -3:].abs().max() < 1e-5


def test_low_resolution_flow_is_rescaled_to_pixels_of_the_target_resolution():
    """A ramp image (value = x) warped with a 1/4-res flow of dx = d gives x + d·(W-1)/(w-1) (align_corners)."""
    h, w = 64, 32
    ramp = torch.arange(w, dtype=torch.float32).view(1, 1, 1, w).expand(1, 1, h, w).contiguous()
    flow = torch.zeros(1, 2, h // 4, w // 4)
    flow[:, 0] = 1.0
    out = warp(ramp, flow)          # flow resized inside
    factor = (w - 1) / (w // 4 - 1)
    expected = ramp + factor
    inside = expected < w - 1
    torch.testing.assert_close(out[inside], expected[inside])
    big = resize_flow(flow, (h, w))
    torch.testing.assert_close(big[:, 0], torch.full((1, h, w), factor))
    assert torch.all(big[:, 1] == 0)


def test_pyramid_non_local_uses_sdpa_and_matches_the_explicit_softmax():
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 36, 8), torch.randn(2, 36, 8), torch.randn(2, 36, 5)
    explicit = torch.softmax(q @ k.transpose(1, 2), dim=-1) @ v
    torch.testing.assert_close(non_local_attention(q, k, v), explicit, rtol=1e-5, atol=1e-5)

    block = PyramidNonLocal(16, scales=(4, 6))
    for m in block.modules():   # weights large enough that the relation maps are far from uniform
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.normal_(m.weight, 0, 0.3)
    x = torch.randn(2, 16, 16, 12)
    out, relations = block(x)
    reference = x.clone()
    for s in (4, 6):
        cells = F.adaptive_max_pool2d(x, s)
        theta = block.theta[str(s)](cells).flatten(2)              # B×C'×N
        phi = block.phi[str(s)](cells).flatten(2)
        g = block.g[str(s)](cells).flatten(2)
        rel = torch.softmax(theta.transpose(1, 2) @ phi, dim=-1)   # R = softmax(θᵀφ), rows = target cells
        y = (g @ rel.transpose(1, 2)).reshape(2, -1, s, s)
        reference = reference + F.interpolate(block.out[str(s)](y), size=(16, 12), mode="bilinear",
                                              align_corners=False)
        torch.testing.assert_close(relations[str(s)], rel, rtol=1e-5, atol=1e-6)
        assert rel.max() > 5.0 / (s * s)                           # not a trivial uniform map
    torch.testing.assert_close(out, reference, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(relation_map(torch.eye(3)[None], torch.eye(3)[None]).sum(-1), torch.ones(1, 3))


def test_ablation_switches():
    image, src, tgt = make_batch("market", batch=1)
    full = build_generator("flow", dataset="market", **TINY)
    n_full = sum(p.numel() for p in full.parameters())

    no_parts = build_generator("flow", dataset="market", use_parts=False, **TINY)
    out = no_parts(image, src, tgt, return_extras=True)
    assert list(no_parts.flow_nets) == ["body"] and out.extras["flow_names"] == ["body@1/4"]
    assert torch.all(out.extras["source_masks"] == 1)              # the whole source image is warped
    assert no_parts.flow_nets["body"].encoder[0][2].in_channels == 36

    no_pnb = build_generator("flow", dataset="market", pnb=False, **TINY)
    out = no_pnb(image, src, tgt, return_extras=True)
    assert no_pnb.pnb is None and "relations" not in out.extras

    no_hdcb = build_generator("flow", dataset="market", hdcb=False, **TINY)
    assert all(isinstance(m, torch.nn.Identity) for m in no_hdcb.hdcb.values())
    no_hdcb(image, src, tgt)
    for model in (no_parts, no_pnb, no_hdcb):
        assert sum(p.numel() for p in model.parameters()) < n_full

    hdcb = full.hdcb["torso"].model
    assert [m.dilation for m in hdcb if isinstance(m, torch.nn.Conv2d)] == [(1, 1), (2, 2)]


def test_part_flow_nets_see_only_their_sub_pose():
    g = build_generator("flow", dataset="market", **TINY)
    assert {n: net.encoder[0][2].in_channels for n, net in g.flow_nets.items()} == {"head": 12, "torso": 18,
                                                                                    "leg": 12}
    image, src, tgt = make_batch("market", batch=1)
    out = g(image, src, tgt, return_extras=True)
    leg_only = tgt.clone()
    leg_only[:, [0, 14, 15, 16, 17, 2, 3, 4, 5, 6, 7]] = 0     # remove head and arm joints (keeps neck, hips, legs)
    again = g(image, src, leg_only, return_extras=True)
    names = out.extras["flow_names"]
    torch.testing.assert_close(again.flows[names.index("leg@1/4")], out.flows[names.index("leg@1/4")])
    assert not torch.allclose(again.flows[names.index("head@1/4")], out.flows[names.index("head@1/4")])


def test_predict_flows_runs_only_the_flow_networks():
    g = build_generator("flow", dataset="deepfashion", **TINY)
    image, src, tgt = make_batch("deepfashion", batch=1)
    out = g.predict_flows(image, src, tgt)
    assert out.image.shape == image.shape and len(out.flows) == 6 and len(out.visibility) == 6
    (sum(f.sum() for f in out.flows) + sum(v.sum() for v in out.visibility)).backward()
    flow_ids = {id(p) for p in g.flow_parameters()}
    assert flow_ids and all((p.grad is not None) == (id(p) in flow_ids) for p in g.parameters())


def test_round_trip_and_registry(tmp_path):
    g = build_generator("flow", dataset="deepfashion", pnb=True, **TINY).eval()
    path = tmp_path / "flow.safetensors"
    save_generator(g, path)
    loaded = posetransfer.load_generator(path)
    assert loaded.arch == "flow" and loaded.config == g.config
    image, src, tgt = make_batch("deepfashion", batch=1)
    with torch.no_grad():
        torch.testing.assert_close(g(image, src, tgt), loaded(image, src, tgt), rtol=0, atol=0)


@pytest.mark.parametrize("kwargs, match", [
    ({"flow_scales": [2]}, "flow_scales"),
    ({"flow_scales": [64, 4]}, "flow_layers"),
    ({"part_joints": {"head": [0, 99]}}, "joint index 99"),
    ({"bogus": 1}, "bogus"),
    ({"pnb_pool": "median"}, "pnb_pool"),
])
def test_bad_options_are_model_errors(kwargs, match):
    with pytest.raises(ModelError, match=match):
        build_generator("flow", dataset="market", **{**TINY, **kwargs})


def test_bad_inputs_are_one_line_model_errors():
    g = build_generator("flow", dataset="market", **TINY)
    image, src, tgt = make_batch("market", batch=1)
    with pytest.raises(ModelError, match="target heatmaps"):
        g(image, src, tgt[:, :17])
    with pytest.raises(ModelError, match="do not match"):
        g(image, src, F.interpolate(tgt, size=(64, 32)))
    with pytest.raises(ModelError, match="too small"):
        small = F.interpolate(image, size=(16, 16))
        g(small, F.interpolate(src, size=(16, 16)), F.interpolate(tgt, size=(16, 16)))
