"""GFLA — global flow, local attention (Ren et al., "Deep Image Spatial Transformation for Person Image
Generation", CVPR'20; RenYurui/Global-Flow-Local-Attention), registry name ``gfla``, in pure PyTorch.

The official code needs three CUDA extensions (``resample2d``, ``block_extractor``,
``local_attn_reshape``) that do not build with current toolchains and cannot run on a CPU; here they are
the vectorised ops of :mod:`posetransfer.models.gfla_ops`. The module names and ``nn.Sequential`` index
layouts are GFLA's (``source.block0.model.2.weight``, ``flow_net.decoder1.shortcut.0.weight``, ...), so a
released ``latest_net_G.pth`` converts by dropping duplicate keys only
(:mod:`posetransfer.models.gfla_convert`).

Forward pass (``G(I_s, P_s, P_t)``; ``L = layers = 3``)::

    feats          = source(I_s)                       EncoderBlocks → features at 1/2 … 1/2^L (+ the image)
    flows, masks   = flow_net(cat(I_s, P_s, P_t))      PoseFlowNet: 5 EncoderBlocks, ResBlockDecoders with
                                                       jump skips, a flow (conv3×3 → 2) and an occlusion mask
                                                       (conv3×3 → 1, sigmoid) at every attention layer
    h              = target encoder(P_t)               EncoderBlocks on the target pose → 1/2^L
    for i in 0 … L-1 (resolution 1/2^(L-i)):
        if L - i is an attention layer:
            a = ExtractorAttn(feats at this scale, h, flow)             content-aware local attention
            h = h · (1 − mask) + a · mask
        h = decoder_i(h)                               [ResBlock × (num_blocks-1), ResBlockDecoder] (×2)
    image          = outconv(h)                        LReLU – reflection pad – conv3×3 – tanh

``ExtractorAttn`` (kernel k): the k×k block of the source features around every flow target
(``block_extractor``) and the k×k block of the target features around every pixel; the two stacked go
through conv(2C → 128, k×k, stride k) – LReLU – conv1×1 (→ k²) – softmax over the k² positions; the weights
(``local_attn_reshape``) multiply the source block and ``avg_pool2d(k, k)`` sums it up (divided by k², as
GFLA does).

Released settings (``model/pose_model.py`` ``define_g`` and the README's commands): ngf 64, channel cap 512,
layers 3, num_blocks 2, instance norm (affine), LeakyReLU 0.1, no spectral norm in G, flow net ngf 32 /
cap 256 / 5 layers, orthogonal init (gain 0.02). Presets:

* ``market``: ``--attn_layer=2 --kernel_size=2=3`` — one local attention at 1/4 (kernel 3), 128×64 images;
* ``deepfashion``: ``--attn_layer=2,3 --kernel_size=2=5,3=3`` — 1/8 (kernel 3) and 1/4 (kernel 5),
  at 256×256 (GFLA stretches the 256×176 DeepFashion images; the converted files' input contract says so:
  :func:`posetransfer.models.gfla_convert.gfla_contract`).

Parameter counts (``count_parameters``, equal to GFLA's own code's): DeepFashion 14,047,395 (GFLA reports
14.04 M), of which the flow net 6,608,212; Market 12,926,471, flow net 6,604,753.

With one attention layer at 1/4 (Market) the source encoder's 1/8 block is computed but unused — GFLA's
layout, kept so that its checkpoints load strictly.

Extension (GFLA itself fails there): sizes that are not multiples of 2^5 (e.g. 256×176) run, with each
decoder output resized (bilinear) to its skip's size where the two differ; at GFLA's sizes nothing is
resized.

``GeneratorOutput``: ``flows`` and ``visibility`` (GFLA's occlusion masks, also given as ``attention``)
coarse → fine, one per attention layer, flows in pixels of their own resolution (the package convention: sample the source at
(x + dx, y + dy)); ``extras``: ``flow_names`` (``"1/8"``, ``"1/4"``), ``attention_weights`` (B×k²×h×w
softmax weights per attention layer), ``warped`` (the source image bilinearly warped with the finest flow,
for figures), and the hints the flow losses read: ``flow_sampler`` (GFLA's Gaussian 4×4 resampler, σ 2, for
the sampling-correctness loss) and ``regularization_kernels`` (the affine regulariser's window per flow =
the attention kernel sizes).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError
from ..kinds import FASHION, MARKET
from .base import Generator, GeneratorOutput
from .blocks import resolve_dataset, with_resolved_config
from .gfla_ops import block_extractor, local_attn_reshape, local_blocks, resample2d
from .registry import register_generator

DEFAULTS: dict[str, Any] = {
    "ngf": 64,                    # image / pose encoders: ngf at 1/2, doubling, capped at max_channels
    "max_channels": 512,          # GFLA img_f
    "layers": 3,
    "num_blocks": 2,              # ResBlocks per decoder stage + 1 (GFLA num_blocks)
    "attn_layers": [2, 3],        # GFLA --attn_layer: local attention at 1/2^a
    "kernel_sizes": [5, 3],       # GFLA --kernel_size, one per attn layer (same order)
    "flow_ngf": 32,
    "flow_max_channels": 256,
    "flow_layers": 5,
    "norm": "instance",
    "image_channels": 3,
    "pose_channels": 18,
}

DATASET_SETTINGS: dict[str, dict[str, Any]] = {
    "market": {"attn_layers": [2], "kernel_sizes": [3]},
    "deepfashion": {"attn_layers": [2, 3], "kernel_sizes": [5, 3]},
}

#: the image sizes (H, W) of the released models: Market's frame; DeepFashion's 256×176 images stretched to
#: the 256×256 of the In-shop downloads
DATASET_FRAMES: dict[str, tuple[int, int]] = {"market": MARKET.size, "deepfashion": FASHION.raw_size}

#: GFLA's sampling-correctness sampler: ``Resample2d(4, 1, sigma=2)``
CORRECTNESS_KERNEL, CORRECTNESS_SIGMA = 4, 2.0

NORMS = ("instance", "batch", "none")


# --------------------------------------------------------------------------------------------------
# GFLA's building blocks (model/networks/base_function.py layouts, re-written)
# --------------------------------------------------------------------------------------------------
def norm_layer(kind: str, channels: int) -> nn.Module:
    """GFLA ``get_norm_layer``: 'instance' = InstanceNorm2d(affine=True), 'batch' = BatchNorm2d."""
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    raise ModelError(f"unknown norm {kind!r}; expected one of {', '.join(NORMS)}")


def activation() -> nn.Module:
    return nn.LeakyReLU(0.1)


def norm_act(norm: str, channels: int) -> list[nn.Module]:
    """[Norm, LReLU] — or just [LReLU] with ``norm='none'`` (GFLA then leaves the norm slot out)."""
    return [activation()] if norm == "none" else [norm_layer(norm, channels), activation()]


class EncoderBlock(nn.Module):
    """Norm – LReLU – Conv4×4 s2 – Norm – LReLU – Conv3×3: halves the resolution."""

    def __init__(self, cin: int, cout: int, norm: str) -> None:
        super().__init__()
        self.model = nn.Sequential(*norm_act(norm, cin), nn.Conv2d(cin, cout, 4, 2, 1),
                                   *norm_act(norm, cout), nn.Conv2d(cout, cout, 3, 1, 1))

    def __getitem__(self, index: int) -> nn.Module:
        return self.model[index]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class ResBlock(nn.Module):
    """x + [Norm – LReLU – Conv3×3 – Norm – LReLU – Conv3×3] (GFLA ``ResBlock``, identity shortcut)."""

    def __init__(self, channels: int, norm: str) -> None:
        super().__init__()
        self.model = nn.Sequential(*norm_act(norm, channels), nn.Conv2d(channels, channels, 3, 1, 1),
                                   *norm_act(norm, channels), nn.Conv2d(channels, channels, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.model(x)


class ResBlocks(nn.Module):
    """``n`` ResBlocks in a row (GFLA ``ResBlocks``: the decoder stages' blocks before the up-sampling)."""

    def __init__(self, n: int, channels: int, norm: str) -> None:
        super().__init__()
        self.model = nn.Sequential(*[ResBlock(channels, norm) for _ in range(n)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class ResBlockDecoder(nn.Module):
    """Doubles the resolution: [N – LReLU – Conv3×3 (→ hidden) – N – LReLU – ConvT3×3 s2] + ConvT3×3 s2.

    ``hidden`` defaults to the input width (GFLA's target decoder); GFLA's flow net passes the output width.
    """

    def __init__(self, cin: int, cout: int, norm: str, hidden: int | None = None) -> None:
        super().__init__()
        hidden = cin if hidden is None else hidden
        self.model = nn.Sequential(*norm_act(norm, cin), nn.Conv2d(cin, hidden, 3, 1, 1), *norm_act(norm, hidden),
                                   nn.ConvTranspose2d(hidden, cout, 3, 2, 1, output_padding=1))
        self.shortcut = nn.Sequential(nn.ConvTranspose2d(cin, cout, 3, 2, 1, output_padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) + self.shortcut(x)


class Jump(nn.Module):
    """The flow net's skip from the encoder: LReLU – ReflectionPad1 – Conv3×3 (no norm)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(activation(), nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class Output(nn.Module):
    """LReLU – ReflectionPad1 – Conv3×3 – Tanh (GFLA ``Output`` without a norm)."""

    def __init__(self, cin: int, cout: int = 3) -> None:
        super().__init__()
        self.model = nn.Sequential(activation(), nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def match_size(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Resize ``x`` to ``ref``'s spatial size where an odd size made them differ (never at GFLA's sizes)."""
    if x.shape[2:] == ref.shape[2:]:
        return x
    return F.interpolate(x, size=ref.shape[2:], mode="bilinear", align_corners=False)


def init_orthogonal(module: nn.Module, gain: float = 0.02) -> None:
    """GFLA ``init_type='orthogonal'``: conv weights orthogonal(gain), biases 0; norms keep (1, 0)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.orthogonal_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _mult(step: int, ngf: int, cap: int) -> int:
    """GFLA's width multiplier ``min(2**step, img_f // ngf)``."""
    return min(2 ** step, cap // ngf)


def _encoder(cin: int, ngf: int, cap: int, layers: int, norm: str) -> list[tuple[str, EncoderBlock]]:
    """GFLA's encoder stack: ``block0`` (cin → ngf) then ``encoder{i}`` (ngf·mult_prev → ngf·mult)."""
    blocks = [("block0", EncoderBlock(cin, ngf, norm))]
    mult = 1
    for i in range(layers - 1):
        prev, mult = mult, _mult(i + 1, ngf, cap)
        blocks.append((f"encoder{i}", EncoderBlock(ngf * prev, ngf * mult, norm)))
    return blocks


def _check_widths(ngf: int, cap: int, layers: int, what: str) -> None:
    if ngf < 1 or layers < 1 or cap < ngf:
        raise ModelError(f"{what}: needs ngf ≥ 1, layers ≥ 1 and a channel cap ≥ ngf (got {ngf}, {layers}, {cap})")


class PoseFlowNet(nn.Module):
    """GFLA's flow field estimator: flows and occlusion masks at the attention layers, coarse → fine.

    ``attn_layers`` a ∈ [1, layers) give outputs at 1/2^a. The input is one tensor (GFLA:
    ``cat(source image, source pose, target pose)``, 3 + 18 + 18 channels; the part-flow model gives each
    part's flow net its two sub-poses).
    """

    def __init__(self, in_channels: int, ngf: int = 32, max_channels: int = 256, layers: int = 5,
                 attn_layers: Sequence[int] = (2,), norm: str = "instance") -> None:
        super().__init__()
        _check_widths(ngf, max_channels, layers, "flow net")
        attn = sorted({int(a) for a in attn_layers}, reverse=True)
        if not attn or attn[-1] < 1 or attn[0] >= layers:
            raise ModelError(f"flow net: attention layers must lie in 1..{layers - 1}, got {list(attn_layers)}")
        self.encoder_layer = layers
        self.decoder_layer = layers - attn[-1]
        self.attn_layers = attn
        for name, block in _encoder(in_channels, ngf, max_channels, layers, norm):
            setattr(self, name, block)
        mult = _mult(layers - 1, ngf, max_channels) if layers > 1 else 1
        for i in range(self.decoder_layer):
            prev = mult
            mult = _mult(layers - i - 2, ngf, max_channels) if i != layers - 1 else 1
            setattr(self, f"decoder{i}", ResBlockDecoder(ngf * prev, ngf * mult, norm, hidden=ngf * mult))
            setattr(self, f"jump{i}", Jump(ngf * mult))
            if layers - i - 1 in attn:
                setattr(self, f"output{i}", nn.Conv2d(ngf * mult, 2, 3, 1, 1))
                setattr(self, f"mask{i}", nn.Sequential(nn.Conv2d(ngf * mult, 1, 3, 1, 1), nn.Sigmoid()))

    @property
    def encoder(self) -> list[EncoderBlock]:
        """The encoder blocks in order (``block0``, ``encoder0``, …): outputs at 1/2 … 1/2^layers."""
        return [self.block0] + [getattr(self, f"encoder{i}") for i in range(self.encoder_layer - 1)]

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
        flows, masks = [], []
        for i in range(self.decoder_layer):
            skip = getattr(self, f"jump{i}")(skips[self.encoder_layer - i - 2])
            x = match_size(getattr(self, f"decoder{i}")(x), skip) + skip
            if self.encoder_layer - i - 1 in self.attn_layers:
                flows.append(getattr(self, f"output{i}")(x))
                masks.append(getattr(self, f"mask{i}")(x))
        return flows, masks


def select_flow_net_inputs(state: Mapping[str, torch.Tensor], channels: Sequence[int],
                           prefix: str = "") -> dict[str, torch.Tensor]:
    """A flow net's state dict for a subset of its input channels (``block0``'s input norm and conv sliced).

    Why this is enough: only ``block0.model.0`` (the norm over the input channels) and ``block0.model.2``
    (the first conv) see the input; a per-channel norm and a conv restricted to some input channels are the
    same layers on fewer channels. The part-flow model initialises each part's flow net this way from
    GFLA's (3 image + 18 + 18 pose channels → the part's sub-pose channels).
    """
    index = torch.as_tensor(list(channels), dtype=torch.long)
    out = {}
    for key, value in state.items():
        if not key.startswith(prefix):
            continue
        name = key[len(prefix):]
        if name in ("block0.model.0.weight", "block0.model.0.bias"):
            value = value[index]
        elif name == "block0.model.2.weight":
            value = value[:, index]
        out[name] = value
    return out


class ExtractorAttn(nn.Module):
    """Content-aware local attention: softmax weights over the k×k source block around each flow target."""

    hidden = 128

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        k = int(kernel_size)
        if k < 1:
            raise ModelError(f"local attention kernel size must be ≥ 1, got {kernel_size}")
        self.kernel_size = k
        self.fully_connect_layer = nn.Sequential(
            nn.Conv2d(2 * channels, self.hidden, k, stride=k), activation(),
            nn.Conv2d(self.hidden, k * k, 1), nn.Softmax(dim=1))

    def forward(self, source: torch.Tensor, target: torch.Tensor, flow: torch.Tensor,
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """(attended source features at the target's size, the B×k²×h×w softmax weights)."""
        k = self.kernel_size
        block_source = block_extractor(source, flow, k)
        block_target = local_blocks(target, k)
        weights = self.fully_connect_layer(torch.cat((block_target, block_source), 1))
        attended = F.avg_pool2d(local_attn_reshape(weights, k) * block_source, k, k)
        return attended, weights


class PoseSourceNet(nn.Module):
    """EncoderBlocks on the source image; returns its features deepest first, then the image itself."""

    def __init__(self, in_channels: int, ngf: int, max_channels: int, layers: int, norm: str) -> None:
        super().__init__()
        self.layers = layers
        for name, block in _encoder(in_channels, ngf, max_channels, layers, norm):
            setattr(self, name, block)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = [x]
        out = self.block0(x)
        features.append(out)
        for i in range(self.layers - 1):
            out = getattr(self, f"encoder{i}")(out)
            features.append(out)
        return features[::-1]


class PoseTargetNet(nn.Module):
    """Target-pose encoder, decoder stages with local attention at the attention layers, output block."""

    def __init__(self, pose_channels: int, out_channels: int, ngf: int, max_channels: int, layers: int,
                 num_blocks: int, attn_layers: Sequence[int], kernel_sizes: Mapping[int, int], norm: str) -> None:
        super().__init__()
        self.layers = layers
        self.attn_layers = set(attn_layers)
        for name, block in _encoder(pose_channels, ngf, max_channels, layers, norm):
            setattr(self, name, block)
        mult = _mult(layers - 1, ngf, max_channels)
        for i in range(layers):
            prev = mult
            mult = _mult(layers - i - 2, ngf, max_channels) if i != layers - 1 else 1
            up = ResBlockDecoder(ngf * prev, ngf * mult, norm)
            if num_blocks == 1:
                stage = nn.Sequential(up)
            else:
                stage = nn.Sequential(ResBlocks(num_blocks - 1, ngf * prev, norm), up)
            setattr(self, f"decoder{i}", stage)
            if layers - i in self.attn_layers:
                setattr(self, f"attn{i}", ExtractorAttn(ngf * prev, kernel_sizes[layers - i]))
        self.outconv = Output(ngf, out_channels)

    def forward(self, target_pose: torch.Tensor, source_features: Sequence[torch.Tensor],
                flows: Sequence[torch.Tensor], masks: Sequence[torch.Tensor],
                ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        out = self.block0(target_pose)
        for i in range(self.layers - 1):
            out = getattr(self, f"encoder{i}")(out)
        weights, counter = [], 0
        for i in range(self.layers):
            if self.layers - i in self.attn_layers:
                out = match_size(out, source_features[i])
                attended, w = getattr(self, f"attn{i}")(source_features[i], out, flows[counter])
                out = out * (1 - masks[counter]) + attended * masks[counter]
                weights.append(w)
                counter += 1
            out = getattr(self, f"decoder{i}")(out)
        return self.outconv(out), weights


# --------------------------------------------------------------------------------------------------
# The generator
# --------------------------------------------------------------------------------------------------
def warp_image(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """The image bilinearly warped by a (lower-resolution) flow, for figures: out(x, y) = image(x+dx, y+dy)."""
    from .flow import warp

    return warp(image, flow, padding="border")


def gaussian_sampler(features: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """GFLA's sampling-correctness sampler ``Resample2d(4, 1, sigma=2)`` (a flow at the features' size)."""
    return resample2d(features, flow, CORRECTNESS_KERNEL, 1, CORRECTNESS_SIGMA)


def check_inputs(source_image: torch.Tensor, source_heatmaps: torch.Tensor, target_heatmaps: torch.Tensor,
                 image_channels: int, pose_channels: int, min_side: int) -> None:
    """One-line ModelErrors for the generator call's tensors (shapes, matching sizes, a flow net's minimum)."""
    if source_image.dim() != 4 or source_image.shape[1] != image_channels:
        raise ModelError(f"source image must be B×{image_channels}×H×W, got {tuple(source_image.shape)}")
    for name, maps in (("source", source_heatmaps), ("target", target_heatmaps)):
        if maps.dim() != 4 or maps.shape[1] != pose_channels:
            raise ModelError(f"{name} heatmaps must be B×{pose_channels}×H×W, got {tuple(maps.shape)}")
        if maps.shape[0] != source_image.shape[0] or maps.shape[2:] != source_image.shape[2:]:
            raise ModelError(f"{name} heatmaps {tuple(maps.shape)} do not match the image "
                             f"{tuple(source_image.shape)}")
    h, w = source_image.shape[2:]
    if min(h, w) < min_side:
        raise ModelError(f"image {h}x{w} is too small for the flow net (min side {min_side})")


class GFLAGenerator(Generator):
    arch = "gfla"
    #: the frames of the released models (``posetransfer models`` / ``summary``)
    dataset_frames = DATASET_FRAMES

    def __init__(self, ngf: int = 64, max_channels: int = 512, layers: int = 3, num_blocks: int = 2,
                 attn_layers: Sequence[int] = (2, 3), kernel_sizes: Sequence[int] = (5, 3), flow_ngf: int = 32,
                 flow_max_channels: int = 256, flow_layers: int = 5, norm: str = "instance",
                 image_channels: int = 3, pose_channels: int = 18) -> None:
        super().__init__()
        attn = [int(a) for a in attn_layers]
        kernels = [int(k) for k in kernel_sizes]
        if norm not in NORMS:
            raise ModelError(f"unknown norm {norm!r}; expected one of {', '.join(NORMS)}")
        if len(attn) != len(kernels) or len(set(attn)) != len(attn) or not attn:
            raise ModelError(f"gfla: attn_layers {attn} and kernel_sizes {kernels} must be equally long, "
                             "non-empty, without repeats")
        if min(attn) < 1 or max(attn) > layers or max(attn) >= flow_layers:
            raise ModelError(f"gfla: attention layers must lie in 1..{min(layers, flow_layers - 1)}, got {attn}")
        if num_blocks < 1:
            raise ModelError(f"gfla: num_blocks must be ≥ 1, got {num_blocks}")
        _check_widths(ngf, max_channels, layers, "gfla")
        self.pose_channels = int(pose_channels)
        self.image_channels = int(image_channels)
        self.flow_layers = int(flow_layers)
        self.kernel_by_layer = dict(zip(attn, kernels))
        self.attn_order = sorted(attn, reverse=True)            # coarse → fine: the order of the flows
        self.source = PoseSourceNet(image_channels, ngf, max_channels, layers, norm)
        self.target = PoseTargetNet(pose_channels, image_channels, ngf, max_channels, layers, num_blocks, attn,
                                    self.kernel_by_layer, norm)
        self.flow_net = PoseFlowNet(image_channels + 2 * pose_channels, flow_ngf, flow_max_channels, flow_layers,
                                    attn, norm)
        init_orthogonal(self)

    # ----------------------------------------------------------------------------------------------
    def flow_parameters(self):
        """The flow estimator's parameters (GFLA's first training stage trains only these)."""
        return self.flow_net.parameters()

    @property
    def flow_names(self) -> list[str]:
        return [f"1/{2 ** a}" for a in self.attn_order]

    def _check(self, source_image: torch.Tensor, source_heatmaps: torch.Tensor, target_heatmaps: torch.Tensor):
        check_inputs(source_image, source_heatmaps, target_heatmaps, self.image_channels, self.pose_channels,
                     2 ** self.flow_layers)

    def _flows(self, source_image, source_heatmaps, target_heatmaps):
        self._check(source_image, source_heatmaps, target_heatmaps)
        return self.flow_net(torch.cat((source_image, source_heatmaps, target_heatmaps), 1))

    def _output(self, image, source_image, flows, masks, extras) -> GeneratorOutput:
        with torch.no_grad():
            warped = warp_image(source_image, flows[-1])
        extras.update(flow_names=self.flow_names, warped=warped, flow_sampler=gaussian_sampler,
                      regularization_kernels=[self.kernel_by_layer[a] for a in self.attn_order])
        # GFLA's occlusion masks are also its attention masks (where the warped source features are used):
        # figures, the training image grid and the web demo show them through ``attention``
        return GeneratorOutput(image=warped if image is None else image, attention=list(masks), flows=list(flows),
                               visibility=list(masks), extras=extras)

    def predict_flows(self, source_image: torch.Tensor, source_heatmaps: torch.Tensor,
                      target_heatmaps: torch.Tensor) -> GeneratorOutput:
        """Stage 1: only the flow net runs; ``image`` is the source warped by the finest flow (for logging)."""
        flows, masks = self._flows(source_image, source_heatmaps, target_heatmaps)
        return self._output(None, source_image, flows, masks, {})

    def generate(self, source_image: torch.Tensor, source_heatmaps: torch.Tensor,
                 target_heatmaps: torch.Tensor) -> GeneratorOutput:
        flows, masks = self._flows(source_image, source_heatmaps, target_heatmaps)
        features = self.source(source_image)
        image, weights = self.target(target_heatmaps, features, flows, masks)
        if image.shape[2:] != source_image.shape[2:]:
            image = F.interpolate(image, size=source_image.shape[2:], mode="bilinear", align_corners=False)
        return self._output(image, source_image, flows, masks, {"attention_weights": weights})


def resolve_config(dataset: str | None, overrides: Mapping[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """(dataset, DEFAULTS ← DATASET_SETTINGS[dataset] ← explicit overrides); unknown keys are a ModelError."""
    return resolve_dataset(dataset, DEFAULTS, dict(overrides), DATASET_SETTINGS, kind="gfla")


@register_generator("gfla")
def build_gfla(dataset: str | None = None, **overrides: Any) -> GFLAGenerator:
    """``build_generator("gfla", dataset="market"|"deepfashion", ngf=..., ...)``."""
    dataset, config = resolve_config(dataset, overrides)
    return with_resolved_config(GFLAGenerator(**config), dataset, config)

