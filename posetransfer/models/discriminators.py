"""The PATN-family discriminators: appearance D_A(P_c, P) and shape D_S(S_t, P) (PATN CVPR'19 §3.3, TPAMI §3.4).

Both have the same structure and differ only in their input channels (D_A: image ‖ source image = 6,
D_S: image ‖ target heatmaps = 3 + 18 = 21): ReflectionPad3 – Conv7×7 (ndf) – N – act, two stride-2 3×3
convs (2·ndf, 4·ndf), ``n_blocks`` residual blocks, optional sigmoid. The single ``model`` Sequential has
the official ``ResnetDiscriminator`` index layout, so official ``netD_PB`` (shape, 21 ch) / ``netD_PP``
(appearance, 6 ch) state dicts load with strict=True.

Choices where paper and official code differ (both are available):

* Output: ``output="features"`` is the official score map — the 256-channel 1/4-resolution feature map
  itself, every element compared with the label; ``output="patch"`` adds a 3×3 conv to a 1-channel patch map.
* Activation: the papers say LeakyReLU 0.2 after every conv / norm (``activation="leaky"``, default); the
  official code uses ReLU (``activation="relu"``, set when converting official weights). The residual
  blocks' inner activation follows the same switch.
* Dropout: the official code puts Dropout(0.5) in D's residual blocks (``dropout=0.5``); the papers say dropout
  is only in the generator blocks (``dropout=0``).
* ``n_blocks=0`` is the CVPR ablation "w/o resD".
* Init: PyTorch defaults, as the official code (it never calls ``init_weights`` on D).
* The product form of the adversarial loss (D_A · D_S) is the trainer's business, not the network's.
"""
from __future__ import annotations

import torch
from torch import nn

from .blocks import ResnetBlock, check_dropout, conv_bias, norm_factory
from .registry import register_discriminator

ACTIVATIONS = ("leaky", "relu")


def _act(kind: str) -> nn.Module:
    if kind == "leaky":
        return nn.LeakyReLU(0.2, True)
    if kind == "relu":
        return nn.ReLU(True)
    from ..errors import ModelError

    raise ModelError(f"unknown activation {kind!r}; expected one of {', '.join(ACTIVATIONS)}")


class ResnetDiscriminator(nn.Module):
    def __init__(self, input_nc: int, ndf: int = 64, n_blocks: int = 3, norm: str = "batch",
                 dropout: float = 0.5, output: str = "features", use_sigmoid: bool = False,
                 activation: str = "leaky") -> None:
        super().__init__()
        from ..errors import ModelError

        if output not in ("features", "patch"):
            raise ModelError(f"discriminator output must be 'features' or 'patch', got {output!r}")
        if n_blocks < 0:
            raise ModelError(f"discriminator n_blocks must be >= 0, got {n_blocks}")
        dropout = check_dropout(dropout)
        make_norm, bias = norm_factory(norm), conv_bias(norm)
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ndf, 7, bias=bias), make_norm(ndf),
                                   _act(activation)]
        for i in range(2):
            c = ndf * 2 ** i
            layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1, bias=bias), make_norm(2 * c), _act(activation)]
        for _ in range(n_blocks):
            block = ResnetBlock(ndf * 4, norm, dropout)
            block.conv_block[3] = _act(activation)
            layers.append(block)
        if output == "patch":
            layers.append(nn.Conv2d(ndf * 4, 1, 3, padding=1))
        if use_sigmoid:
            layers.append(nn.Sigmoid())
        self.model = nn.Sequential(*layers)
        self.input_nc = input_nc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


@register_discriminator("patn_resnet")
def build_patn_resnet(input_nc: int, ndf: int = 64, n_blocks: int = 3, norm: str = "batch", dropout: float = 0.5,
                      output: str = "features", use_sigmoid: bool = False, activation: str = "leaky",
                      ) -> ResnetDiscriminator:
    """``build_discriminator("patn_resnet", input_nc=21, norm="instance", output="patch")``."""
    return ResnetDiscriminator(input_nc, ndf, n_blocks, norm, dropout, output, use_sigmoid, activation)
