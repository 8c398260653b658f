"""ResNet generator baseline — the "Resnet generator (5/9/13 blocks)" rows of PATN's ablation (CVPR Table 4,
TPAMI Table 4): PATN with every PATB replaced by a vanilla residual block (Johnson et al. / pix2pix).

The papers do not say how the pose enters this baseline. We concatenate the source image, the source
heatmaps and the target heatmaps on the channel axis (3 + 2·18 = 39 channels) and feed one encoder, as the
pix2pix ``ResnetGenerator`` that PATN's code descends from does with its conditioning inputs. Everything else
matches PATN: the same encoder and transposed-conv decoder widths, residual blocks with reflection padding,
dropout 0.5 inside the blocks, batch norm (Market) / instance norm (DeepFashion), N(0, 0.02) init.

Parameters (ngf 64, instance norm): 491,392 (encoder) + 1,180,160 per block + 378,243 (decoder) — 6.77 M /
11.49 M / 16.21 M for 5 / 9 / 13 blocks; the papers do not report them.

The single ``model`` Sequential follows the pix2pix index layout (encoder 0–9, blocks, decoder).
"""
from __future__ import annotations

import torch
from torch import nn

from .base import Generator, GeneratorOutput
from .blocks import (ResnetBlock, check_dropout, encoder, init_normal, resolve_dataset, transposed_decoder,
                     with_resolved_config)
from .registry import register_generator

DEFAULTS = {"ngf": 64, "n_blocks": 9, "norm": "instance", "dropout": 0.5, "pose_channels": 18}


class ResnetGenerator(Generator):
    arch = "resnet"

    def __init__(self, ngf: int = 64, n_blocks: int = 9, norm: str = "instance", dropout: float = 0.5,
                 pose_channels: int = 18) -> None:
        super().__init__()
        dropout = check_dropout(dropout)
        self.pose_channels = pose_channels
        layers = list(encoder(3 + 2 * pose_channels, ngf, norm))
        layers += [ResnetBlock(ngf * 4, norm, dropout) for _ in range(n_blocks)]
        layers += list(transposed_decoder(ngf, 3, norm))
        self.model = nn.Sequential(*layers)
        init_normal(self)

    def generate(self, source_image, source_heatmaps, target_heatmaps) -> GeneratorOutput:
        return GeneratorOutput(image=self.model(torch.cat((source_image, source_heatmaps, target_heatmaps), 1)))


@register_generator("resnet")
def build_resnet(dataset: str | None = None, **overrides) -> ResnetGenerator:
    """``build_generator("resnet", dataset="market"|"deepfashion", n_blocks=5|9|13)``."""
    dataset, config = resolve_dataset(dataset, DEFAULTS, overrides)
    return with_resolved_config(ResnetGenerator(**config), dataset, config)
