"""Winograd F(2×2, 3×3) convolution for the inference fast path: the same 3×3 convolution, 2.25× fewer
multiplications.

Why: PATN's eval-mode time is almost all convolutions, which oneDNN's direct kernel already runs near a
CPU's fp32 peak, so fusing the memory-bound ops cannot make it much faster; fewer multiplications can. Winograd's minimal filtering computes each 2×2 output tile from a 4×4 input tile with 16 products per
channel pair instead of 36:

    Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A

(Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016). The 16 element-wise products,
summed over input channels, are 16 independent matrix products (tiles × C) @ (C × K); they run as one
grouped 1×1 oneDNN convolution with pre-packed weights, which runs closer to the direct convolution's
throughput than 16 ``torch.bmm`` calls do (figures: ``benchmarks/results/fast_winograd_notes.md``). The
transforms Bᵀ d B and Aᵀ m A only add and subtract (coefficients 0, ±1), done on channels-last tiles in 6 and 8
element-wise ops over strided views, into scratch buffers reused from call to call (:class:`_Workspace`); the
bias is added by the tile product itself (one slot reaches every output of a tile with coefficient 1). Few,
large ops and no fresh multi-megabyte buffers matter as much as the arithmetic: every op ends in a barrier of
the thread pool (see :mod:`posetransfer.runtime` for why that is costly on a busy machine), and a fresh buffer
that large costs page faults. Results equal the direct convolution up to float32 rounding (max |Δ| ~1e-5 on
PATN's activations; the transforms' coefficients are exact in binary).

Used by :func:`posetransfer.models.fast.optimize_for_inference` for 3×3, stride-1 convolutions, unpadded
(PATN's ``RefPad1 – Conv3×3`` pairs) or zero-padded by 1 (PoNA's blocks), with at least :data:`MIN_CHANNELS` input and output channels (what it can replace, :func:`eligible`) and
wide enough to pay (:func:`pays`); the others keep the direct kernel.
"""
from __future__ import annotations

import math
import threading

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import skip_init

#: Winograd pays off only on wide convolutions (the grouped GEMM must amortise the transforms)
MIN_CHANNELS = 128

#: the fewest multiply-adds per transformed float at which Winograd pays (see :func:`pays`)
MIN_INTENSITY = 160

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


def pays(conv: nn.Module) -> bool:
    """An :func:`eligible` convolution wide enough for Winograd to be faster than the direct kernel.

    Why a rule on the widths: per 4×4 tile, the transforms are memory-bound passes over 16·(C + K) floats
    (tiles in, tile products out, each written and read again), while the tile products do 16·C·K
    multiply-adds; their ratio C·K / (C + K) says how much arithmetic each transformed float carries. At 128
    (PATN's 256→256 blocks) the passes cost about what the 2.25× fewer multiplications save — measured
    slower than the direct kernel at both datasets' frames, and slower still at 256×176, where the tiles
    of one sample no longer fit the cache — while the 512-input convolutions (171 and 256) gain at every
    frame and batch measured. Below :data:`MIN_INTENSITY` the direct kernel is kept.
    """
    c, k = conv.in_channels, conv.out_channels
    return eligible(conv) and c * k / (c + k) >= MIN_INTENSITY


def transform_weight(weight: torch.Tensor) -> torch.Tensor:
    """(K, C, 3, 3) filters → (16·K, C, 1, 1) weight of the grouped 1×1 convolution: group t = 4a + b holds
    (G g Gᵀ)[a, b] for every (output, input) channel pair (G's coefficients 0, ±1/2, 1 are exact in float32)."""
    g = torch.tensor(_G, dtype=torch.float32)
    u = torch.einsum("ai,kcij,bj->abkc", g, weight.detach().float(), g)
    k, c = weight.shape[:2]
    return u.reshape(16 * k, c, 1, 1).to(weight.dtype).contiguous()


