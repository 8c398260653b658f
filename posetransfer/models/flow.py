"""Structure-aware part-flow generator (Tang et al., "Structure-aware Person Image Generation with Pose
Decomposition and Semantic Correlation", AAAI'21), built from GFLA components (Ren et al.,
CVPR'20, RenYurui/Global-Flow-Local-Attention) in pure PyTorch — no CUDA extensions.

Forward pass (paper eq. numbers in brackets; C = 2·ngf channels at 1/4 resolution)::

    for part in head, torso, leg:                                      (flow_parts.PART_JOINTS)
        W_p, V_p = flow_nets[p](P_s[:, J_p], P_t[:, J_p])              [1]  per scale in flow_scales
        F_s_p    = image_encoders[p](I_s * M_s_p)                      part image = box-masked source
        h        = pose_streams[p](P_t[:, J_p]):  at each scale, coarse → fine,
                   h = V_p · warp(F_s_p, W_p) + (1 - V_p) · h          [2] [3]  (then decode to the next scale)
        F_warp_p = hdcb[p](h)                                          [4] [5]  dilations 1, 2
    F_fusion = fusion(cat(F_warp_head, F_warp_torso, F_warp_leg, pose_encoder(P_t)))   [6]
    F_global = pnb(F_fusion)                                           [7]  pool 4×4 and 6×6, non-local, upsample, add
    image    = output(decoder(F_global))                               [8]

Flow convention (the whole package): a flow is B×2×h×w of pixel offsets (dx, dy) *in the flow's own
resolution*; the value at target position (x, y) says "sample the source at (x + dx, y + dy)" (bilinear,
``grid_sample(align_corners=True)``, zeros outside unless ``warp_padding="border"``). A flow of +3 in x everywhere therefore moves the image
content 3 pixels to the *left*. :func:`resize_flow` converts a flow to another resolution (values scaled
by (W-1)/(w-1), (H-1)/(h-1), the align_corners=True pixel mapping).

Open points of the paper (figures and supplementary missing) and what we chose — see
/work/shared/reference/structure_aware.md §8 for the full list:

1. Joint → part table: not in the text. head = nose, eyes, ears, neck; torso = neck, both arms, both hips;
   leg = both hips, both legs (anchors shared). Configurable (``part_joints``).
2. Part "crop": full-canvas masking with the joint bounding box grown by ``part_margin``·H (flow_parts).
3. Flow-net input: the two sub-poses only (eq. 1); ``flow_image_input=True`` adds the part image (GFLA).
4. Flow-net layout: exactly GFLA's ``PoseFlowNet`` (:class:`posetransfer.models.gfla.PoseFlowNet`, the
   same class and key layout as the ``gfla`` generator's: 5 encoder blocks 32…256 ch, residual up-blocks
   whose hidden width is their output width, jump skips, 3×3 conv flow head, 3×3 conv + sigmoid
   visibility head), one per part, separate weights. Only the input differs (the part's two sub-poses
   instead of image + both full poses), so a GFLA flow net initialises every part's net with its first
   norm and conv restricted to the part's channels (``train.init_flow=gfla.safetensors``,
   :meth:`FlowGenerator.init_flow_nets_from_gfla`).
5. Flow scales: GFLA's — Market 1/4 only, DeepFashion 1/8 and 1/4 (``flow_scales``). The paper describes
   one warp; with two scales each part's target stream blends at 1/8, is decoded to 1/4 and blends again
   (GFLA's target-stream scheme), so "target-pose features" at 1/4 are the decoded 1/8 result.
6. Warping: plain bilinear sampling as the paper says (GFLA's content-aware local attention is dropped).
   Outside the source it reads zeros by default (``warp_padding="zeros"``): the paper's bilinear warp is
   GFLA's bilinear sampler (its ``BilinearSamplingBlock``, flow visualisation and the correctness loss's
   bilinear option all call ``grid_sample`` with its zeros padding); only GFLA's CUDA samplers (block
   extractor, Gaussian resampler) clamp to the border, which ``warp_padding="border"`` gives.
7. Encoders: GFLA ``EncoderBlock`` stacks (IN affine, LeakyReLU 0.1); separate part image / part pose
   encoders per part, one global pose encoder; C = 128 at 1/4 with ngf 64.
8. HDCB: per part, [conv3×3 dilation d, IN, LReLU] for d in (1, 2), residual (``hdcb_dilations``).
9. G_fusion: conv3×3 ((P+1)·C → C) then ``fusion_blocks`` GFLA ResBlocks.
10. PNB: adaptive *max* pooling ("most significant representation") to s×s for s in (4, 6); per scale a
    standard non-local block on the s² cells (θ, φ, g: 1×1 convs to C/2; relation R = softmax(θᵀφ) without
    1/√d scaling, as the paper writes it; output 1×1 conv back to C); bilinear upsampling; added to the
    input (issue text "upsample, add"). The output conv is not zero-initialised (GFLA's small orthogonal
    init already makes the block start near identity, and every weight receives a gradient from step 1).
    Attention runs through ``scaled_dot_product_attention``; the explicit relation maps (tiny: 16×16 and
    36×36) are returned in ``extras["relations"]`` for the paper's Fig. 7 (viz_flow.relation_figure).
11. Decoder: two GFLA up-blocks ([ResBlock, ResBlockDecoder]) 1/4 → 1/2 → 1, then GFLA ``Output``
    (LReLU, reflection pad, conv3×3, tanh). No spectral norm in G; orthogonal init with gain 0.02 (GFLA).
12. Discriminator, losses, loss weights, optimiser: see flow_discriminator.py, flow_losses.py and the
    presets flow-market.yaml / flow-deepfashion.yaml.

Ablations of the paper's Table 3: ``use_parts=False`` (w/o Part: one flow net on the full 18-channel
poses warps features of the whole source image), ``pnb=False`` (w/o PNB), ``hdcb=False`` (w/o HDCB).

Stage 1 (flow pre-training) uses :meth:`FlowGenerator.predict_flows` and :meth:`flow_parameters`; the loss
is ``flow_losses.sampling_correctness_loss`` with the per-part target masks ``extras["flow_masks"]`` and,
on the source side, each part's masked source image ``extras["flow_source_masks"]`` — the pixels that
part's features come from in the generator (see flow_losses for why).

Parameter counts (the paper reports none): Market preset 24,951,744 (the three flow nets 19,775,709);
DeepFashion preset 38,741,577 (flow nets 19,786,086; the 1/8-scale warp adds 256-channel part streams).
Ablations on DeepFashion: w/o Part 14,215,199, w/o PNB 38,675,401, w/o HDCB 37,854,537.

``extras`` of the returned :class:`GeneratorOutput`: ``flow_names`` (``"head@1/4"``, …, aligned with
``flows`` / ``visibility``), ``flow_masks`` (target part mask at each flow's resolution), ``source_masks``
and ``target_masks`` (B×P×H×W part boxes), ``warped`` (the source warped part by part, for figures),
``parts``, ``flow_source_masks`` and ``flow_sampler`` (what the correctness loss samples and how), and with
the PNB ``relations`` (``{"4": B×16×16, "6": B×36×36}``) and ``relation_grid``.
"""
from __future__ import annotations

