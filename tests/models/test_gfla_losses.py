"""GFLA's flow losses as the trainer computes them for ``gfla`` (flow_losses + the hints in the generator's
extras) against GFLA's formulations written out here: ``PerceptualCorrectness`` with its Gaussian
``Resample2d(4, 1, sigma=2)`` and ``AffineRegularizationLoss`` built on the block extractor."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from posetransfer.models import flow_losses
from posetransfer.models.gfla_ops import block_extractor, local_attn_reshape, resample2d
from posetransfer.models.registry import build_generator

TINY = dict(ngf=4, max_channels=16, flow_ngf=4, flow_max_channels=8)


def stand_in_vgg():
    torch.manual_seed(0)
    a, b, c = torch.nn.Conv2d(3, 8, 3, 2, 1), torch.nn.Conv2d(8, 16, 3, 2, 1), torch.nn.Conv2d(16, 16, 3, 2, 1)

    def features(x):
        f3 = torch.relu(b(torch.relu(a(x))))
        return {"relu3_1": f3, "relu4_1": torch.relu(c(f3))}

    return features


def gfla_correctness(vgg, target, source, flows, layers):
    """GFLA PerceptualCorrectness.__call__ / calculate_loss (mask None), flows coarse → fine."""
    eps = 1e-8
    t_vgg, s_vgg = vgg(target), vgg(source)
    loss = 0
    for flow, layer in zip(flows, layers):
        tv, sv = t_vgg[layer], s_vgg[layer]
        b, c, h, w = tv.shape
        flow = F.interpolate(flow, [h, w])
        target_all = tv.view(b, c, -1)
        source_all = sv.view(b, c, -1).transpose(1, 2)
        source_norm = source_all / (source_all.norm(dim=2, keepdim=True) + eps)
        target_norm = target_all / (target_all.norm(dim=1, keepdim=True) + eps)
        correction_max = torch.bmm(source_norm, target_norm).max(dim=1)[0]
        sample = resample2d(sv, flow, 4, 1, 2.0).view(b, c, -1)
        loss_map = torch.exp(-F.cosine_similarity(sample, target_all) / (correction_max + eps))
        loss = loss + torch.mean(loss_map) - math.exp(-1)
    return loss


def gfla_affine_regularization(flow, kz):
    """GFLA AffineRegularizationLoss: the least-squares affine residual via conv2d + block extractor.

    Computed in float64: GFLA applies the kernel to absolute coordinates (flow + pixel grid), whose float32
    rounding leaves a residual of ~1e-4 for an affine field on a 32×16 grid; ours uses the flow alone
    (the kernel annihilates the affine pixel grid), so only the float64 result is the one to compare with.
    """
    flow = flow.double()
    temp = np.arange(kz)
    a = np.ones([kz * kz, 3])
    a[:, 0] = temp.repeat(kz)
    a[:, 1] = temp.repeat(kz).reshape((kz, kz)).transpose().reshape(kz ** 2)
    k = a @ np.linalg.inv(a.T @ a) @ a.T - np.identity(kz ** 2)
    kernel = torch.from_numpy(k.T @ k).view(kz ** 2, 1, kz, kz)
    b, _, h, w = flow.shape
    xs = torch.arange(w).view(1, -1).expand(h, -1).double()
    ys = torch.arange(h).view(-1, 1).expand(-1, w).double()
    grid = flow + torch.stack([xs, ys], 0).unsqueeze(0)
    total = 0
    for axis in range(2):
        g = grid[:, axis:axis + 1]
        results = F.conv2d(g, kernel)
        rb, _, rh, rw = results.shape
        kernels_new = local_attn_reshape(results, kz)
        offset = torch.zeros(rb, 2, rh, rw, dtype=torch.float64) + float(kz // 2)
        grid_h = block_extractor(g, offset, kz)
        total = total + torch.mean(F.avg_pool2d(grid_h * kernels_new, kz, kz)) * kz ** 2
    return total


def inputs(size, b=2):
    gen = torch.Generator().manual_seed(1)
    return [torch.rand(b, c, *size, generator=gen) * (2 if c == 3 else 1) - (1 if c == 3 else 0) for c in (3, 18, 18)]


def test_correctness_loss_of_gfla_is_gflas_with_its_gaussian_sampler():
    g = build_generator("gfla", dataset="deepfashion", **TINY)
    image, src, tgt = inputs((64, 64))
    target = torch.rand(2, 3, 64, 64) * 2 - 1
    out = g.predict_flows(image, src, tgt)
    out.flows = [f * 10 for f in out.flows]          # large flows: the samplers differ most
    vgg = stand_in_vgg()
    ours = flow_losses.sampling_correctness_loss(vgg, image, target, out)
    reference = gfla_correctness(vgg, target, image, out.flows, ["relu4_1", "relu3_1"])
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6)
    bilinear = flow_losses.sampling_correctness_loss(vgg, image, target, out.flows)   # no hint: bilinear warp
    assert abs(float(bilinear.detach()) - float(reference.detach())) > 1e-4


def test_affine_regulariser_uses_the_attention_kernels_and_equals_gflas():
    g = build_generator("gfla", dataset="deepfashion", **TINY)
    out = g.predict_flows(*inputs((64, 64)))
    out.flows = [torch.randn_like(f) * 3 for f in out.flows]
    assert out.extras["regularization_kernels"] == [3, 5]
    reference = sum(gfla_affine_regularization(f, k) for f, k in zip(out.flows, [3, 5]))
    torch.testing.assert_close(flow_losses.affine_regularization_loss(out).double(), reference, rtol=1e-4, atol=1e-6)
    market = build_generator("gfla", dataset="market", **TINY, kernel_sizes=[5])
    out = market.predict_flows(*inputs((128, 64)))
    assert out.extras["regularization_kernels"] == [5]        # not the size-based default (3 at 32×16)
    torch.testing.assert_close(flow_losses.affine_regularization_loss(out).double(),
                               gfla_affine_regularization(out.flows[0], 5), rtol=1e-3, atol=1e-9)
