"""APATN — Aligned Pose-Attentional Transfer Network (Zhu, Huang et al., "Progressive and Aligned
Pose Attention Transfer for Person Image Generation", IEEE TPAMI, §3.3).

There is no public APATN code; this is a reconstruction from the paper's equations (5)–(8) and its parameter
figures. Structure: image encoder ``stream1_down``; pose encoder ``stream2_down`` applied *separately* to
S_c and S_t (18 channels each, so the two pose codes stay independent for the alignment); T (default 5)
Aligned PATBs ``att.{i}``; the TPAMI decoder ``stream1_up`` (two bilinear ×2 upsamplings, each followed by a
residual block, then a 7×7 conv and tanh).

APATB (block τ; image code F_P, condition / target pose codes F_Sc, F_St)::

    A     = softmax(θ(F_St) φ(F_Sc)ᵀ)          # HW×HW, row = target position, softmax over condition positions
    F̂    = A · γ(F_P)                          # θ, φ, γ: 1×1 convs
    F_P'  = conv_P(F̂ ‖ F_P)                   # conv_P starts with a 1×1 conv after the concatenation
    F_Sc' = conv_S(F_Sc);  F_St' = conv_S(F_St)  # one residual block, shared by both pose codes

The attention runs through ``scaled_dot_product_attention`` (scale 1: the paper has no 1/√C); the explicit
matrix is only built when ``return_extras=True`` asks for it (tests check both give the same image).

Measured parameters (ngf 64, instance norm): one APATB 2,754,304 (paper: "2.76 M"); the whole APATN with
5 blocks 16,973,507 (paper Table 2: 16.93 M). With batch norm (affine norms replace the conv biases) an
APATB has 2,755,584 = 2.76 M. The remaining gap of 0.04 M on the total (0.26 %) sits in choices the paper
leaves open (below) — most likely the decoder widths.

Where the paper is silent, and what we chose:

* θ, φ reduce to C = dim/2 = 128 channels; γ keeps dim = 256 channels.
* conv_P = 1×1 conv (2·dim → 2·dim) – N – ReLU – Dropout – RefPad – 3×3 conv (2·dim → dim) – N: the PATB pose
  path with its first conv made 1×1, as the paper explains the smaller block; no identity skip (the
  concatenation keeps the previous code).
* conv_S = a standard residual block (x + conv3×3–N–ReLU–Dropout–conv3×3–N), weights shared by S_c and S_t,
  applied to each code separately (so batch-norm statistics are not mixed).
* One pose encoder shared by S_c and S_t (the paper's wording and its parameter count suggest it);
  ``shared_pose_encoder=False`` adds a second one, ``stream3_down``, for S_t.
* Decoder widths stay at 256 (the 7×7 conv maps 256 → 3); the residual blocks there have no dropout (the
  paper puts dropout only in the blocks). ``decoder="transposed"`` swaps in PATN's decoder (cheaper at
  256×176).
* Norm: instance norm for both presets (TPAMI: "instance normalization in G and D" on both datasets,
  unlike PATN's CVPR setting); pass ``norm="batch"`` for the CVPR-style Market model.
* Ablations (Table 5): ``fusion="add"`` (cat → add: conv_P(F̂ + F_P)), ``fusion="none"`` (w/o cat:
  conv_P(F̂)), ``pose_block=False`` (w/o res: the pose codes are not updated).
* The last block's conv_S is built (the paper counts it in every APATB, and only then does the total come
  near 16.93 M) but not run, since its output would be discarded; its parameters are frozen
  (``requires_grad=False``) so optimisers and DistributedDataParallel do not wait for their gradients.
* ``attention`` (with ``return_extras``): per block a B×1×h×w map in [0, 1] of the attention each condition
  position receives; the HW×HW matrices are in ``extras["attention_matrices"]``.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ModelError
from .base import AttentionMapGenerator, GeneratorOutput
from .blocks import (ResnetBlock, attend, attention_matrix, attention_summary, check_dropout, conv_pair, encoder,
                     flatten_positions, init_normal, resolve_dataset, transposed_decoder, with_resolved_config)
from .registry import register_generator

DEFAULTS = {
    "ngf": 64,
    "n_blocks": 5,
    "norm": "instance",
    "dropout": 0.5,
    "pose_channels": 18,
    "fusion": "cat",               # "add" = ablation "cat → add", "none" = "w/o cat"
    "pose_block": True,            # False = ablation "w/o res"
    "shared_pose_encoder": True,
    "decoder": "bilinear",         # TPAMI decoder; "transposed" = PATN's
}

FUSIONS = ("cat", "add", "none")

#: TPAMI: instance norm on both datasets
APATN_DATASETS = {"market": {"norm": "instance"}, "deepfashion": {"norm": "instance"}}


class APATBlock(nn.Module):
    def __init__(self, dim: int, norm: str, dropout: float, fusion: str = "cat", pose_block: bool = True) -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ModelError(f"unknown APATB fusion {fusion!r}; expected one of {', '.join(FUSIONS)}")
        self.fusion = fusion
        self.theta = nn.Conv2d(dim, dim // 2, 1)
        self.phi = nn.Conv2d(dim, dim // 2, 1)
        self.gamma = nn.Conv2d(dim, dim, 1)
        fused = 2 * dim if fusion == "cat" else dim
        self.conv_p = conv_pair(fused, fused, dim, norm, dropout, final_norm=True, first_kernel=1)
        self.conv_s = ResnetBlock(dim, norm, dropout) if pose_block else None

    def forward(self, image_code, cond_pose, target_pose, keep: bool = False, update_pose: bool = True):
        b, c, h, w = image_code.shape
        query = flatten_positions(self.theta(target_pose))
        key = flatten_positions(self.phi(cond_pose))
        value = flatten_positions(self.gamma(image_code))
        matrix = attention_matrix(query, key) if keep else None
        aligned = (matrix @ value) if keep else attend(query, key, value)
        aligned = aligned.transpose(1, 2).reshape(b, c, h, w)
        if self.fusion == "cat":
            fused = torch.cat((aligned, image_code), 1)
        elif self.fusion == "add":
            fused = aligned + image_code
        else:
            fused = aligned
        image_next = self.conv_p(fused)
        if self.conv_s is not None and update_pose:
            cond_pose, target_pose = self.conv_s(cond_pose), self.conv_s(target_pose)
        return image_next, cond_pose, target_pose, matrix


def bilinear_decoder(dim: int, out_channels: int, norm: str, n_up: int = 2) -> nn.Sequential:
    """TPAMI decoder: n_up × (bilinear ×2 – residual block), RefPad3 – Conv7×7 – Tanh; width stays ``dim``."""
    layers: list[nn.Module] = []
    for _ in range(n_up):
        layers += [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), ResnetBlock(dim, norm, 0.0)]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(dim, out_channels, 7), nn.Tanh()]
    return nn.Sequential(*layers)


class APATN(AttentionMapGenerator):
    arch = "apatn"

    def __init__(self, ngf: int = 64, n_blocks: int = 5, norm: str = "instance", dropout: float = 0.5,
                 pose_channels: int = 18, fusion: str = "cat", pose_block: bool = True,
                 shared_pose_encoder: bool = True, decoder: str = "bilinear") -> None:
        super().__init__()
        dropout = check_dropout(dropout)
        self.pose_channels = pose_channels
        dim = ngf * 4
        self.stream1_down = encoder(3, ngf, norm)
        self.stream2_down = encoder(pose_channels, ngf, norm)
        self.stream3_down = None if shared_pose_encoder else encoder(pose_channels, ngf, norm)
        self.att = nn.ModuleList(APATBlock(dim, norm, dropout, fusion, pose_block) for _ in range(n_blocks))
        if decoder == "bilinear":
            self.stream1_up = bilinear_decoder(dim, 3, norm)
            #: the inference fast path decodes one sample at a time (models/fast.py, PerSample): this decoder
            #: keeps 256 channels up to full resolution and holds ~3/4 of APATN's memory at batch 8
            self.per_sample_modules = ("stream1_up",)
        elif decoder == "transposed":
            self.stream1_up = transposed_decoder(ngf, 3, norm)
        else:
            raise ModelError(f"unknown APATN decoder {decoder!r}; expected 'bilinear' or 'transposed'")
        init_normal(self)
        if n_blocks and self.att[-1].conv_s is not None:
            # the last pose update never reaches the output: frozen, so optimisers and DDP skip it
            self.att[-1].conv_s.requires_grad_(False)

    def _run(self, source_image, source_heatmaps, target_heatmaps, keep: bool) -> GeneratorOutput:
        x = self.stream1_down(source_image)
        cond = self.stream2_down(source_heatmaps)
        target_encoder = self.stream2_down if self.stream3_down is None else self.stream3_down
        target = target_encoder(target_heatmaps)
        size = x.shape[-2:]
        matrices = []
        for i, block in enumerate(self.att):
            # the last block's pose update would be discarded (only F_P is decoded), so it is skipped
            x, cond, target, matrix = block(x, cond, target, keep, update_pose=i < len(self.att) - 1)
            if keep:
                matrices.append(matrix)
        out = GeneratorOutput(image=self.stream1_up(x))
        if keep:
            out.attention = [attention_summary(m, size) for m in matrices]
            out.extras = {"attention_matrices": matrices}
        return out



@register_generator("apatn")
def build_apatn(dataset: str | None = None, **overrides) -> APATN:
    """``build_generator("apatn", dataset="market"|"deepfashion", n_blocks=5, fusion="cat", ...)``."""
    dataset, config = resolve_dataset(dataset, DEFAULTS, overrides, APATN_DATASETS)
    return with_resolved_config(APATN(**config), dataset, config)