import functools
import math
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError
from .base import Generator, GeneratorOutput
from .blocks import resolve_dataset, with_resolved_config
from .flow_parts import DEFAULT_MARGIN, downsample_masks, part_masks, resolve_parts, sub_pose
from .gfla import (NORMS, EncoderBlock, Output, PoseFlowNet, ResBlock, ResBlockDecoder, check_inputs,
                   init_orthogonal, match_size, norm_act, select_flow_net_inputs)
from .registry import register_generator

DEFAULTS: dict[str, Any] = {
    "ngf": 64,                   # image / pose encoders: ngf at 1/2, 2·ngf (= C) at 1/4, 4·ngf at 1/8
    "max_channels": 256,         # channel cap of the encoders
    "flow_ngf": 32,              # GFLA PoseFlowNet(ngf=32, img_f=256, encoder_layer=5)
    "flow_max_channels": 256,
    "flow_layers": 5,
    "flow_scales": [4],          # downsampling factors of the predicted flows, e.g. [8, 4]
    "flow_image_input": False,   # True: the flow nets also see the part image (GFLA-style input)
    "use_parts": True,           # False: ablation "w/o Part"
    "part_joints": None,         # None: flow_parts.PART_JOINTS
    "part_margin": DEFAULT_MARGIN,
    "hdcb": True,                # False: ablation "w/o HDCB"
    "hdcb_dilations": [1, 2],
    "pnb": True,                 # False: ablation "w/o PNB"
    "pnb_scales": [4, 6],
    "pnb_pool": "max",
    "fusion_blocks": 2,
    "norm": "instance",
    "pose_channels": 18,
    "warp_padding": "zeros",     # "border": clamp like GFLA's CUDA samplers (module docstring, point 6)
}

