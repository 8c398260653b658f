"""Flow losses of the structure-aware part-flow model: sampling correctness (paper eq. 9, after GFLA /
StructureFlow) and GFLA's optional affine regulariser. The image losses (L1, perceptual, style, GAN) are
the trainer's (posetransfer/losses.py).

Sampling correctness (Ren et al. 2019/2020; the AAAI'21 paper defers the details to its supplementary)::

    v_s, v_t   = VGG_l(I_s), VGG_l(I_t)                      l = relu3_1 for 1/4 flows, relu4_1 for 1/8
    μ(a, b)    = aᵀb / (‖a‖‖b‖)                               cosine similarity per position
    μ_max(p)   = max_q μ(v_s(q), v_t(p))                       best match anywhere in the source
    L          = mean_p m(p) · [exp(−μ(warp(v_s, W)(p), v_t(p)) / μ_max(p)) − e^{−1}]  /  mean_p m(p)

summed over every flow (parts × scales, eq. 9). ``m`` is the optional per-flow target mask: the part
flows are judged only inside their part's target box (``extras["flow_masks"]`` of the flow generator);
without masks the loss is GFLA's. The minimum of each term is 0 (a perfect sample of the best match).

The source side follows the generator: each part flow samples ``v_s = VGG_l(I_s ⊙ M_s^part)``, the masked
part image whose features that flow warps in the generator (``extras["flow_source_masks"]``), so μ_max is
also the best match *inside the part's source box*. With the unmasked source a part flow could earn a low
loss by pointing at similar-looking pixels of another part, which its warp would then read as zeros.
A generator without source masks (GFLA, the w/o-Part ablation) uses the whole source image, as GFLA.

Choices where the sources are silent or differ:

* VGG layer per flow: the returned feature whose spatial size equals the flow's; else the one closest in
  scale (GFLA pairs attn layer 2 → relu3_1, 3 → relu4_1, which have exactly those sizes). The flow is
  resized to the feature (:func:`posetransfer.models.flow.resize_flow`, values rescaled — GFLA's nearest
  interpolation does not rescale, which only matters when the sizes differ).
* Sampling: the generator's own sampler, ``extras["flow_sampler"]`` — the part-flow model's bilinear warp
  (the paper's, with its zeros / border padding), GFLA's Gaussian 4×4 resampler (σ 2,
  ``gfla_ops.resample2d``) for ``gfla``; bilinear with zeros padding when none is given.
* VGG features are computed without gradient (the images are data); the gradient reaches the flow
  through the bilinear sampling only. μ_max is computed in chunks so the N×N similarity matrix
  (2,816² at 64×44) is never held at once.

Affine regulariser (GFLA ``AffineRegularizationLoss``, not in the AAAI paper): for every k×k window of
absolute sampling coordinates C (x and y separately), the residual of the least-squares affine fit,
‖(A(AᵀA)⁻¹Aᵀ − I) C‖², averaged over windows and summed over x, y and flows. Identity and any affine
flow cost 0. Kernel: 5 for flows whose smaller side is ≥ 40 (DeepFashion 1/4), else 3 (GFLA:
DeepFashion 1/4 → 5, 1/8 → 3, Market 1/4 → 3).
"""
from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F

from ..errors import ModelError
from .base import GeneratorOutput
from .flow import resize_flow, warp

VGGCallable = Callable[[torch.Tensor], Mapping[str, torch.Tensor]]
Sampler = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

_EPS = 1e-8
_E_INV = math.exp(-1.0)


def _pick_layer(features: Mapping[str, torch.Tensor], size: Sequence[int]) -> str:
    """The feature whose spatial size matches ``size``, else the closest in log-scale."""
    h, w = int(size[0]), int(size[1])
    best, best_cost = None, None
    for name, feat in features.items():
        fh, fw = feat.shape[2:]
        cost = abs(math.log(fh / h)) + abs(math.log(fw / w))
        if best_cost is None or cost < best_cost:
            best, best_cost = name, cost
    if best is None:
        raise ModelError("vgg_features returned no feature maps")
    return best


