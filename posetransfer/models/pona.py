"""PoNA — Pose-guided Non-local Attention (Li, Zhang et al., "PoNA: Pose-Guided
Non-Local Attention for Human Pose Transfer", IEEE TIP 2020; the arXiv preprint is technically identical).

Same two encoders and decoder as PATN (``stream1_down`` image, ``stream2_down`` S_c ‖ S_t, ``stream1_up``),
with T (default 3) PoNA blocks ``att.{i}`` in between. Module names follow the official DeepFashion model
(Zhangjinso/PoNA ``models/head3conv2.py``: ``Guided_Attn`` with ``att2`` / ``dconv`` / ``conv`` / ``conv2``
/ ``dconv2`` / ``query_conv`` / ``key_conv`` / ``value_conv`` / ``gamma``), so the released checkpoint loads
with ``strict=True`` after its ``model.`` prefix is stripped (:mod:`posetransfer.models.official`).

PoNA block t (image code x, pose code p)::

    f   = x ‖ p                                   # fusion code, 512 ch (image first, as the code)
    f   = γ_s·SelfAttn(f) + β_s·f + f            # SAGAN self-attention, γ_s = β_s = 0 at init
    f   = f + dconv(f)                            # pose pathway conv_P, part 1 (residual double conv)
    x   = x + conv(x);  x = x + conv2(x)          # image pathway conv_I (two residual double convs)
    p'  = dconv2(f)                               # conv_P part 2, 512 → 256: the updated pose code C_t^P
    A   = softmax(q(p') k(p')ᵀ)                   # pose-guided non-local attention, HW × HW, no scaling
    x'  = γ·(A · value(x)) + x                    # γ = 0 at init (eq. 7)

Parameter count (ngf 64, instance norm): 11,030,211 per block; 34,329,356 = 34.33 M with 3 blocks
(paper Table II: 34.33 M, the released DeepFashion model). With 2 blocks instance norm gives 23,299,145
(23.30 M) while Table II prints 23.31 M; batch norm everywhere (the paper's Market setting: affine norms
in the blocks, no conv biases before the encoder/decoder norms) gives 23,311,497 = 23.31 M, so the
2-block figure was most likely measured on a batch-norm model (3 blocks with batch norm: 34.35 M).

Where the paper is silent, and what we do:

* Layer lists of conv_P / conv_I, the residual connections inside them and Dropout(0.5) after the first
  conv of every double conv: taken from the official code (the paper only says "four conv layers").
* Attention source: the *updated* pose code (TIP eq. 5 and the code), query/key width C/8 = 32, a single
  value 1×1 conv and no output conv (W_h of eq. 6 is never used; the parameter count confirms it).
* Norm: the official double conv hard-codes InstanceNorm even though encoders/decoder follow ``--norm``;
  the paper says BN everywhere on Market-1501. We use ``norm`` for all layers (``market`` preset: batch,
  ``deepfashion``: instance, which is exactly the released model). Double-conv convs always have a bias.
* Convs inside the blocks use zero padding (code), unlike PATN's reflection padding.
* Ablations (Table IV): ``self_attention=False`` ("w/o Self."), ``cross_attention=False`` ("w/o Cro.").
  The fusion-place variants of Table V are not implemented (their layer arrangement is unspecified).
* Attention masks for ``return_extras``: the HW×HW matrices are in ``extras["attention_matrices"]``
  (and the fusion self-attention in ``extras["self_attention_matrices"]``); ``attention`` holds per-block
  B×1×h×w maps in [0, 1] — the attention each source position receives (see blocks.attention_summary).
  Without ``return_extras`` the attention runs through SDPA and no HW×HW matrix is stored.
"""
from __future__ import annotations

import torch
from torch import nn

from .base import AttentionMapGenerator, GeneratorOutput
from .blocks import (attend, attention_matrix, attention_summary, check_dropout, encoder, flatten_positions,
                     init_normal, norm_factory, resolve_dataset, transposed_decoder,
                     with_resolved_config)
from .registry import register_generator

DEFAULTS = {
    "ngf": 64,
    "n_blocks": 3,
    "norm": "instance",
    "dropout": 0.5,
    "pose_channels": 18,
    "self_attention": True,    # False = ablation "w/o Self."
    "cross_attention": True,   # False = ablation "w/o Cro."
}