#: Per-dataset settings (GFLA: Market warps at 1/4, DeepFashion at 1/8 and 1/4).
DATASET_SETTINGS: dict[str, dict[str, Any]] = {
    "market": {"flow_scales": [4]},
    "deepfashion": {"flow_scales": [8, 4]},
}

#: The working resolution of the warped part features, HDCB, fusion and PNB.
WORK_SCALE = 4

#: What the bilinear warp reads outside the source: 0 (the default, see the module docstring) or the edge.
WARP_PADDINGS = ("zeros", "border")


# --------------------------------------------------------------------------------------------------
# Flow geometry
# --------------------------------------------------------------------------------------------------
def flow_to_grid(flow: torch.Tensor) -> torch.Tensor:
    """Pixel-offset flow B×2×h×w → normalised ``grid_sample`` grid B×h×w×2 (align_corners=True)."""
    b, _, h, w = flow.shape
    ys = torch.arange(h, device=flow.device, dtype=flow.dtype).view(1, h, 1).expand(b, h, w)
    xs = torch.arange(w, device=flow.device, dtype=flow.dtype).view(1, 1, w).expand(b, h, w)
    gx = 2.0 * (xs + flow[:, 0]) / max(w - 1, 1) - 1.0
    gy = 2.0 * (ys + flow[:, 1]) / max(h - 1, 1) - 1.0
    return torch.stack((gx, gy), dim=3)


