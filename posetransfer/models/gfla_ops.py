"""GFLA's three CUDA extensions (Ren et al., CVPR'20; RenYurui/Global-Flow-Local-Attention) in pure,
vectorised PyTorch with autograd — they run on any device, CPU included, and need no compiler.

``block_extractor(source, flow, k)`` (GFLA ``BlockExtractor``)
    For every position (x, y) of the flow (B×2×h×w, pixel offsets (dx, dy) in the *source's* pixels), the
    k×k block of the source around (x + dx, y + dy), bilinearly sampled, laid out as one B×C×(k·h)×(k·w)
    image: ``out[y·k + i, x·k + j] = bilinear(source, x + dx + j − ⌊k/2⌋, y + dy + i − ⌊k/2⌋)``. The kernel
    clamps the two integer neighbours of a sample to the image but computes the weights from the unclamped
    position, which is exactly ``grid_sample(padding_mode="border", align_corners=True)``: a sample left of
    the image takes the first column, one right of it the last, and its gradient with respect to the flow
    is 0 there (the two clamped neighbours are the same pixel) — the same as border padding's.
    With a zero flow every sample is an integer pixel: :func:`local_blocks` computes that case exactly
    with a replicate pad and ``unfold`` (GFLA extracts the *target* blocks that way).

``local_attn_reshape(weights, k)`` (GFLA ``LocalAttnReshape``)
    B×k²×h×w → B×1×(k·h)×(k·w) with ``out[y·k + i, x·k + j] = weights[i·k + j, y, x]``: this is exactly
    ``pixel_shuffle(weights, k)``.

``resample2d(source, flow, kernel_size, dilation, sigma)`` (GFLA ``Resample2d``; the sampler of its
sampling-correctness loss, ``Resample2d(4, 1, sigma=2)``)
    A Gaussian-weighted neighbourhood instead of a bilinear interpolation. With (xf, yf) = (x + dx, y + dy),
    α = xf − ⌊xf⌋, β = yf − ⌊yf⌋ and n = ⌊kernel_size / 2⌋, the taps along x are ⌊xf⌋ − f·d (distance f·d + α)
    and ⌊xf⌋ + (f+1)·d (distance (f+1)·d − α) for f = 0 … n−1, each weighted exp(−dist² / 2σ²), the same along
    y; the output is Σ w_y w_x source[clamp(y_tap), clamp(x_tap)] / Σ w_y w_x over all (2n)² tap pairs. The
    indices are clamped to the image (border), the weights use the unclamped distances; an even and an odd
    kernel size with the same n are the same sampler (3 → a 2×2 neighbourhood, 1 → none: the output is 0,
    the kernel's ``SAFE_DIV`` of 0 by 0). The output has the flow's size; the source may be larger.
    Gradients are PyTorch's of this forward. (The CUDA backward for the source computes α with ``int()``,
    i.e. truncation, which differs from its forward's ``floor`` for negative positions; autograd here is the
    exact derivative of the forward everywhere the floor is constant.)

Every op takes and returns float tensors of any floating dtype; the sampling positions are computed in the
flow's dtype but at least float32 (half precision would misplace them under autocast; float64 in the
gradient checks). The literal loop transliterations of the three kernels that
these functions are tested against are in ``tests/models/test_gfla_ops.py``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from ..errors import ModelError

#: the CUDA kernels' ``SAFE_DIV`` epsilon
EPS = 1e-8


def _check(source: torch.Tensor, flow: torch.Tensor, what: str) -> None:
    if source.dim() != 4 or flow.dim() != 4 or flow.shape[1] != 2 or flow.shape[0] != source.shape[0]:
        raise ModelError(f"{what}: expects source B×C×H×W and flow B×2×h×w, got {tuple(source.shape)} and "
                         f"{tuple(flow.shape)}")


def _check_kernel(kernel_size: int, what: str) -> int:
    k = int(kernel_size)
    if k < 1:
        raise ModelError(f"{what}: kernel size must be ≥ 1, got {kernel_size}")
    return k


def local_attn_reshape(weights: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """B×k²×h×w → B×1×(k·h)×(k·w): ``out[y·k + i, x·k + j] = weights[i·k + j, y, x]`` (a pixel shuffle)."""
    k = _check_kernel(kernel_size, "local_attn_reshape")
    if weights.dim() != 4 or weights.shape[1] != k * k:
        raise ModelError(f"local_attn_reshape: expects B×{k * k}×h×w weights for kernel {k}, "
                         f"got {tuple(weights.shape)}")
    return F.pixel_shuffle(weights, k)


def _position_dtype(flow: torch.Tensor) -> torch.dtype:
    """Sampling positions in at least float32: a half-precision flow (autocast) would put them 1/32 px off."""
    return torch.promote_types(flow.dtype, torch.float32)


def _normalise(position: torch.Tensor, size: int) -> torch.Tensor:
    """Pixel coordinate → ``grid_sample`` coordinate (align_corners=True; a 1-pixel axis maps to pixel 0)."""
    return position * (2.0 / max(size - 1, 1)) - 1.0


def block_extractor(source: torch.Tensor, flow: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """The k×k bilinear block of ``source`` around every flow target, as a B×C×(k·h)×(k·w) image."""
    _check(source, flow, "block_extractor")
    k = _check_kernel(kernel_size, "block_extractor")
    b, _, h, w = flow.shape
    hs, ws = source.shape[2:]
    dtype, device = _position_dtype(flow), flow.device
    flow = flow.to(dtype)
    offsets = torch.arange(k, device=device, dtype=dtype) - k // 2
    xs = torch.arange(w, device=device, dtype=dtype).view(1, 1, w)
    ys = torch.arange(h, device=device, dtype=dtype).view(1, h, 1)
    px = (xs + flow[:, 0]).view(b, h, 1, w, 1) + offsets.view(1, 1, 1, 1, k)     # B×h×1×w×k
    py = (ys + flow[:, 1]).view(b, h, 1, w, 1) + offsets.view(1, 1, k, 1, 1)     # B×h×k×w×1
    gx = _normalise(px, ws).expand(b, h, k, w, k).reshape(b, h * k, w * k)
    gy = _normalise(py, hs).expand(b, h, k, w, k).reshape(b, h * k, w * k)
    grid = torch.stack((gx, gy), dim=3)
    sampled = F.grid_sample(source.to(dtype), grid, mode="bilinear", padding_mode="border", align_corners=True)
    return sampled.to(source.dtype)


def local_blocks(source: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """:func:`block_extractor` with a zero flow, exactly: every k×k block around each pixel (border replicated)."""
    k = _check_kernel(kernel_size, "local_blocks")
    if source.dim() != 4:
        raise ModelError(f"local_blocks: expects B×C×H×W, got {tuple(source.shape)}")
    b, c, h, w = source.shape
    before, after = k // 2, k - 1 - k // 2
    padded = F.pad(source, (before, after, before, after), mode="replicate") if k > 1 else source
    blocks = F.unfold(padded, k).view(b, c, k, k, h, w)                          # B×C×i×j×y×x
    return blocks.permute(0, 1, 4, 2, 5, 3).reshape(b, c, h * k, w * k)


def _gaussian_taps(position: torch.Tensor, n: int, dilation: int, sigma: float, size: int):
    """Along one axis: (clamped integer taps, Gaussian weights), each a list of 2n tensors shaped like ``position``."""
    base = torch.floor(position)
    frac = position - base
    base = base.long()
    denom = 2.0 * sigma * sigma
    taps, weights = [], []
    for f in range(n):
        for offset, distance in ((-f * dilation, f * dilation + frac), ((f + 1) * dilation, (f + 1) * dilation - frac)):
            taps.append((base + offset).clamp(0, size - 1))
            weights.append(torch.exp(-distance * distance / denom))
    return taps, weights


def _resample(source: torch.Tensor, flow: torch.Tensor, kernel_size: int, dilation: int, sigma: float):
    b, c, hs, ws = source.shape
    h, w = flow.shape[2:]
    n = kernel_size // 2
    if n == 0:                                                    # no taps: SAFE_DIV(0, 0) = 0
        return source.new_zeros(b, c, h, w)
    flow = flow.to(_position_dtype(flow))
    xs = torch.arange(w, device=flow.device, dtype=flow.dtype).view(1, 1, w)
    ys = torch.arange(h, device=flow.device, dtype=flow.dtype).view(1, h, 1)
    x_taps, x_weights = _gaussian_taps(xs + flow[:, 0], n, dilation, sigma, ws)   # each B×h×w
    y_taps, y_weights = _gaussian_taps(ys + flow[:, 1], n, dilation, sigma, hs)
    flat = source.reshape(b, c, hs * ws)
    total = source.new_zeros(b, c, h * w)
    for ty, wy in zip(y_taps, y_weights):
        for tx, wx in zip(x_taps, x_weights):
            index = (ty * ws + tx).view(b, 1, h * w).expand(b, c, h * w)
            total = total + (wy * wx).view(b, 1, h * w).to(source.dtype) * torch.gather(flat, 2, index)
    weight_sum = (sum(y_weights) * sum(x_weights)).view(b, 1, h * w).to(source.dtype)
    out = torch.where(weight_sum == 0, total / EPS, total / torch.where(weight_sum == 0, 1.0, weight_sum))
    return out.view(b, c, h, w)


def resample2d(source: torch.Tensor, flow: torch.Tensor, kernel_size: int = 4, dilation: int = 1,
               sigma: float = 2.0) -> torch.Tensor:
    """GFLA's Gaussian resampler: ``source`` (B×C×H×W) sampled at (x + dx, y + dy) for every flow pixel.

    Under autograd the taps are recomputed in the backward pass (``torch.utils.checkpoint``): the (2n)²
    gathered copies of the source would otherwise be kept, 16× the source features for GFLA's kernel 4.
    """
    _check(source, flow, "resample2d")
    k = _check_kernel(kernel_size, "resample2d")
    if int(dilation) < 1 or not float(sigma) > 0:
        raise ModelError(f"resample2d: dilation must be ≥ 1 and sigma > 0, got {dilation}, {sigma}")
    if torch.is_grad_enabled() and (source.requires_grad or flow.requires_grad):
        return checkpoint(_resample, source, flow, k, int(dilation), float(sigma), use_reentrant=False)
    return _resample(source, flow, k, int(dilation), float(sigma))
