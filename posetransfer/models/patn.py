"""PATN — Progressive Pose Attention Transfer Network (Zhu et al., "Progressive
Pose Attention Transfer for Person Image Generation", CVPR 2019; journal version with APATN in IEEE TPAMI).

Structure: image encoder ``stream1_down`` (3 → 256 ch at 1/4 size), pose encoder ``stream2_down``
(S_c ‖ S_t, 36 → 256 ch), T Pose-Attentional Transfer Blocks ``att.{i}`` and the transposed-conv decoder
``stream1_up``. Module names and ``nn.Sequential`` index layouts are those of the official code
(tengteng95/Pose-Transfer, ``PATNModel``), so an official ``latest_net_netG.pth`` loads with
``strict=True`` once its ``model.`` prefix and its InstanceNorm running statistics are dropped
(:mod:`posetransfer.models.official`).

PATB (eqs. 1–4 of the TPAMI paper)::

    M    = sigmoid(conv_S(F_S))                 # element-wise mask in [0, 1], 256×h×w
    F_P' = M * conv_P(F_P) + F_P                # "add" (ablation: concat/add switches below)
    F_S' = conv_S(F_S) ‖ F_P'                   # "cat" — the pre-sigmoid pose code with the new image code

Parameter count (DeepFashion settings: ngf 64, instance norm, 9 blocks): 41,358,019 = 41.36 M (paper Table 2);
blocks 2..T have 4,719,872 = 4.72 M parameters each (block 1: 2,359,808, its pose path sees 256 channels).
Market settings (batch norm): 41,365,763.

Where the papers are silent or disagree, and what we do:

* conv_S / conv_P layer lists: the CVPR text says the *first* conv of the pose path halves the depth when
  t > 1; the official code halves in the *second* conv. We follow the code — only it gives 41.36 M / 4.72 M.
* conv_P has no internal identity skip; the residual is eq. 3. conv_S has no final norm (code).
* Norm: CVPR / code use batch norm on Market and instance norm on DeepFashion (presets ``market`` /
  ``deepfashion``); the TPAMI paper says instance norm everywhere — pass ``norm="instance"`` for that.
* Dropout 0.5 inside the blocks only (both papers); the dropout slot is kept at p=0 when disabled.
* Decoder: transposed convs (CVPR and code; the parameter count proves the reported PATN used it).
* Ablations (TPAMI Table 5 / CVPR Table 4): ``residual=False`` is "w/o add" (F_P' = M * conv_P(F_P));
  ``concat=False`` is "w/o cat" (F_S' = conv_S(F_S), so every pose path stays 256 → 256 wide).
* Init: N(0, 0.02) for conv weights (official ``init_type='normal'``).
"""
from __future__ import annotations

import torch
from torch import nn

from .base import Generator, GeneratorOutput
from .blocks import (check_dropout, conv_pair, encoder, init_normal, resolve_dataset, transposed_decoder,
                     with_resolved_config)
from .registry import register_generator

DEFAULTS = {
    "ngf": 64,
    "n_blocks": 9,
    "norm": "instance",
    "dropout": 0.5,
    "pose_channels": 18,
    "residual": True,   # False = ablation "PATB w/o add"
    "concat": True,     # False = ablation "PATB w/o cat"
}


class PATBlock(nn.Module):
    """One Pose-Attentional Transfer Block; ``conv_block_stream1`` = conv_P, ``conv_block_stream2`` = conv_S."""

    def __init__(self, dim: int, norm: str, dropout: float, pose_in: int, residual: bool = True,
                 concat: bool = True) -> None:
        super().__init__()
        self.residual, self.concat = residual, concat
        self.conv_block_stream1 = conv_pair(dim, dim, dim, norm, dropout, final_norm=True)
        self.conv_block_stream2 = conv_pair(pose_in, pose_in, dim, norm, dropout, final_norm=False)

    def forward(self, image_code: torch.Tensor, pose_code: torch.Tensor):
        pose_out = self.conv_block_stream2(pose_code)
        mask = torch.sigmoid(pose_out)
        image_out = mask * self.conv_block_stream1(image_code)
        if self.residual:
            image_out = image_out + image_code
        pose_next = torch.cat((pose_out, image_out), 1) if self.concat else pose_out
        return image_out, pose_next, mask


class PATN(Generator):
    arch = "patn"

    def __init__(self, ngf: int = 64, n_blocks: int = 9, norm: str = "instance", dropout: float = 0.5,
                 pose_channels: int = 18, residual: bool = True, concat: bool = True) -> None:
        super().__init__()
        dropout = check_dropout(dropout)
        self.pose_channels = pose_channels
        dim = ngf * 4
        self.stream1_down = encoder(3, ngf, norm)
        self.stream2_down = encoder(2 * pose_channels, ngf, norm)
        self.att = nn.ModuleList(
            PATBlock(dim, norm, dropout, pose_in=2 * dim if (i > 0 and concat) else dim,
                     residual=residual, concat=concat)
            for i in range(n_blocks)
        )
        self.stream1_up = transposed_decoder(ngf, 3, norm)
        init_normal(self)

    def generate(self, source_image, source_heatmaps, target_heatmaps) -> GeneratorOutput:
        image_code = self.stream1_down(source_image)
        pose_code = self.stream2_down(torch.cat((source_heatmaps, target_heatmaps), 1))
        masks = []
        for block in self.att:
            image_code, pose_code, mask = block(image_code, pose_code)
            masks.append(mask)
        return GeneratorOutput(image=self.stream1_up(image_code), attention=masks)


@register_generator("patn")
def build_patn(dataset: str | None = None, **overrides) -> PATN:
    """``build_generator("patn", dataset="market"|"deepfashion", n_blocks=..., ...)``."""
    dataset, config = resolve_dataset(dataset, DEFAULTS, overrides)
    return with_resolved_config(PATN(**config), dataset, config)