def resize_flow(flow: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """The same displacement field at another resolution (values rescaled to the new pixel units)."""
    h, w = flow.shape[2:]
    new_h, new_w = int(size[0]), int(size[1])
    if (h, w) == (new_h, new_w):
        return flow
    resized = F.interpolate(flow, size=(new_h, new_w), mode="bilinear", align_corners=True)
    sx = (new_w - 1) / (w - 1) if w > 1 else float(new_w) / w
    sy = (new_h - 1) / (h - 1) if h > 1 else float(new_h) / h
    return resized * resized.new_tensor([sx, sy]).view(1, 2, 1, 1)


def warp(features: torch.Tensor, flow: torch.Tensor, padding: str = "zeros") -> torch.Tensor:
    """Bilinear backward warp: out(x, y) = features(x + dx, y + dy) (paper eq. 2).

    ``padding``: what a sample outside the features reads — ``"zeros"`` (0) or ``"border"`` (the nearest
    edge pixel, what GFLA's CUDA samplers do). A flow of another resolution than ``features`` is resized
    with :func:`resize_flow` first.
    """
    if padding not in WARP_PADDINGS:
        raise ModelError(f"warp padding must be one of {', '.join(WARP_PADDINGS)}, got {padding!r}")
    flow = resize_flow(flow, features.shape[2:])
    # sampling positions in float32 whatever the feature dtype (half precision would blur them under AMP)
    grid = flow_to_grid(flow.float())
    sampled = F.grid_sample(features.float(), grid, mode="bilinear", padding_mode=padding, align_corners=True)
    return sampled.to(features.dtype)


# --------------------------------------------------------------------------------------------------
# Part streams (on GFLA's blocks, posetransfer.models.gfla)
# --------------------------------------------------------------------------------------------------
def _level_width(level: int, ngf: int, cap: int) -> int:
    """Width of an encoder at 1/2^level (level ≥ 1): ngf, 2·ngf, 4·ngf, … capped."""
    return min(ngf * 2 ** (level - 1), cap)


def _levels(scales: Sequence[int]) -> list[int]:
    return [int(round(math.log2(s))) for s in scales]


class MultiScaleEncoder(nn.Module):
    """EncoderBlock stack returning ``{level: features}`` for the requested levels (1/2^level)."""

    def __init__(self, in_channels: int, ngf: int, cap: int, depth: int, norm: str) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            EncoderBlock(in_channels if l == 1 else _level_width(l - 1, ngf, cap), _level_width(l, ngf, cap), norm)
            for l in range(1, depth + 1))

    def forward(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        out = {}
        for level, block in enumerate(self.blocks, start=1):
            x = block(x)
            out[level] = x
        return out


class PartTargetStream(nn.Module):
    """Target-pose features of one part, blended with the warped source part features (eq. 3).

    The part's target sub-pose is encoded to the coarsest flow scale; at every flow scale (coarse → fine)
    ``h = V · warp(F_s, W) + (1 − V) · h``; between scales ``h`` is decoded ([ResBlock, ResBlockDecoder]).
    """

    def __init__(self, pose_channels: int, ngf: int, cap: int, levels: Sequence[int], norm: str,
                 padding: str = "zeros") -> None:
        super().__init__()
        self.padding = padding
        self.levels = sorted(levels, reverse=True)
        self.encoder = MultiScaleEncoder(pose_channels, ngf, cap, self.levels[0], norm)
        self.up = nn.ModuleList()
        for level in range(self.levels[0], self.levels[-1], -1):
            cin, cout = _level_width(level, ngf, cap), _level_width(level - 1, ngf, cap)
            self.up.append(nn.Sequential(ResBlock(cin, norm), ResBlockDecoder(cin, cout, norm)))

    def forward(self, target_pose: torch.Tensor, source_features: Mapping[int, torch.Tensor],
                flows: Sequence[torch.Tensor], visibility: Sequence[torch.Tensor]) -> torch.Tensor:
        h = self.encoder(target_pose)[self.levels[0]]
        by_level = dict(zip(self.levels, zip(flows, visibility)))
        level, steps = self.levels[0], iter(self.up)
        while True:
            if level in by_level:
                flow, vis = by_level[level]
                h = vis * warp(source_features[level], flow, self.padding) + (1 - vis) * h
            if level == self.levels[-1]:
                return h
            h = match_size(next(steps)(h), source_features[level - 1])
            level -= 1


class HybridDilatedBlock(nn.Module):
    """HDCB (eqs. 4–5): sequential 3×3 convs with dilations (1, 2), each + IN + LReLU, residual."""

    def __init__(self, channels: int, dilations: Sequence[int], norm: str) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for d in dilations:
            layers += [nn.Conv2d(channels, channels, 3, padding=int(d), dilation=int(d)), *norm_act(norm, channels)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.model(x)


def non_local_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """softmax(Q Kᵀ) V (rows = target cells), no 1/√d scaling — via ``scaled_dot_product_attention``."""
    return F.scaled_dot_product_attention(query, key, value, scale=1.0)


def relation_map(query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """The explicit relation map R = softmax(θᵀφ), B×N×N, row i = relations of target cell i."""
    return torch.softmax(query @ key.transpose(1, 2), dim=-1)


class PyramidNonLocal(nn.Module):
    """PNB (eq. 7): per scale s, pool to s×s, non-local among the s² cells, upsample, add to the input."""

    def __init__(self, channels: int, scales: Sequence[int] = (4, 6), pool: str = "max") -> None:
        super().__init__()
        if pool not in ("max", "avg"):
            raise ModelError(f"pnb_pool must be 'max' or 'avg', got {pool!r}")
        self.scales = [int(s) for s in scales]
        self.pool = pool
        inner = max(1, channels // 2)
        self.theta = nn.ModuleDict({str(s): nn.Conv2d(channels, inner, 1) for s in self.scales})
        self.phi = nn.ModuleDict({str(s): nn.Conv2d(channels, inner, 1) for s in self.scales})
        self.g = nn.ModuleDict({str(s): nn.Conv2d(channels, inner, 1) for s in self.scales})
        self.out = nn.ModuleDict({str(s): nn.Conv2d(inner, channels, 1) for s in self.scales})

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out, relations = x, {}
        for s in self.scales:
            key = str(s)
            cells = F.adaptive_max_pool2d(x, s) if self.pool == "max" else F.adaptive_avg_pool2d(x, s)
            q = self.theta[key](cells).flatten(2).transpose(1, 2)    # B×s²×C'
            k = self.phi[key](cells).flatten(2).transpose(1, 2)
            v = self.g[key](cells).flatten(2).transpose(1, 2)
            y = non_local_attention(q, k, v).transpose(1, 2).reshape(x.shape[0], -1, s, s)
            out = out + F.interpolate(self.out[key](y), size=x.shape[2:], mode="bilinear", align_corners=False)
            with torch.no_grad():
                relations[key] = relation_map(q, k)
        return out, relations


# --------------------------------------------------------------------------------------------------
# The generator
# --------------------------------------------------------------------------------------------------
class FlowGenerator(Generator):
    arch = "flow"

    def __init__(self, ngf: int = 64, max_channels: int = 256, flow_ngf: int = 32, flow_max_channels: int = 256,
                 flow_layers: int = 5, flow_scales: Sequence[int] = (4,), flow_image_input: bool = False,
                 use_parts: bool = True, part_joints: Mapping[str, Sequence[int]] | None = None,
                 part_margin: float = DEFAULT_MARGIN, hdcb: bool = True, hdcb_dilations: Sequence[int] = (1, 2),
                 pnb: bool = True, pnb_scales: Sequence[int] = (4, 6), pnb_pool: str = "max",
                 fusion_blocks: int = 2, norm: str = "instance", pose_channels: int = 18,
                 warp_padding: str = "zeros") -> None:
        super().__init__()
        scales = sorted({int(s) for s in flow_scales}, reverse=True)
        if not scales or any(s < WORK_SCALE or s & (s - 1) for s in scales) or scales[-1] != WORK_SCALE:
            raise ModelError(f"flow_scales must be powers of two ≥ 4 including 4, got {list(flow_scales)}")
        if scales[0] >= 2 ** flow_layers:
            raise ModelError(f"flow scale 1/{scales[0]} needs flow_layers > {int(math.log2(scales[0]))}")
        if min(ngf, flow_ngf) < 1 or fusion_blocks < 0:
            raise ModelError("ngf and flow_ngf must be ≥ 1 and fusion_blocks ≥ 0")
        if not 0.0 <= float(part_margin) < 1.0:
            raise ModelError(f"part_margin must be in [0, 1), got {part_margin}")
        if norm not in NORMS:
            raise ModelError(f"unknown norm {norm!r}; expected one of {', '.join(NORMS)}")
        if warp_padding not in WARP_PADDINGS:
            raise ModelError(f"warp_padding must be one of {', '.join(WARP_PADDINGS)}, got {warp_padding!r}")
        self.warp_padding = warp_padding
        self.pose_channels = pose_channels
        self.flow_scales = scales
        self.flow_layers = flow_layers
        self.levels = _levels(scales)
        self.use_parts = bool(use_parts)
        # w/o Part: one "part" holding every joint, whose mask is the whole image (flow_parts.WHOLE_BODY)
        self.parts = resolve_parts(part_joints, pose_channels) if use_parts else {"body": tuple(range(pose_channels))}
        self.part_margin = float(part_margin)
        self.flow_image_input = bool(flow_image_input)
        channels = _level_width(2, ngf, max_channels)                      # C at 1/4
        depth = self.levels[0]

        self.flow_nets = nn.ModuleDict()
        self.image_encoders = nn.ModuleDict()
        self.pose_streams = nn.ModuleDict()
        self.hdcb = nn.ModuleDict()
        for name, joints in self.parts.items():
            k = len(joints)
            self.flow_nets[name] = PoseFlowNet(2 * k + (3 if flow_image_input else 0), flow_ngf,
                                               flow_max_channels, flow_layers, self.levels, norm)
            self.image_encoders[name] = MultiScaleEncoder(3, ngf, max_channels, depth, norm)
            self.pose_streams[name] = PartTargetStream(k, ngf, max_channels, self.levels, norm, warp_padding)
            self.hdcb[name] = HybridDilatedBlock(channels, hdcb_dilations, norm) if hdcb else nn.Identity()
        self.pose_encoder = MultiScaleEncoder(pose_channels, ngf, max_channels, 2, norm)
        self.fusion = nn.Sequential(nn.Conv2d((len(self.parts) + 1) * channels, channels, 3, 1, 1),
                                    *[ResBlock(channels, norm) for _ in range(fusion_blocks)])
        self.pnb = PyramidNonLocal(channels, pnb_scales, pnb_pool) if pnb else None
        half = _level_width(1, ngf, max_channels)
        self.decoder = nn.Sequential(ResBlock(channels, norm), ResBlockDecoder(channels, half, norm),
                                     ResBlock(half, norm), ResBlockDecoder(half, half, norm))
        self.output = Output(half, 3)
        init_orthogonal(self)

    # ----------------------------------------------------------------------------------------------
    def flow_parameters(self):
        """Parameters of the part flow networks only (stage 1 trains just these)."""
        return self.flow_nets.parameters()

    def init_flow_nets_from_gfla(self, state: Mapping[str, torch.Tensor], where: str = "GFLA weights") -> None:
        """Initialise every part's flow net from a GFLA generator's ``flow_net.*`` weights.

        The layouts are the same (both are :class:`~posetransfer.models.gfla.PoseFlowNet`); GFLA's net sees
        cat(image, source pose, target pose) = 3 + 18 + 18 channels, each part's net its two sub-poses (after
        the masked part image with ``flow_image_input``), so the first norm and conv keep those input
        channels (:func:`~posetransfer.models.gfla.select_flow_net_inputs`). Any other mismatch (widths,
        layers, flow scales) is a :class:`ModelError` naming the first differing tensor.
        """
        pose = self.pose_channels
        for i, (name, joints) in enumerate(self.parts.items()):
            channels = ([0, 1, 2] if self.flow_image_input else []) + [3 + j for j in joints] + \
                       [3 + pose + j for j in joints]
            try:
                part_state = select_flow_net_inputs(state, channels, prefix="flow_net.")
            except IndexError:
                raise ModelError(f"{where}: its flow net does not have the 3 + 2×{pose} input channels of GFLA's") \
                    from None
            net = self.flow_nets[name]
            ours = net.state_dict()
            missing, unexpected = sorted(set(ours) - set(part_state)), sorted(set(part_state) - set(ours))
            if missing or unexpected:
                detail = f"missing {missing[:2]}" if missing else f"unexpected {unexpected[:2]}"
                raise ModelError(f"{where}: its flow net does not fit the {name!r} flow net ({detail}; flow "
                                 f"scales {self.flow_scales} and flow_layers {self.flow_layers} must match)")
            wrong = next((k for k, v in part_state.items() if tuple(v.shape) != tuple(ours[k].shape)), None)
            if wrong is not None:
                raise ModelError(f"{where}: flow net tensor {wrong!r} is {tuple(part_state[wrong].shape)}, the "
                                 f"{name!r} flow net needs {tuple(ours[wrong].shape)} (flow_ngf / flow_max_channels)")
            net.load_state_dict(part_state, strict=True)

    @property
    def flow_names(self) -> list[str]:
        """Names of the entries of ``GeneratorOutput.flows``, e.g. ``["head@1/8", "head@1/4", ...]``."""
        return [f"{part}@1/{s}" for part in self.parts for s in self.flow_scales]

    def _check(self, source_image: torch.Tensor, source_heatmaps: torch.Tensor, target_heatmaps: torch.Tensor):
        check_inputs(source_image, source_heatmaps, target_heatmaps, 3, self.pose_channels, 2 ** self.flow_layers)

    def _masks(self, heatmaps: torch.Tensor) -> torch.Tensor:
        if not self.use_parts:
            return heatmaps.new_ones(heatmaps.shape[0], 1, *heatmaps.shape[2:])
        return part_masks(heatmaps, self.parts, self.part_margin)

    def _predict(self, source_image, source_heatmaps, target_heatmaps):
        """Per part: (flows coarse → fine, visibility), plus source and target part masks (B×P×H×W)."""
        self._check(source_image, source_heatmaps, target_heatmaps)
        source_masks, target_masks = self._masks(source_heatmaps), self._masks(target_heatmaps)
        per_part = {}
        for i, (name, joints) in enumerate(self.parts.items()):
            inputs = [sub_pose(source_heatmaps, joints), sub_pose(target_heatmaps, joints)]
            if self.flow_image_input:
                inputs.insert(0, source_image * source_masks[:, i:i + 1])
            per_part[name] = self.flow_nets[name](torch.cat(inputs, 1))
        return per_part, source_masks, target_masks

    def _output(self, image, per_part, source_image, source_masks, target_masks, extras) -> GeneratorOutput:
        flows = [f for fl, _ in per_part.values() for f in fl]
        visibility = [v for _, vl in per_part.values() for v in vl]
        n_scales = len(self.flow_scales)
        flow_masks = [downsample_masks(target_masks[:, i // n_scales:i // n_scales + 1], f.shape[2:])
                      for i, f in enumerate(flows)]
        # the source side of the sampling-correctness loss: each flow samples its own masked part image,
        # the pixels its part's features come from in the generator (None: the whole image, w/o Part)
        flow_source_masks = [source_masks[:, i // n_scales:i // n_scales + 1] if self.use_parts else None
                             for i in range(len(flows))]
        with torch.no_grad():
            warped = compose_warped(source_image, [fl[-1] for fl, _ in per_part.values()], source_masks,
                                    target_masks, self.warp_padding)
        extras.update(flow_names=self.flow_names, flow_masks=flow_masks, source_masks=source_masks,
                      target_masks=target_masks, warped=warped, parts=list(self.parts),
                      flow_source_masks=flow_source_masks, flow_sampler=functools.partial(warp, padding=self.warp_padding))
        return GeneratorOutput(image=warped if image is None else image, flows=flows, visibility=visibility,
                               extras=extras)

    def predict_flows(self, source_image: torch.Tensor, source_heatmaps: torch.Tensor,
                      target_heatmaps: torch.Tensor) -> GeneratorOutput:
        """Stage 1: only the flow networks run. ``image`` = the source warped part by part (for logging).

        ``extras["flow_masks"]`` are the target part masks at each flow's resolution — pass them to
        ``flow_losses.sampling_correctness_loss(..., masks=...)`` so each part's flow is judged on its part.
        """
        per_part, source_masks, target_masks = self._predict(source_image, source_heatmaps, target_heatmaps)
        return self._output(None, per_part, source_image, source_masks, target_masks, {})

    def generate(self, source_image: torch.Tensor, source_heatmaps: torch.Tensor,
                 target_heatmaps: torch.Tensor) -> GeneratorOutput:
        per_part, source_masks, target_masks = self._predict(source_image, source_heatmaps, target_heatmaps)
        part_features = []
        for i, (name, joints) in enumerate(self.parts.items()):
            features = self.image_encoders[name](source_image * source_masks[:, i:i + 1])
            flows, visibility = per_part[name]
            selected = self.pose_streams[name](sub_pose(target_heatmaps, joints), features, flows, visibility)
            part_features.append(self.hdcb[name](selected))
        pose_features = self.pose_encoder(target_heatmaps)[2]
        fused = self.fusion(torch.cat(part_features + [pose_features], 1))
        extras: dict[str, Any] = {}
        if self.pnb is not None:
            fused, relations = self.pnb(fused)
            extras["relations"] = relations
            extras["relation_grid"] = tuple(fused.shape[2:])
        image = self.output(self.decoder(fused))
        if image.shape[2:] != source_image.shape[2:]:
            image = F.interpolate(image, size=source_image.shape[2:], mode="bilinear", align_corners=False)
        return self._output(image, per_part, source_image, source_masks, target_masks, extras)


def compose_warped(source_image: torch.Tensor, flows: Sequence[torch.Tensor], source_masks: torch.Tensor,
                   target_masks: torch.Tensor, padding: str = "zeros") -> torch.Tensor:
    """The source warped part by part at full resolution, each part pasted inside its target box.

    Where target boxes overlap the warped parts are averaged; outside every box the result is 0 (grey).
    Used for logging / figures only (the generator warps features, not pixels).
    """
    total = torch.zeros_like(source_image)
    weight = torch.zeros_like(source_image[:, :1])
    for i, flow in enumerate(flows):
        part = warp(source_image * source_masks[:, i:i + 1], flow, padding)
        total = total + part * target_masks[:, i:i + 1]
        weight = weight + target_masks[:, i:i + 1]
    return total / weight.clamp_min(1.0)


@register_generator("flow")
def build_flow(dataset: str | None = None, **overrides: Any) -> FlowGenerator:
    """``build_generator("flow", dataset="market"|"deepfashion", pnb=False, ...)``: DEFAULTS ←
    DATASET_SETTINGS[dataset] ← explicit overrides (unknown keys are a ModelError), recorded as the model's resolved config."""
    dataset, config = resolve_dataset(dataset, DEFAULTS, overrides, DATASET_SETTINGS, kind="flow")
    return with_resolved_config(FlowGenerator(**config), dataset, config)