class DoubleConv(nn.Module):
    """Conv3×3(in→in) – N – ReLU – Dropout – Conv3×3(in→out) – N – ReLU (+ identity); official ``double_conv``."""

    def __init__(self, in_ch: int, out_ch: int, norm: str, dropout: float, residual: bool) -> None:
        super().__init__()
        make_norm = norm_factory(norm)
        self.residual = residual
        self.conv = nn.Sequential(
            nn.Conv2d(in_ch, in_ch, 3, padding=1), make_norm(in_ch), nn.ReLU(True), nn.Dropout(dropout),
            nn.Conv2d(in_ch, out_ch, 3, padding=1), make_norm(out_ch), nn.ReLU(True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return x + y if self.residual else y


class SelfAttention(nn.Module):
    """SAGAN self-attention on the fusion code: γ·attn(v) + β·x + x, γ = β = 0 at init."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.query_conv = nn.Conv2d(dim, dim // 8, 1)
        self.key_conv = nn.Conv2d(dim, dim // 8, 1)
        self.value_conv = nn.Conv2d(dim, dim, 1)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.beta = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, keep: bool = False):
        b, c, h, w = x.shape
        q, k = flatten_positions(self.query_conv(x)), flatten_positions(self.key_conv(x))
        v = flatten_positions(self.value_conv(x))
        matrix = attention_matrix(q, k) if keep else None
        o = matrix @ v if keep else attend(q, k, v)
        o = o.transpose(1, 2).reshape(b, c, h, w)
        return self.gamma * o + self.beta * x + x, matrix


class GuidedAttn(nn.Module):
    """One PoNA block (official ``Guided_Attn``)."""

    def __init__(self, dim: int, norm: str, dropout: float, self_attention: bool = True,
                 cross_attention: bool = True) -> None:
        super().__init__()
        self.cross_attention = cross_attention
        if cross_attention:
            self.query_conv = nn.Conv2d(dim, dim // 8, 1)
            self.key_conv = nn.Conv2d(dim, dim // 8, 1)
            self.value_conv = nn.Conv2d(dim, dim, 1)
            self.gamma = nn.Parameter(torch.zeros(1))
        self.conv = DoubleConv(dim, dim, norm, dropout, residual=True)
        self.dconv = DoubleConv(2 * dim, 2 * dim, norm, dropout, residual=True)
        self.conv2 = DoubleConv(dim, dim, norm, dropout, residual=True)
        self.dconv2 = DoubleConv(2 * dim, dim, norm, dropout, residual=False)
        self.att2 = SelfAttention(2 * dim) if self_attention else None

    def forward(self, image_code: torch.Tensor, pose_code: torch.Tensor, keep: bool = False):
        fusion = torch.cat((image_code, pose_code), 1)
        self_matrix = None
        if self.att2 is not None:
            fusion, self_matrix = self.att2(fusion, keep)
        fusion = self.dconv(fusion)
        x = self.conv2(self.conv(image_code))
        pose_next = self.dconv2(fusion)
        matrix = None
        if self.cross_attention:
            b, c, h, w = x.shape
            q, k = flatten_positions(self.query_conv(pose_next)), flatten_positions(self.key_conv(pose_next))
            v = flatten_positions(self.value_conv(x))
            matrix = attention_matrix(q, k) if keep else None
            o = matrix @ v if keep else attend(q, k, v)
            x = self.gamma * o.transpose(1, 2).reshape(b, c, h, w) + x
        return x, pose_next, matrix, self_matrix


class PoNA(AttentionMapGenerator):
    arch = "pona"

    def __init__(self, ngf: int = 64, n_blocks: int = 3, norm: str = "instance", dropout: float = 0.5,
                 pose_channels: int = 18, self_attention: bool = True, cross_attention: bool = True) -> None:
        super().__init__()
        dropout = check_dropout(dropout)
        self.pose_channels = pose_channels
        self.stream1_down = encoder(3, ngf, norm)
        self.stream2_down = encoder(2 * pose_channels, ngf, norm)
        self.att = nn.ModuleList(GuidedAttn(ngf * 4, norm, dropout, self_attention, cross_attention)
                                 for _ in range(n_blocks))
        self.stream1_up = transposed_decoder(ngf, 3, norm)
        init_normal(self)

    def _run(self, source_image, source_heatmaps, target_heatmaps, keep: bool) -> GeneratorOutput:
        x = self.stream1_down(source_image)
        p = self.stream2_down(torch.cat((source_heatmaps, target_heatmaps), 1))
        size = x.shape[-2:]
        matrices, self_matrices = [], []
        for block in self.att:
            x, p, matrix, self_matrix = block(x, p, keep)
            if matrix is not None:
                matrices.append(matrix)
            if self_matrix is not None:
                self_matrices.append(self_matrix)
        out = GeneratorOutput(image=self.stream1_up(x))
        if keep:
            out.attention = [attention_summary(m, size) for m in matrices]
            out.extras = {"attention_matrices": matrices, "self_attention_matrices": self_matrices}
        return out



@register_generator("pona")
def build_pona(dataset: str | None = None, **overrides) -> PoNA:
    """``build_generator("pona", dataset="market"|"deepfashion", n_blocks=3, ...)``."""
    dataset, config = resolve_dataset(dataset, DEFAULTS, overrides)
    return with_resolved_config(PoNA(**config), dataset, config)
