"""Unconditional residual discriminator with spectral norm (GFLA ``ResDiscriminator``), registry name
``spectral_resnet`` — the D of the structure-aware part-flow model.

The AAAI'21 paper only gives the adversarial loss ``E[log(1 − D(G(I_s, P_s, P_t)))] + E[log D(I_t)]``
(eq. 12): D sees the image alone, no pose, no source. Its layout is unspecified; we use GFLA's (the paper
builds on GFLA throughout):

    block0   = ResBlockEncoder(input_nc → ndf)                  every block halves the resolution
    encoderi = ResBlockEncoder(ndf·2^i → ndf·2^(i+1), capped at max_channels), i = 0 … n_layers−2
    conv     = LReLU – Conv1×1 → 1                                patch logits, B×1×H/2^n×W/2^n

    ResBlockEncoder(cin → cout): [LReLU – Conv3×3 (cin → cin) – LReLU – Conv4×4 s2 (cin → cout)]
                                 + [AvgPool2 – Conv1×1 (cin → cout)]

No normalisation, LeakyReLU(0.1), spectral norm on every conv
(``torch.nn.utils.parametrizations.spectral_norm``). GFLA settings: ndf 32, cap 128, 4 layers on
DeepFashion, 3 on Market (``dataset="deepfashion"|"market"``). Init: orthogonal, gain 0.02 (GFLA).
The hidden width of block i (i ≥ 1) is its input width, as in GFLA.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ..errors import ModelError
from .blocks import resolve_dataset, with_resolved_config
from .registry import register_discriminator

DEFAULTS: dict[str, Any] = {"input_nc": 3, "ndf": 32, "max_channels": 128, "n_layers": 4, "spectral": True}
DATASET_SETTINGS: dict[str, dict[str, Any]] = {"market": {"n_layers": 3}, "deepfashion": {"n_layers": 4}}


def _sn(module: nn.Module, use: bool) -> nn.Module:
    return spectral_norm(module) if use else module


class ResBlockEncoder(nn.Module):
    def __init__(self, cin: int, cout: int, hidden: int, spectral: bool) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.LeakyReLU(0.1), _sn(nn.Conv2d(cin, hidden, 3, 1, 1), spectral),
                                   nn.LeakyReLU(0.1), _sn(nn.Conv2d(hidden, cout, 4, 2, 1), spectral))
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), _sn(nn.Conv2d(cin, cout, 1), spectral))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) + self.shortcut(x)


class SpectralResDiscriminator(nn.Module):
    def __init__(self, input_nc: int = 3, ndf: int = 32, max_channels: int = 128, n_layers: int = 4,
                 spectral: bool = True) -> None:
        super().__init__()
        if n_layers < 1 or ndf < 1 or input_nc < 1:
            raise ModelError(f"spectral_resnet needs n_layers, ndf, input_nc ≥ 1 (got {n_layers}, {ndf}, {input_nc})")
        self.input_nc = input_nc
        self.block0 = ResBlockEncoder(input_nc, ndf, ndf, spectral)
        width = ndf
        blocks = []
        for i in range(n_layers - 1):
            nxt = min(ndf * 2 ** (i + 1), max(max_channels, ndf))
            blocks.append(ResBlockEncoder(width, nxt, width, spectral))
            width = nxt
        self.encoders = nn.ModuleList(blocks)
        self.act = nn.LeakyReLU(0.1)
        self.conv = _sn(nn.Conv2d(width, 1, 1), spectral)
        self.n_layers = n_layers
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                weight = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
                nn.init.orthogonal_(weight, gain=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.input_nc:
            raise ModelError(f"spectral_resnet expects B×{self.input_nc}×H×W input, got {tuple(x.shape)}")
        out = self.block0(x)
        for block in self.encoders:
            out = block(out)
        return self.conv(self.act(out))


@register_discriminator("spectral_resnet")
def build_spectral_resnet(dataset: str | None = None, **overrides: Any) -> SpectralResDiscriminator:
    """``build_discriminator("spectral_resnet", dataset="market", input_nc=3)``."""
    dataset, config = resolve_dataset(dataset, DEFAULTS, overrides, DATASET_SETTINGS, kind="spectral_resnet")
    return with_resolved_config(SpectralResDiscriminator(**config), dataset, config)