class _Workspace(threading.local):
    """Scratch buffers reused by every Winograd convolution of a thread.

    Why: the transformed tiles of one chunk are megabytes, and a fresh allocation that large is served
    by new pages from the kernel — the page faults (zeroing every page) measured 15× the cost of writing
    the data into a buffer already mapped (9.8 ms vs 0.7 ms for 33 MB). Inference runs one convolution at
    a time per thread, so one buffer per role, grown to the largest chunk, serves them all. Per thread, so
    that two threads serving two requests never share one.
    """

    def __init__(self) -> None:
        self.buffers: dict[str, torch.Tensor] = {}

    def get(self, role: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        numel = math.prod(shape)
        buf = self.buffers.get(role)
        if buf is None or buf.numel() < numel or buf.dtype != like.dtype or buf.device != like.device:
            buf = torch.empty(numel, dtype=like.dtype, device=like.device)
            self.buffers[role] = buf
        return buf[:numel].view(shape)

    def clear(self) -> None:
        self.buffers.clear()


_WORKSPACE = _Workspace()


def release_workspace() -> None:
    """Free this thread's scratch buffers (they are kept between calls for speed)."""
    _WORKSPACE.clear()


def _input_transform(xp: torch.Tensor, v: torch.Tensor | None = None) -> torch.Tensor:
    """(N, Hp, Wp, C) padded input → V (N, th, tw, 16, C) = Bᵀ d B for every 4×4 tile d (stride 2).

    Bᵀ = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]: rows first, then columns, each pass in
    three element-wise ops over strided views (rows 0 and 3 of Bᵀ are both "i minus i + 2", so one op makes
    both). Few, large ops matter more than the arithmetic: each op ends in a barrier of the thread pool,
    and on a busy machine every barrier can wait for a preempted thread.
    """
    n, hp, wp, c = xp.shape
    th, tw = (hp - 2) // 2, (wp - 2) // 2
    sn, sh, sw, sc = xp.stride()
    off = xp.storage_offset()
    r = _WORKSPACE.get("rows", (4, n, th, wp, c), xp)

    def rows(i: int, count: int = 1) -> torch.Tensor:      # (count, N, th, Wp, C): rows 2·y + i + q
        return xp.as_strided((count, n, th, wp, c), (sh, sn, 2 * sh, sw, sc), off + i * sh)

    torch.sub(rows(0, 2), rows(2, 2), out=r[0::3])          # r0 = d0 - d2, r3 = d1 - d3
    torch.add(rows(1)[0], rows(2)[0], out=r[1])
    torch.sub(rows(2)[0], rows(1)[0], out=r[2])
    if v is None:
        v = torch.empty(n, th, tw, 16, c, dtype=xp.dtype, device=xp.device)
    rs = r.stride()

    def cols(j: int, count: int = 1) -> torch.Tensor:      # (4 a, N, th, tw, count, C): columns 2·x + j + q
        return r.as_strided((4, n, th, tw, count, c), (rs[0], rs[1], rs[2], 2 * rs[3], rs[3], rs[4]),
                            r.storage_offset() + j * rs[3])

    vp = v.view(n, th, tw, 4, 4, c).permute(3, 0, 1, 2, 4, 5)  # (a, N, th, tw, b, C)
    torch.sub(cols(0, 2), cols(2, 2), out=vp[:, :, :, :, 0::3])
    torch.add(cols(1)[..., 0, :], cols(2)[..., 0, :], out=vp[:, :, :, :, 1])
    torch.sub(cols(2)[..., 0, :], cols(1)[..., 0, :], out=vp[:, :, :, :, 2])
    return v


def _output_transform(m: torch.Tensor, out: torch.Tensor) -> None:
    """m (N, th, tw, 16, K) → out (N, 2·th, 2·tw, K) = Aᵀ m A per tile, Aᵀ = [[1, 1, 1, 0], [0, 1, -1, -1]]
    (8 element-wise ops: rows, then columns, each output row/column pair of every tile in one op)."""
    n, th, tw = m.shape[:3]
    k = m.shape[-1]
    s = _WORKSPACE.get("cols", (2, n, th, tw, 4, k), m)       # rows combined, per column b
    mv = m.view(n, th, tw, 4, 4, k)
    torch.add(mv[:, :, :, 0], mv[:, :, :, 1], out=s[0]).add_(mv[:, :, :, 2])
    torch.sub(mv[:, :, :, 1], mv[:, :, :, 2], out=s[1]).sub_(mv[:, :, :, 3])
    tiles = out.view(n, th, 2, tw, 2, k).permute(2, 0, 1, 3, 4, 5)   # (i, N, th, tw, j, K)
    torch.add(s[..., 0, :], s[..., 1, :], out=tiles[..., 0, :]).add_(s[..., 2, :])
    torch.sub(s[..., 1, :], s[..., 2, :], out=tiles[..., 1, :]).sub_(s[..., 3, :])


#: the tile slot t = 4·a + b whose product reaches all four outputs of a tile with coefficient 1
#: (Aᵀ[i, 1] = 1 for both rows i): adding the bias there adds it to every output
_BIAS_SLOT = 5


class WinogradConv2d(nn.Module):
    """A 3×3 stride-1 ``Conv2d`` (+ optional ReLU) computed with Winograd F(2×2, 3×3); eval/CPU only.

    The 16 tile products run through ``product`` (a :class:`~posetransfer.models.fast.PackedConv2d` of the
    grouped 1×1 convolution), which also adds the bias (in slot :data:`_BIAS_SLOT`, so the output transform
    needs no extra pass); inputs it cannot take (odd output size, other dtypes, autograd) go through the
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
        k = conv.out_channels
        grouped = skip_init(nn.Conv2d, 16 * conv.in_channels, 16 * k, 1, groups=16, bias=self.bias is not None)
        grouped.weight.data.copy_(transform_weight(self.weight.detach()))
        if self.bias is not None:
            grouped.bias.data.zero_()
            grouped.bias.data[_BIAS_SLOT * k:(_BIAS_SLOT + 1) * k] = self.bias.detach()
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
        v = _input_transform(xl, _WORKSPACE.get("tiles", (n, th, tw, 16, c), xl))
        grouped_in = v.view(1, n * th * tw, 16 * c, 1).permute(0, 2, 1, 3)  # NCHW view of channels-last data
        m = self.product(grouped_in)                                      # (1, 16K, P, 1), channels-last
        _output_transform(m.permute(0, 2, 3, 1).reshape(n, th, tw, 16, out.shape[-1]), out)

    def _padded(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) → channels-last (N, H + 2p, W + 2p, C) with a zero border (a view when p = 0)."""
        p = self.padding
        if not p:
            return x.permute(0, 2, 3, 1)
        n, c, h, w = x.shape
        xl = _WORKSPACE.get("padded", (n, h + 2 * p, w + 2 * p, c), x)
        xl[:, 0::h + 2 * p - 1].zero_()                                    # first and last row
        xl[:, :, 0::w + 2 * p - 1].zero_()                                 # first and last column
        xl[:, p:-p, p:-p].copy_(x.permute(0, 2, 3, 1))
        return xl

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        p = self.padding
        hp, wp = h + 2 * p, w + 2 * p
        if (x.device.type != "cpu" or x.dtype != torch.float32 or hp % 2 or wp % 2 or hp < 4 or wp < 4
                or (torch.is_grad_enabled() and x.requires_grad)):
            return self._direct(x)
        th, tw = (hp - 2) // 2, (wp - 2) // 2
        k = self.weight.shape[0]
        xl = self._padded(x)
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
        if self.activation == "relu":
            out.relu_()
        return out.permute(0, 3, 1, 2)                                    # channels-last (N, K, H, W)
