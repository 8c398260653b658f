"""Winograd F(2×2, 3×3) convolution for the inference fast path: the same 3×3 convolution, 2.25× fewer
multiplications.

Why: PATN's eval-mode time is almost all convolutions, which oneDNN's direct kernel already runs near a
CPU's fp32 peak, so fusing the memory-bound ops cannot make it much faster; fewer multiplications can. Winograd's minimal filtering computes each 2×2 output tile from a 4×4 input tile with 16 products per
channel pair instead of 36:

    Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A

(Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016). The 16 element-wise products,
summed over input channels, are 16 independent matrix products (tiles × C) @ (C × K); they run as one
grouped 1×1 oneDNN convolution with pre-packed weights, which runs closer to the direct convolution's
throughput than 16 ``torch.bmm`` calls do (figures: ``benchmarks/results/fast_winograd_notes.md``). The transforms Bᵀ d B and Aᵀ m A only add and subtract (coefficients 0, ±1), done in place on
channels-last tiles. Results equal the direct convolution up to float32 rounding (max |Δ| ~1e-5 on PATN's
activations; the transforms' coefficients are exact in binary).

Used by :func:`posetransfer.models.fast.optimize_for_inference` for 3×3, stride-1 convolutions, unpadded
(PATN's ``RefPad1 – Conv3×3`` pairs) or zero-padded by 1 (PoNA's blocks), with at least :data:`MIN_CHANNELS` input and output channels, where it is
measured faster; smaller convolutions keep the direct kernel.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: Winograd pays off only on wide convolutions (the grouped GEMM must amortise the transforms)
MIN_CHANNELS = 128

#: bytes of transformed tiles per step: small enough to stay in cache (large batches are processed a few
#: samples, or a strip of tile rows, at a time — one sample's tiles at 256×176 are 11 MB)
CHUNK_BYTES = 8 * 2 ** 20

#: G of F(2, 3): the 4×3 filter transform
_G = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0))


def eligible(conv: nn.Module) -> bool:
    """A plain float32 Conv2d this module can replace exactly."""
    return (type(conv) is nn.Conv2d and conv.kernel_size == (3, 3) and conv.stride == (1, 1)
            and conv.dilation == (1, 1) and conv.groups == 1
            and (conv.padding == (0, 0) or (conv.padding == (1, 1) and conv.padding_mode == "zeros"))
            and conv.weight.dtype == torch.float32
            and min(conv.in_channels, conv.out_channels) >= MIN_CHANNELS)


def transform_weight(weight: torch.Tensor) -> torch.Tensor:
    """(K, C, 3, 3) filters → (16·K, C, 1, 1) weight of the grouped 1×1 convolution: group t = 4a + b holds
    (G g Gᵀ)[a, b] for every (output, input) channel pair."""
    g = torch.tensor(_G, dtype=torch.float64)
    u = torch.einsum("ai,kcij,bj->abkc", g, weight.double(), g)
    k, c = weight.shape[:2]
    return u.reshape(16 * k, c, 1, 1).to(weight.dtype).contiguous()


def _input_transform(xp: torch.Tensor) -> torch.Tensor:
    """(N, Hp, Wp, C) padded input → V (N·th·tw, 16, C) = Bᵀ d B for every 4×4 tile d (stride 2).

    Bᵀ = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]: rows first on strided row views of the
    whole input (4 ops), then columns straight into V's 16 slots (16 ops).
    """
    n, hp, wp, c = xp.shape
    th, tw = (hp - 2) // 2, (wp - 2) // 2
    rows = [xp[:, i:i + 2 * th:2] for i in range(4)]            # (N, th, Wp, C): rows 2·y + i
    r = torch.empty(4, n, th, wp, c, dtype=xp.dtype, device=xp.device)
    torch.sub(rows[0], rows[2], out=r[0])
    torch.add(rows[1], rows[2], out=r[1])
    torch.sub(rows[2], rows[1], out=r[2])
    torch.sub(rows[1], rows[3], out=r[3])
    v = torch.empty(n, th, tw, 16, c, dtype=xp.dtype, device=xp.device)
    for a in range(4):
        cols = [r[a][:, :, j:j + 2 * tw:2] for j in range(4)]    # (N, th, tw, C): columns 2·x + j
        torch.sub(cols[0], cols[2], out=v[:, :, :, 4 * a])
        torch.add(cols[1], cols[2], out=v[:, :, :, 4 * a + 1])
        torch.sub(cols[2], cols[1], out=v[:, :, :, 4 * a + 2])
        torch.sub(cols[1], cols[3], out=v[:, :, :, 4 * a + 3])
    return v


def _output_transform(m: torch.Tensor, out: torch.Tensor) -> None:
    """m (N, th, tw, 16, K) → out (N, 2·th, 2·tw, K) = Aᵀ m A per tile, Aᵀ = [[1, 1, 1, 0], [0, 1, -1, -1]]."""
    n, th, tw = m.shape[:3]
    k = m.shape[-1]
    s = torch.empty(2, n, th, tw, 4, k, dtype=m.dtype, device=m.device)   # rows combined, per column b
    mv = m.view(n, th, tw, 4, 4, k)
    torch.add(mv[:, :, :, 0], mv[:, :, :, 1], out=s[0]).add_(mv[:, :, :, 2])
    torch.sub(mv[:, :, :, 1], mv[:, :, :, 2], out=s[1]).sub_(mv[:, :, :, 3])
    tiles = out.view(n, th, 2, tw, 2, k)
    for i in range(2):
        torch.add(s[i][..., 0, :], s[i][..., 1, :], out=tiles[:, :, i, :, 0]).add_(s[i][..., 2, :])
        torch.sub(s[i][..., 1, :], s[i][..., 2, :], out=tiles[:, :, i, :, 1]).sub_(s[i][..., 3, :])


class WinogradConv2d(nn.Module):
    """A 3×3 stride-1 ``Conv2d`` (+ optional ReLU) computed with Winograd F(2×2, 3×3); eval/CPU only.

    The 16 tile products run through ``product`` (a :class:`~posetransfer.models.fast.PackedConv2d` of the
    grouped 1×1 convolution); inputs it cannot take (odd output size, other dtypes, autograd) go through the
    direct convolution with the original weight.
    """

    def __init__(self, conv: nn.Conv2d, activation: str = "none", product: nn.Module | None = None) -> None:
        super().__init__()
        if not eligible(conv):
            raise ValueError(f"not a Winograd-eligible convolution: {conv}")
        if activation not in ("none", "relu"):
            raise ValueError(f"unsupported activation {activation!r}")
        self.weight = nn.Parameter(conv.weight.detach().clone(), requires_grad=False)
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone(), requires_grad=False)
        self.activation = activation
        self.padding = conv.padding[0]
        grouped = nn.Conv2d(16 * conv.in_channels, 16 * conv.out_channels, 1, groups=16, bias=False)
        grouped.weight.data.copy_(transform_weight(self.weight.detach()))
        self.product = product(grouped) if product is not None else grouped

    def extra_repr(self) -> str:
        return f"Winograd F(2x2,3x3) {tuple(self.weight.shape)}, padding={self.padding}, post_op={self.activation}"

    def _direct(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(x, self.weight, self.bias, padding=self.padding)
        return F.relu(y) if self.activation == "relu" else y

    def _tiles(self, xl: torch.Tensor, out: torch.Tensor) -> None:
        """Convolve a block of the channels-last padded input ``xl`` into the matching block of ``out``."""
        n, hp, wp, c = xl.shape
        th, tw = (hp - 2) // 2, (wp - 2) // 2
        v = _input_transform(xl)                                          # (n, th, tw, 16, C)
        grouped_in = v.view(1, n * th * tw, 16 * c, 1).permute(0, 2, 1, 3)  # NCHW view of channels-last data
        m = self.product(grouped_in)                                      # (1, 16K, P, 1), channels-last
        _output_transform(m.permute(0, 2, 3, 1).reshape(n, th, tw, 16, out.shape[-1]), out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        p = self.padding
        hp, wp = h + 2 * p, w + 2 * p
        if (x.device.type != "cpu" or x.dtype != torch.float32 or hp % 2 or wp % 2 or hp < 4 or wp < 4
                or (torch.is_grad_enabled() and x.requires_grad)):
            return self._direct(x)
        th, tw = (hp - 2) // 2, (wp - 2) // 2
        k = self.weight.shape[0]
        if p:                                                             # zero border, channels-last copy
            xl = x.new_zeros(n, hp, wp, c)
            xl[:, p:-p, p:-p].copy_(x.permute(0, 2, 3, 1))
        else:
            xl = x.permute(0, 2, 3, 1)                                    # (N, Hp, Wp, C) view
        out = torch.empty(n, 2 * th, 2 * tw, k, dtype=x.dtype)
        budget = max(1, CHUNK_BYTES // (16 * max(c, k) * x.element_size()))   # tiles per step
        if th * tw <= budget:                                             # whole samples
            step = budget // (th * tw)
            for i in range(0, n, step):
                self._tiles(xl[i:i + step], out[i:i + step])
        else:                                                             # strips of tile rows
            rows = max(1, budget // tw)
            for i in range(n):
                for y in range(0, th, rows):
                    y1 = min(th, y + rows)
                    self._tiles(xl[i:i + 1, 2 * y:2 * y1 + 2], out[i:i + 1, 2 * y:2 * y1])
        if self.bias is not None:
            out += self.bias
        if self.activation == "relu":
            out.relu_()
        return out.permute(0, 3, 1, 2)                                    # channels-last (N, K, H, W)
