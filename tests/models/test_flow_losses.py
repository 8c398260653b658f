"""Sampling-correctness and affine-regularisation losses of the part-flow model."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from posetransfer.errors import ModelError
from posetransfer.models.base import GeneratorOutput
from posetransfer.models.flow_losses import (_max_similarity, affine_regularization_loss, correctness_map,
                                             default_kernel_size, sampling_correctness_loss)


class StandIn(torch.nn.Module):
    """A fixed random conv net: 'relu3_1' at 1/4, 'relu4_1' at 1/8 (VGG's resolutions), counts its calls."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a = torch.nn.Conv2d(3, 16, 3, 2, 1)
        self.b = torch.nn.Conv2d(16, 32, 3, 2, 1)
        self.c = torch.nn.Conv2d(32, 32, 3, 2, 1)
        self.calls = 0
        self.requires_grad_(False)

    def forward(self, x):
        self.calls += 1
        a = torch.relu(self.a(x))
        b = torch.relu(self.b(a))
        return {"relu3_1": b, "relu4_1": torch.relu(self.c(b))}


def textured(h=64, w=32, seed=0, base=4):
    gen = torch.Generator().manual_seed(seed)
    noise = torch.rand(1, 3, h // base, w // base, generator=gen)
    return F.interpolate(noise, size=(h, w), mode="bilinear") * 2 - 1


def shifted(image, dx):
    """image content moved ``dx`` pixels to the right (zero-padded)."""
    out = torch.zeros_like(image)
    out[..., dx:] = image[..., :-dx]
    return out


def test_identical_images_and_zero_flow_cost_nothing():
    vgg, img = StandIn(), textured()
    loss = sampling_correctness_loss(vgg, img, img, [torch.zeros(1, 2, 16, 8), torch.zeros(1, 2, 8, 4)])
    assert abs(float(loss)) < 1e-5
    assert vgg.calls == 2                       # source and target once each, shared by all flows


def test_the_true_flow_beats_zero_flow():
    vgg = StandIn()
    source = textured(seed=1)
    target = shifted(source, 8)                 # target(x) = source(x - 8): flow dx = -8 px = -2 at 1/4
    inside = torch.zeros(1, 1, 16, 8)
    inside[..., 3:] = 1                         # where the target has content from inside the source
    zero = sampling_correctness_loss(vgg, source, target, [torch.zeros(1, 2, 16, 8)], masks=[inside])
    true_flow = torch.zeros(1, 2, 16, 8)
    true_flow[:, 0] = -2.0                      # the features are at 1/4: 8 image px = 2 feature px
    right = sampling_correctness_loss(vgg, source, target, [true_flow], masks=[inside])
    assert float(right) < 0.25 * float(zero)


def test_gradient_descent_on_a_global_translation_recovers_the_shift():
    vgg = StandIn()
    source = textured(seed=1, base=16)          # smooth texture: the loss is smooth in the shift
    target = shifted(source, 8)
    inside = torch.zeros(1, 1, 16, 8)
    inside[..., 3:] = 1
    shift = torch.zeros(2, requires_grad=True)
    optim = torch.optim.Adam([shift], lr=0.15)
    losses = []
    for _ in range(40):
        loss = sampling_correctness_loss(vgg, source, target, [shift.view(1, 2, 1, 1).expand(1, 2, 16, 8)],
                                         masks=[inside])
        losses.append(float(loss.detach()))
        optim.zero_grad()
        loss.backward()
        optim.step()
    assert losses[-1] < 0.1 * losses[0]
    assert shift[0].item() == pytest.approx(-2.0, abs=0.3) and abs(shift[1].item()) < 0.2


def test_flows_use_the_vgg_layer_of_their_resolution():
    vgg = StandIn()
    source, target = textured(seed=2), textured(seed=3)
    coarse, fine = torch.zeros(1, 2, 8, 4), torch.zeros(1, 2, 16, 8)
    feats_s, feats_t = vgg(source), vgg(target)
    expected_fine = correctness_map(feats_s["relu3_1"], feats_t["relu3_1"], fine).mean()
    expected_coarse = correctness_map(feats_s["relu4_1"], feats_t["relu4_1"], coarse).mean()
    torch.testing.assert_close(sampling_correctness_loss(vgg, source, target, [fine]), expected_fine)
    torch.testing.assert_close(sampling_correctness_loss(vgg, source, target, [coarse, fine]),
                               expected_coarse + expected_fine)


def test_masks_restrict_the_loss_to_the_part_region():
    vgg = StandIn()
    source, target = textured(seed=4), textured(seed=5)
    flow = torch.zeros(1, 2, 16, 8)
    full = sampling_correctness_loss(vgg, source, target, [flow])
    ones = sampling_correctness_loss(vgg, source, target, [flow], masks=[torch.ones(1, 1, 16, 8)])
    torch.testing.assert_close(full, ones)
    zeros = sampling_correctness_loss(vgg, source, target, [flow], masks=[torch.zeros(1, 1, 16, 8)])
    assert float(zeros) == 0
    top = torch.zeros(1, 1, 16, 8)
    top[..., :8, :] = 1
    loss_map = correctness_map(vgg(source)["relu3_1"], vgg(target)["relu3_1"], flow)
    torch.testing.assert_close(sampling_correctness_loss(vgg, source, target, [flow], masks=[top]),
                               loss_map[:, :8].mean())
    # a GeneratorOutput brings its own per-flow masks
    out = GeneratorOutput(image=source, flows=[flow], extras={"flow_masks": [top]})
    torch.testing.assert_close(sampling_correctness_loss(vgg, source, target, out), loss_map[:, :8].mean())
    with pytest.raises(ModelError, match="2 masks for 1 flows"):
        sampling_correctness_loss(vgg, source, target, [flow], masks=[top, top])


def test_chunked_max_similarity_matches_the_full_matrix():
    torch.manual_seed(0)
    s, t = torch.randn(2, 8, 6, 5), torch.randn(2, 8, 6, 5)
    sn = F.normalize(s.flatten(2), dim=1)
    tn = F.normalize(t.flatten(2), dim=1)
    full = (sn.transpose(1, 2) @ tn).amax(dim=1)
    torch.testing.assert_close(_max_similarity(s, t, chunk=7), full)


def _brute_force_affine(flow, k):
    """Mean over k×k windows of the least-squares affine-fit residual, x and y summed (GFLA definition)."""
    b, _, h, w = flow.shape
    ys, xs = torch.meshgrid(torch.arange(k, dtype=torch.float64), torch.arange(k, dtype=torch.float64),
                            indexing="ij")
    a = torch.stack([xs.flatten(), ys.flatten(), torch.ones(k * k, dtype=torch.float64)], 1)
    total, count = 0.0, 0
    for n in range(b):
        for i in range(h - k + 1):
            for j in range(w - k + 1):
                for c in range(2):
                    grid = torch.arange(w if c == 0 else h, dtype=torch.float64)
                    coords = flow[n, c, i:i + k, j:j + k].double() + (
                        grid[j:j + k].view(1, k) if c == 0 else grid[i:i + k].view(k, 1))
                    sol = torch.linalg.lstsq(a, coords.reshape(-1, 1)).solution
                    total += float(((a @ sol).flatten() - coords.flatten()).pow(2).sum())
                count += 1
    return total / count


def test_affine_regulariser_matches_its_definition_and_ignores_affine_flows():
    torch.manual_seed(0)
    noise = torch.randn(2, 2, 7, 6)
    assert float(affine_regularization_loss([noise], kernel_sizes=3)) == pytest.approx(
        _brute_force_affine(noise, 3), rel=1e-4)
    ys, xs = torch.meshgrid(torch.arange(20.0), torch.arange(12.0), indexing="ij")
    affine = torch.stack([0.3 * xs - 0.2 * ys + 4, 0.1 * xs + 0.5 * ys - 1])[None]
    assert float(affine_regularization_loss([affine, affine[..., ::2, ::2]])) < 1e-6
    assert float(affine_regularization_loss([noise])) > 0.1
    assert default_kernel_size((64, 44)) == 5 and default_kernel_size((32, 22)) == 3
    assert default_kernel_size((32, 16)) == 3


def test_gradients_reach_the_flow_only():
    vgg = StandIn()
    flow = torch.randn(1, 2, 16, 8, requires_grad=True)
    loss = sampling_correctness_loss(vgg, textured(seed=6), textured(seed=7), [flow]) + \
        affine_regularization_loss([flow])
    loss.backward()
    assert flow.grad is not None and flow.grad.abs().sum() > 0
    assert all(p.grad is None for p in vgg.parameters())
    assert math.isfinite(float(loss.detach()))