def _max_similarity(source: torch.Tensor, target: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    """μ_max: for every target position, the best cosine similarity over all source positions. B×N."""
    b, c = source.shape[:2]
    s = F.normalize(source.flatten(2), dim=1, eps=_EPS)             # B×C×N
    t = F.normalize(target.flatten(2), dim=1, eps=_EPS)
    out = []
    for start in range(0, t.shape[2], chunk):
        sim = torch.bmm(s.transpose(1, 2), t[:, :, start:start + chunk])   # B×Ns×chunk
        out.append(sim.amax(dim=1))
    return torch.cat(out, dim=1)


def correctness_map(source_features: torch.Tensor, target_features: torch.Tensor, flow: torch.Tensor,
                    max_similarity: torch.Tensor | None = None, sampler: Sampler | None = None) -> torch.Tensor:
    """Per-position loss ``exp(−μ(warped, target)/μ_max) − e⁻¹`` (B×h×w) at the features' resolution.

    ``sampler(features, flow)`` samples the source features with a flow at their size (default: bilinear).
    """
    b, _, h, w = target_features.shape
    if max_similarity is None:
        max_similarity = _max_similarity(source_features, target_features)
    sampled = (sampler or warp)(source_features, resize_flow(flow, (h, w)))
    similarity = F.cosine_similarity(sampled, target_features, dim=1, eps=_EPS)   # B×h×w
    return torch.exp(-similarity / (max_similarity.view(b, h, w) + _EPS)) - _E_INV


def sampling_correctness_loss(vgg_features: VGGCallable, source: torch.Tensor, target: torch.Tensor,
                              flows: Sequence[torch.Tensor] | GeneratorOutput,
                              masks: Sequence[torch.Tensor | None] | None = None,
                              source_masks: Sequence[torch.Tensor | None] | None = None,
                              sampler: Sampler | None = None) -> torch.Tensor:
    """Sum over flows of the (masked) sampling-correctness loss; 0-dim tensor.

    ``vgg_features(x)`` returns ``{layer: B×C×h×w}`` for images in [-1, 1] (e.g.
    ``VGGFeatures(layers=("relu3_1", "relu4_1"))``). ``flows`` is a list of B×2×h×w pixel-offset flows, or
    a flow generator's :class:`GeneratorOutput` (then ``masks``, ``source_masks`` and ``sampler`` default to
    its ``extras["flow_masks"]``, ``extras["flow_source_masks"]`` and ``extras["flow_sampler"]``).
    ``masks``: one B×1×h×w weight map (or None) per flow, resized to the feature size. ``source_masks``: one
    B×1×H×W image mask (or None: the whole source) per flow; flows sharing a mask tensor share its features.
    """
    if isinstance(flows, GeneratorOutput):
        extras = flows.extras
        masks = extras.get("flow_masks") if masks is None else masks
        source_masks = extras.get("flow_source_masks") if source_masks is None else source_masks
        sampler = extras.get("flow_sampler") if sampler is None else sampler
        flows = flows.flows
    flows = list(flows)
    if not flows:
        raise ModelError("sampling_correctness_loss needs at least one flow field")
    for name, per_flow in (("masks", masks), ("source masks", source_masks)):
        if per_flow is not None and len(per_flow) != len(flows):
            raise ModelError(f"sampling_correctness_loss got {len(per_flow)} {name} for {len(flows)} flows")
    source_masks = list(source_masks) if source_masks is not None else [None] * len(flows)
    with torch.no_grad():
        target_features = dict(vgg_features(target))
    features: dict[int, dict[str, torch.Tensor]] = {}      # per source mask (id; None = unmasked)
    cache: dict[tuple[int, str], torch.Tensor] = {}
    total = flows[0].new_zeros(())
    for i, flow in enumerate(flows):
        key = id(source_masks[i]) if source_masks[i] is not None else 0
        if key not in features:
            with torch.no_grad():
                image = source if source_masks[i] is None else source * source_masks[i].to(source.dtype)
                features[key] = dict(vgg_features(image))
        layer = _pick_layer(target_features, flow.shape[2:])
        src, tgt = features[key][layer].float(), target_features[layer].float()
        if (key, layer) not in cache:
            with torch.no_grad():
                cache[key, layer] = _max_similarity(src, tgt)
        loss_map = correctness_map(src, tgt, flow.float(), cache[key, layer], sampler)
        mask = None if masks is None else masks[i]
        if mask is None:
            total = total + loss_map.mean()
        else:
            mask = F.adaptive_avg_pool2d(mask.float(), loss_map.shape[1:]).squeeze(1) \
                if mask.shape[2:] != loss_map.shape[1:] else mask.float().squeeze(1)
            total = total + (loss_map * mask).sum() / (mask.sum() + _EPS)
    return total


def default_kernel_size(size: Sequence[int]) -> int:
    """GFLA's affine-regulariser window for a flow of this size (see the module docstring)."""
    return 5 if min(int(size[0]), int(size[1])) >= 40 else 3


def _affine_residual_operator(k: int, device, dtype) -> torch.Tensor:
    """K = A(AᵀA)⁻¹Aᵀ − I for the k×k window coordinates A = [x, y, 1] (k²×k²)."""
    ys, xs = torch.meshgrid(torch.arange(k, dtype=torch.float64), torch.arange(k, dtype=torch.float64),
                            indexing="ij")
    a = torch.stack((xs.flatten(), ys.flatten(), torch.ones(k * k, dtype=torch.float64)), dim=1)
    projection = a @ torch.linalg.solve(a.T @ a, a.T)
    return (projection - torch.eye(k * k, dtype=torch.float64)).to(device=device, dtype=dtype)


def affine_regularization_loss(flows: Sequence[torch.Tensor] | GeneratorOutput,
                               kernel_sizes: int | Sequence[int] | None = None) -> torch.Tensor:
    """Sum over flows of the mean squared affine-fit residual of every k×k window (x and y summed).

    Window per flow: ``kernel_sizes``, else a generator output's ``extras["regularization_kernels"]`` (GFLA:
    its attention kernel sizes), else :func:`default_kernel_size`.
    """
    if isinstance(flows, GeneratorOutput):
        kernel_sizes = flows.extras.get("regularization_kernels") if kernel_sizes is None else kernel_sizes
        flows = flows.flows
    flows = list(flows)
    if isinstance(kernel_sizes, int):
        kernel_sizes = [kernel_sizes] * len(flows)
    total = flows[0].new_zeros(()) if flows else torch.zeros(())
    for i, flow in enumerate(flows):
        k = default_kernel_size(flow.shape[2:]) if kernel_sizes is None else int(kernel_sizes[i])
        h, w = flow.shape[2:]
        if h < k or w < k:
            continue
        operator = _affine_residual_operator(k, flow.device, torch.float32)
        # the identity grid is affine, so K annihilates it: the residual of the flow = that of the grid
        windows = F.unfold(flow.float().reshape(-1, 1, h, w), k)          # (2B)×k²×L
        residual = torch.einsum("ij,njl->nil", operator, windows)
        total = total + residual.pow(2).sum(dim=1).mean() * 2             # mean over windows, x + y summed
    return total
