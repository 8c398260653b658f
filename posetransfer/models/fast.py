"""Inference optimisations applied to an already built generator, none of which changes its results.

``optimize_for_inference(G) -> G'`` returns a wrapper around a *copy* of ``G`` that

* runs under ``torch.inference_mode`` (no autograd bookkeeping, no saved tensors);
* folds every BatchNorm into the convolution right before it (eval-mode BN is an affine map per channel,
  so ``BN(conv(x)) = conv'(x)`` with rescaled weights and a new bias — exact up to float rounding).
  InstanceNorm **cannot** be folded: its mean and variance are computed from each input at inference time,
  so there is no constant affine map to merge (the DeepFashion presets use IN; only ``torch.compile`` can
  fuse IN with its ReLU there);
* stores weights and activations ``channels_last`` (NHWC), the layout oneDNN's convolutions prefer on CPU
  (and cuDNN's tensor-core kernels on GPU), and on CPU computes every InstanceNorm (+ its ReLU) in that
  layout (:class:`ChannelsLastInstanceNorm`: torch's own would copy to NCHW and back around each norm);
* on CPU, runs every convolution through oneDNN with its weight reordered *once* into oneDNN's blocked
  layout and the ReLU / Tanh that follows it applied inside the same call (:class:`PackedConv2d`) — the
  conv+activation fusion and weight packing inductor's freezing does, without compiling. Eager
  ``F.conv2d`` re-packs the weight on every call, which dominates PATN's small 32×16 feature maps;
* routes every ``scaled_dot_product_attention`` of the model (APATB, PoNA's two attentions, the flow
  model's pyramid non-local block) through :func:`attention` with a memory-efficient implementation.
  Why this is needed at all: the CPU flash kernel of SDPA only accepts equal query/key and value widths;
  APATB (128 vs 256), PoNA (32 vs 256 and 64 vs 512) have different widths, so plain SDPA silently falls
  back to the "math" path that materialises the HW×HW matrix — ~1 GB per map at 512×352. ``"chunked"``
  computes the same softmax(QKᵀ)V a block of query rows at a time (the arithmetic of every row is
  unchanged, so results are identical to the explicit product), ``"padded"`` zero-pads the query/key
  width so the flash kernel applies (zero columns add nothing to QKᵀ);
* on CPU, computes the wide 3×3 convolutions (:func:`~posetransfer.models.winograd.pays`: PATN's 512-input blocks) with Winograd
  F(2×2, 3×3) (:mod:`posetransfer.models.winograd`: 2.25× fewer multiplications, the tile products as one
  pre-packed grouped 1×1 oneDNN convolution; ``winograd=False`` keeps the direct kernel). By default only
  where the OpenMP pool waits passively (:func:`posetransfer.runtime.waits_passively`): its transforms are
  a dozen short ops per convolution, and with libgomp's default spin-waiting each op's barrier can stall
  for milliseconds on a busy machine — there Winograd made the model slower than the plain one, while the
  direct packed convolutions stay ahead under both policies (figures in the README);
* on CPU, runs the full-resolution modules a generator names in ``per_sample_modules`` one sample at a time
  (:class:`PerSample`: APATN's 256-channel decoder, ~3/4 of its memory at batch 8; same images, since every
  norm is per sample in eval mode);
* optionally compiles it with ``torch.compile`` (inductor, with weight freezing: conv+ReLU / conv+add
  fusion and fused C++ kernels for the memory-bound ops — norm, activation, padding, mask multiply, concat);
* optionally runs in bfloat16 (``precision="bf16"``; this one *does* change results — measured on a trained
  PATN: at most 2 grey levels, 0.13 on average — so it is off by default): on CUDA as autocast; on a CPU
  with bf16 dot-product instructions (AVX512-BF16, AMX: :func:`cpu_bf16_native`) with bf16 weights and
  activations end to end, the packed oneDNN convolutions computing in bf16 with float32 accumulation —
  about twice the multiply-adds per cycle of float32, the one lever left once the direct kernels run near
  the float32 FMA peak. Norm statistics and softmaxes accumulate in float32 inside their kernels; the
  output comes back float32. Without those instructions bf16 is emulated (slower than float32), so it is
  refused there.

The wrapper keeps the generator call ``G'(source_image, source_heatmaps, target_heatmaps,
return_extras=False)``; save the *original* model (the folded copy has no BN layers, so its state dict no
longer matches the architecture).

The attention switch is also usable on its own: ``with attention_impl("explicit"): G(...)`` runs any model
with the textbook attention (the baseline of the memory benchmark and of the FLOP counter, which does not
see inside the fused SDPA kernels).
"""
from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torch.overrides import TorchFunctionMode

from ..errors import ModelError
from .base import Generator, GeneratorOutput
from .winograd import WinogradConv2d
from .winograd import pays as winograd_pays

log = logging.getLogger(__name__)

#: "auto": SDPA when its fused kernels apply (equal widths, or any CUDA input), else "chunked".
ATTENTION_IMPLS = ("auto", "sdpa", "explicit", "chunked", "padded")

#: the budget of one query×key score block in "chunked" attention (bytes, all batch·head rows together)
CHUNK_BYTES = 32 * 2 ** 20

_SDPA = F.scaled_dot_product_attention

#: ``precision=``: float32 (the default: the plain model's images within 1e-4) or bfloat16 (opt-in, see above)
PRECISIONS = ("fp32", "bf16")

#: the dtypes the packed oneDNN path runs (bf16: ``precision="bf16"`` on a CPU with native bf16)
_PACKED_DTYPES = (torch.float32, torch.bfloat16)


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ModelError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


def cpu_bf16_native() -> bool:
    """Whether this CPU computes bf16 dot products in hardware (AVX512-BF16 or AMX), as oneDNN reports it."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


# --------------------------------------------------------------------------------------------------
# Attention implementations
# --------------------------------------------------------------------------------------------------
def _scores_scale(query: torch.Tensor, scale: float | None) -> float:
    return 1.0 / math.sqrt(query.shape[-1]) if scale is None else float(scale)


def explicit_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                       scale: float | None = None) -> torch.Tensor:
    """softmax(Q Kᵀ · scale) V with the full Nq×Nk matrix in memory — the textbook reference."""
    scores = query @ key.transpose(-2, -1)
    s = _scores_scale(query, scale)
    if s != 1.0:
        scores = scores * s
    return torch.softmax(scores, dim=-1) @ value


def chunked_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scale: float | None = None,
                      chunk_bytes: int = CHUNK_BYTES) -> torch.Tensor:
    """Exactly :func:`explicit_attention`, a block of query rows at a time.

    Each softmax row depends only on its own query, so splitting the rows changes nothing in the
    arithmetic of a row; peak memory drops from Nq×Nk to chunk×Nk scores.
    """
    n_q, n_k = query.shape[-2], key.shape[-2]
    batch = math.prod(query.shape[:-2]) or 1
    rows = max(16, chunk_bytes // max(1, n_k * query.element_size() * batch))
    if rows >= n_q:
        return explicit_attention(query, key, value, scale)
    key_t = key.transpose(-2, -1)
    s = _scores_scale(query, scale)
    out = value.new_empty(*query.shape[:-1], value.shape[-1])
    for start in range(0, n_q, rows):
        scores = query[..., start:start + rows, :] @ key_t
        if s != 1.0:
            scores = scores * s
        torch.matmul(torch.softmax(scores, dim=-1), value, out=out[..., start:start + rows, :])
    return out


def padded_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                     scale: float | None = None) -> torch.Tensor:
    """SDPA with query/key (or value) zero-padded to one width, so the fused flash kernel accepts it.

    Zero columns add nothing to Q Kᵀ; the scale is fixed from the *unpadded* width before padding.
    """
    s = _scores_scale(query, scale)
    d_qk, d_v = query.shape[-1], value.shape[-1]
    width = max(d_qk, d_v)
    if d_qk < width:
        query, key = F.pad(query, (0, width - d_qk)), F.pad(key, (0, width - d_qk))
    padded_value = F.pad(value, (0, width - d_v)) if d_v < width else value
    return _sdpa_4d(query, key, padded_value, s)[..., :d_v]


def _sdpa_4d(query, key, value, scale):
    """SDPA with a head axis added to 3-D inputs (the fused GPU kernels require B×heads×N×d) and contiguous
    operands: the fused kernels need a unit stride on the last axis, which ``x.flatten(2).transpose(1, 2)``
    (how the models lay out positions) does not have — SDPA would silently take the HW×HW math path."""
    query, key, value = query.contiguous(), key.contiguous(), value.contiguous()
    if query.dim() == 3:
        return _SDPA(query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1), scale=scale).squeeze(1)
    return _SDPA(query, key, value, scale=scale)


def attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scale: float | None = None,
              impl: str = "auto", chunk_bytes: int = CHUNK_BYTES) -> torch.Tensor:
    """softmax(Q Kᵀ · scale) V (scale ``None`` = 1/√d, as SDPA) with the chosen implementation."""
    if impl == "auto":
        same_width = query.shape[-1] == value.shape[-1]
        impl = "sdpa" if (same_width or query.device.type == "cuda") else "chunked"
    if impl == "sdpa":
        return _sdpa_4d(query, key, value, scale)
    if impl == "explicit":
        return explicit_attention(query, key, value, scale)
    if impl == "chunked":
        return chunked_attention(query, key, value, scale, chunk_bytes)
    if impl == "padded":
        return padded_attention(query, key, value, scale)
    raise ModelError(f"unknown attention implementation {impl!r}; expected one of {', '.join(ATTENTION_IMPLS)}")


class _AttentionMode(TorchFunctionMode):
    """Redirects ``F.scaled_dot_product_attention`` calls made inside the ``with`` block.

    A torch-function mode instead of edits to the model files: every architecture that calls SDPA gets
    the switch, with no copy of its forward code. Calls with a mask, dropout, causal flag or GQA are left
    to SDPA itself (none of our models makes such a call).
    """

    def __init__(self, impl: str, chunk_bytes: int = CHUNK_BYTES) -> None:
        super().__init__()
        self.impl, self.chunk_bytes, self.calls = impl, chunk_bytes, 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is _SDPA:
            plain = (len(args) == 3 and kwargs.get("attn_mask") is None and not kwargs.get("dropout_p")
                     and not kwargs.get("is_causal") and not kwargs.get("enable_gqa")
                     and set(kwargs) <= {"attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa"})
            if plain:
                self.calls += 1
                return attention(*args, scale=kwargs.get("scale"), impl=self.impl, chunk_bytes=self.chunk_bytes)
        return func(*args, **kwargs)


@contextlib.contextmanager
def attention_impl(impl: str = "auto", chunk_bytes: int = CHUNK_BYTES) -> Iterator[_AttentionMode]:
    """``with attention_impl("explicit"): G(...)`` — choose how every SDPA call inside is computed.

    ``"sdpa"`` leaves the call as it is (a head axis is added so the fused CUDA kernels apply).
    """
    if impl not in ATTENTION_IMPLS:
        raise ModelError(f"unknown attention implementation {impl!r}; expected one of {', '.join(ATTENTION_IMPLS)}")
    with _AttentionMode(impl, chunk_bytes) as mode:
        yield mode


# --------------------------------------------------------------------------------------------------
# BatchNorm folding
# --------------------------------------------------------------------------------------------------
def _foldable(conv: nn.Module, norm: nn.Module) -> bool:
    return (isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)) and type(norm) is nn.BatchNorm2d
            and norm.track_running_stats and norm.running_mean is not None
            and conv.out_channels == norm.num_features and conv.groups == 1)


def fold_batchnorm(module: nn.Module) -> int:
    """Fold every ``Conv2d``/``ConvTranspose2d`` → ``BatchNorm2d`` pair of an ``nn.Sequential`` in place.

    The BN becomes ``nn.Identity`` (indices unchanged). Only valid in eval mode — training-mode BN uses
    the batch statistics. Returns the number of folded pairs.
    """
    if module.training:
        raise ModelError("fold_batchnorm needs a model in eval mode (training-mode BatchNorm uses batch statistics)")
    folded = 0
    for seq in list(module.modules()):
        if not isinstance(seq, nn.Sequential):
            continue
        for i in range(len(seq) - 1):
            conv, norm = seq[i], seq[i + 1]
            if _foldable(conv, norm):
                seq[i] = fuse_conv_bn_eval(conv, norm, transpose=isinstance(conv, nn.ConvTranspose2d))
                seq[i + 1] = nn.Identity()
                folded += 1
    return folded


def count_instance_norms(module: nn.Module) -> int:
    return sum(isinstance(m, (nn.InstanceNorm2d, ChannelsLastInstanceNorm)) for m in module.modules())


class ChannelsLastInstanceNorm(nn.Module):
    """Eval-mode ``InstanceNorm2d`` (+ optional ReLU) computed on channels-last tensors without layout copies.

    Why: ``F.instance_norm`` normalises an NCHW view, so a channels-last input is copied to NCHW and its
    output comes back NCHW — and the next (channels-last) convolution copies it back: two layout copies per
    norm, which cost more than the fast path gains on instance-norm models (GFLA, the part-flow model, the
    DeepFashion presets). The instance norm of *one* sample is exactly the training-mode batch norm of a
    batch of one (statistics over H·W per channel, biased variance, same ``eps``), and ATen's batch norm
    has a vectorised channels-last kernel that keeps the layout; so each sample goes through it and lands
    in one channels-last output, the ReLU that follows done in place. (A reduction over the H·W rows of the
    (N, H·W, C) view — ``var_mean(dim=1)`` — is a strided reduction that ran 2-5× slower than torch's own
    NCHW instance norm; the per-sample batch norm is not.) Falls back to the module it replaces for other
    layouts, devices, dtypes and autograd.
    """

    def __init__(self, norm: nn.InstanceNorm2d, relu: bool = False) -> None:
        super().__init__()
        self.norm = norm
        self.relu = relu

    def extra_repr(self) -> str:
        return f"channels-last, post_op={'relu' if self.relu else 'none'}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        usable = (x.device.type == "cpu" and x.dtype in _PACKED_DTYPES and h * w > 1
                  and x.is_contiguous(memory_format=torch.channels_last)
                  and not (torch.is_grad_enabled() and x.requires_grad))
        if not usable:
            y = self.norm(x)
            return F.relu(y) if self.relu else y
        weight, bias = (self.norm.weight, self.norm.bias) if self.norm.affine else (None, None)
        if n == 1:
            y = F.batch_norm(x, None, None, weight, bias, training=True, eps=self.norm.eps)
        else:
            y = torch.empty_like(x)
            for i in range(n):
                y[i:i + 1].copy_(F.batch_norm(x[i:i + 1], None, None, weight, bias, training=True,
                                              eps=self.norm.eps))
        return y.relu_() if self.relu else y


def _cl_instance_norm(norm: nn.Module) -> bool:
    return (type(norm) is nn.InstanceNorm2d and not norm.track_running_stats)


def channels_last_instance_norms(module: nn.Module) -> int:
    """Replace every eval-mode ``InstanceNorm2d`` by a :class:`ChannelsLastInstanceNorm`, fusing the ReLU
    right after it in the same ``nn.Sequential``. Returns the number replaced."""
    replaced = 0
    for parent in list(module.modules()):
        if isinstance(parent, ChannelsLastInstanceNorm):
            continue
        for name, child in list(parent.named_children()):
            if not _cl_instance_norm(child):
                continue
            relu = False
            if isinstance(parent, nn.Sequential):
                index = int(name)
                if index + 1 < len(parent) and type(parent[index + 1]) is nn.ReLU:
                    relu = True
                    parent[index + 1] = nn.Identity()
            setattr(parent, name, ChannelsLastInstanceNorm(child, relu=relu))
            replaced += 1
    return replaced


# --------------------------------------------------------------------------------------------------
# Pre-packed oneDNN convolutions with a fused activation (CPU)
# --------------------------------------------------------------------------------------------------
#: activations oneDNN can apply inside the convolution (post-op), by module type
_POST_OPS = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid"}


def prepack_available() -> bool:
    """oneDNN (mkldnn) convolutions with pre-packed weights: the CPU build has them (``torch.ops.mkldnn``)."""
    return (torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
            and hasattr(torch.ops.mkldnn, "_convolution_pointwise"))


class PackedConv2d(nn.Module):
    """A ``Conv2d``/``ConvTranspose2d`` (+ optional ReLU/Tanh/Sigmoid) run as one oneDNN call on weights
    reordered once into oneDNN's blocked layout — what inductor's weight freezing emits, without compiling.

    Why it is faster: eager ``F.conv2d`` on CPU reorders the weight into the blocked layout on *every*
    call (a 512×512×3×3 weight is 9.4 MB) and runs the activation as a separate pass over the output.
    The packed weight depends on the input shape, so one is kept per shape (built on first use).
    Runs float32, or bfloat16 when the model was cast to it (``precision="bf16"``); falls back to the plain ops
    off CPU, for a dtype other than the weight's (autocast) and when autograd is recording.
    """

    def __init__(self, conv: nn.Conv2d | nn.ConvTranspose2d, activation: str = "none") -> None:
        super().__init__()
        self.transposed = isinstance(conv, nn.ConvTranspose2d)
        self.weight = nn.Parameter(conv.weight.detach().clone(), requires_grad=False)
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone(), requires_grad=False)
        self.stride, self.padding, self.dilation = list(conv.stride), list(conv.padding), list(conv.dilation)
        self.output_padding = list(conv.output_padding) if self.transposed else None
        self.groups = conv.groups
        self.activation = activation
        self._packed: dict[tuple, torch.Tensor] = {}

    def extra_repr(self) -> str:
        kind = "ConvTranspose2d" if self.transposed else "Conv2d"
        return f"{kind}{tuple(self.weight.shape)}, stride={self.stride}, padding={self.padding}, post_op={self.activation}"

    def _pack(self, shape: tuple) -> torch.Tensor:
        packed = self._packed.get(shape)
        if packed is None:
            if len(self._packed) >= 8:     # many input shapes: keep memory bounded
                self._packed.clear()
            weight = self.weight.detach()
            if self.transposed:   # this reorder takes the dense weight, the conv2d one an mkldnn tensor
                packed = torch.ops.mkldnn._reorder_convolution_transpose_weight(
                    weight.contiguous(), self.padding, self.output_padding, self.stride, self.dilation, self.groups, list(shape))
            else:
                packed = torch._C._nn.mkldnn_reorder_conv2d_weight(
                    weight.to_mkldnn(), self.padding, self.stride, self.dilation, self.groups, list(shape))
            self._packed[shape] = packed
        return packed

    def _plain(self, x: torch.Tensor) -> torch.Tensor:
        if self.transposed:
            y = F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding, self.output_padding,
                                   self.groups, self.dilation)
        else:
            y = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        return {"none": lambda t: t, "relu": F.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}[self.activation](y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        usable = (x.device.type == "cpu" and x.dtype == self.weight.dtype and x.dtype in _PACKED_DTYPES
                  and x.dim() == 4 and not (torch.is_grad_enabled() and x.requires_grad))
        if not usable:
            return self._plain(x)
        packed = self._pack(tuple(x.shape))
        if self.transposed:
            return torch.ops.mkldnn._convolution_transpose_pointwise(
                x, packed, self.bias, self.padding, self.output_padding, self.stride, self.dilation, self.groups,
                self.activation, [], "")
        return torch.ops.mkldnn._convolution_pointwise(
            x, packed, self.bias, self.padding, self.stride, self.dilation, self.groups, self.activation, [], "")


def _packable(conv: nn.Module) -> bool:
    return (type(conv) in (nn.Conv2d, nn.ConvTranspose2d) and conv.padding_mode == "zeros"
            and not isinstance(conv.padding, str) and conv.weight.dtype == torch.float32)


def _packed(conv: nn.Module, activation: str = "none", winograd: bool = False) -> nn.Module:
    """The fast replacement of one convolution: Winograd for wide 3×3 ones (when asked), else packed oneDNN."""
    if winograd and winograd_pays(conv) and activation in ("none", "relu"):
        return WinogradConv2d(conv, activation, product=PackedConv2d)
    return PackedConv2d(conv, activation)


def prepack_convolutions(module: nn.Module, winograd: bool = False) -> int:
    """Replace every plain conv by a :class:`PackedConv2d` (or, with ``winograd``, a wide 3×3 one by a
    :class:`~posetransfer.models.winograd.WinogradConv2d`), fusing the activation that follows it (directly,
    or after a BN already folded to ``Identity``) in the same ``nn.Sequential``. Eval only.
    Returns the number of replaced convolutions."""
    replaced = 0
    for parent in list(module.modules()):
        if isinstance(parent, (PackedConv2d, WinogradConv2d)):
            continue
        if isinstance(parent, nn.Sequential):
            i = 0
            while i < len(parent):
                conv = parent[i]
                if _packable(conv):
                    j = i + 1
                    while j < len(parent) and type(parent[j]) is nn.Identity:
                        j += 1           # a folded BN
                    act = _POST_OPS.get(type(parent[j])) if j < len(parent) else None
                    if act:
                        parent[i] = _packed(conv, act, winograd)
                        parent[j] = nn.Identity()
                    else:
                        parent[i] = _packed(conv, winograd=winograd)
                    replaced += 1
                i += 1
            continue
        for name, child in list(parent.named_children()):
            if _packable(child) and not isinstance(parent, nn.Sequential):
                setattr(parent, name, _packed(child, winograd=winograd))
                replaced += 1
    return replaced


class PerSample(nn.Module):
    """Runs ``module`` on one sample at a time and concatenates the results.

    Why: a decoder that keeps many channels up to full resolution (APATN's TPAMI decoder: 256 channels at
    256×176, 369 MiB per activation for a batch of 8) holds most of a model's inference memory, while at
    full resolution one sample already fills the CPU's convolution kernels — decoding per sample costs
    no time (measured) and divides that memory by the batch size. In eval mode every norm is per sample
    (instance) or frozen (batch), so the images are the same as the batched decoder's.
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] == 1:
            return self.module(x)
        return torch.cat([self.module(sample) for sample in x.split(1)])


def split_per_sample(model: nn.Module) -> list[str]:
    """Wrap the submodules a generator names in ``per_sample_modules`` in :class:`PerSample`; their names."""
    names = list(getattr(model, "per_sample_modules", ()))
    for name in names:
        module = getattr(model, name)
        if not isinstance(module, PerSample):
            setattr(model, name, PerSample(module))
    return names


# --------------------------------------------------------------------------------------------------
# The wrapper
# --------------------------------------------------------------------------------------------------
def _to_layout(x, channels_last: bool):
    if channels_last and isinstance(x, torch.Tensor) and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


class InferenceGenerator(Generator):
    """An optimised copy of a generator (see :func:`optimize_for_inference`); same call, same outputs."""

    def __init__(self, model: nn.Module, *, channels_last: bool, attention: str, precision: str,
                 compiled: bool, folded: int, packed: int = 0, compile_options: dict | None = None,
                 max_batch: int | None = None, per_sample: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.model = model
        self.arch = getattr(model, "arch", "")
        self.config = dict(getattr(model, "config", {}))
        self.pose_channels = getattr(model, "pose_channels", 18)
        self.channels_last = channels_last
        self.attention = attention
        self.precision = precision
        #: bf16 on CPU: the weights are bf16 and the inputs are cast to it (no autocast: every op runs bf16)
        self.input_dtype = (torch.bfloat16 if precision == "bf16" and all(p.device.type == "cpu"
                                                                          for p in model.parameters())
                            else None)
        self.folded_batchnorms = folded
        self.packed_convolutions = packed
        self.compiled = compiled
        #: run larger batches as micro-batches of this size (peak activation memory of ``max_batch`` images)
        self.max_batch = max_batch
        #: submodules run one sample at a time (:class:`PerSample`)
        self.per_sample = tuple(per_sample)
        #: seconds spent in the first (compiling) call; None until then or when not compiled
        self.compile_seconds: float | None = None
        self._calls = 0
        runner = model
        if compiled:
            runner = torch.compile(model, dynamic=False, options=compile_options or {"freezing": True})
        object.__setattr__(self, "_runner", runner)  # not a submodule: keeps state_dict keys = model.*

    def extra_repr(self) -> str:
        return (f"arch={self.arch!r}, channels_last={self.channels_last}, attention={self.attention!r}, "
                f"folded_batchnorms={self.folded_batchnorms}, packed_convolutions={self.packed_convolutions}, "
                f"compiled={self.compiled}, precision={self.precision}, max_batch={self.max_batch}, "
                f"per_sample={self.per_sample}")

    def description(self) -> dict:
        """What this fast path applied, for results files and logs."""
        from ..runtime import thread_settings

        return {"fast": True, "folded_batchnorms": self.folded_batchnorms,
                "packed_convolutions": self.packed_convolutions,
                "winograd_convolutions": sum(isinstance(m, WinogradConv2d) for m in self.model.modules()),
                "channels_last_instance_norms": getattr(self, "channels_last_instance_norms", 0),
                "channels_last": self.channels_last, "attention": self.attention, "compiled": self.compiled,
                "precision": self.precision, "per_sample": list(self.per_sample), **thread_settings()}

    def train(self, mode: bool = True):
        if mode:
            raise ModelError("an optimize_for_inference() model is inference-only; train the original generator")
        return super().train(False)

    def generate(self, source_image, source_heatmaps, target_heatmaps) -> GeneratorOutput:
        return self.forward(source_image, source_heatmaps, target_heatmaps, return_extras=True)

    def forward(self, source_image, source_heatmaps, target_heatmaps, return_extras: bool = False):
        inputs = [_to_layout(t, self.channels_last) for t in (source_image, source_heatmaps, target_heatmaps)]
        if self.input_dtype is not None:
            inputs = [t.to(self.input_dtype) for t in inputs]
        device = inputs[0].device.type
        autocast = (torch.autocast(device, dtype=torch.bfloat16)
                    if self.precision == "bf16" and self.input_dtype is None else contextlib.nullcontext())
        first = self.compiled and self._calls == 0
        start = time.perf_counter()
        step = self.max_batch or inputs[0].shape[0]
        with torch.inference_mode(), attention_impl(self.attention), autocast:
            if return_extras or step >= inputs[0].shape[0]:
                out = self._runner(*inputs, return_extras=return_extras)
            else:   # micro-batches: every norm is per sample in eval mode, so the images are the same
                out = torch.cat([self._runner(*(t[i:i + step] for t in inputs))
                                 for i in range(0, inputs[0].shape[0], step)])
        if first:
            self.compile_seconds = time.perf_counter() - start
        self._calls += 1
        if isinstance(out, GeneratorOutput):    # every tensor back in float32 (bf16 has no NumPy dtype)
            out.image = out.image.float().contiguous()
            for name in ("attention", "flows", "visibility"):
                setattr(out, name, [_as_float(t) for t in getattr(out, name)])
            out.extras = {k: ([_as_float(t) for t in v] if isinstance(v, list) else _as_float(v))
                          for k, v in out.extras.items()}
            return out
        return out.float().contiguous()


def _as_float(x):
    return x.float() if isinstance(x, torch.Tensor) and x.is_floating_point() else x


def optimize_for_inference(G: nn.Module, channels_last: bool = True, fold_bn: bool = True, compile: bool = False,
                           attention: str = "auto", precision: str = "fp32", prepack: bool | None = None,
                           max_batch: int | None = None, per_sample: bool | None = None,
                           winograd: bool | None = None, inplace: bool = False,
                           compile_options: dict | None = None) -> InferenceGenerator:
    """Return an inference-only copy of ``G`` with the optimisations above; ``G`` is left untouched.

    ``prepack`` (default: on for a CPU model when oneDNN is available and ``compile`` is off — inductor packs
    its own weights) replaces the convolutions by :class:`PackedConv2d` (pre-packed weights, fused ReLU/Tanh).
    ``precision="bf16"`` runs in bfloat16 (CUDA: autocast; CPU: bf16 weights and activations, only on a CPU
    with native bf16, :func:`cpu_bf16_native`; no Winograd there, whose transforms would round in bf16);
    results change (a trained PATN: 2 grey levels at most; README, Performance: bfloat16).
    ``max_batch`` splits larger batches into micro-batches (same images: in eval mode every norm is per
    sample or fixed), bounding peak activation memory; ignored with ``return_extras``.
    ``per_sample`` (default: on for a CPU model) runs the memory-heavy full-resolution modules a generator
    names in ``per_sample_modules`` one sample at a time (:class:`PerSample`; APATN's decoder). Off on GPU,
    where a batch-1 convolution leaves the device underused.
    ``compile=True`` compiles lazily on the first call (``G'.compile_seconds`` records how long it took).
    """
    if attention not in ATTENTION_IMPLS:
        raise ModelError(f"unknown attention implementation {attention!r}; expected one of {', '.join(ATTENTION_IMPLS)}")
    _check_precision(precision)
    if max_batch is not None and int(max_batch) < 1:
        raise ModelError(f"max_batch must be a positive integer, got {max_batch!r}")
    if isinstance(G, InferenceGenerator):
        raise ModelError("this generator is already optimized; pass the original model")
    model = G if inplace else copy.deepcopy(G)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    folded = fold_batchnorm(model) if fold_bn else 0
    on_cpu = all(p.device.type == "cpu" for p in model.parameters())
    cpu_bf16 = precision == "bf16" and on_cpu
    if cpu_bf16 and not cpu_bf16_native():
        raise ModelError("precision bf16 on the CPU needs bf16 instructions (AVX512-BF16 or AMX), which this CPU "
                         "lacks: emulated bf16 runs slower than float32; use the default float32")
    if cpu_bf16 and compile:
        raise ModelError("precision bf16 on the CPU runs eager (packed bf16 oneDNN kernels); drop compile=True")
    if prepack is None:
        prepack = on_cpu and not compile and prepack_available()
    elif prepack and not prepack_available():
        raise ModelError("prepack=True needs a torch build with oneDNN (mkldnn) convolutions")
    if winograd is None:
        from ..runtime import waits_passively

        winograd = prepack and waits_passively() and not cpu_bf16
    elif winograd and not prepack:
        raise ModelError("winograd=True runs on the pre-packed oneDNN path: it needs prepack")
    elif winograd and cpu_bf16:
        raise ModelError("winograd=True computes in float32; it cannot run with precision bf16 on the CPU")
    cl_norms = channels_last_instance_norms(model) if channels_last and on_cpu and not compile else 0
    packed = prepack_convolutions(model, winograd=winograd) if prepack else 0
    if per_sample is None:
        per_sample = on_cpu
    split = split_per_sample(model) if per_sample else []
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if cpu_bf16:       # after folding (in float32) and packing (the packed weights are built on first use)
        model = model.to(torch.bfloat16)
    optimized = InferenceGenerator(model, channels_last=channels_last, attention=attention, precision=precision,
                                   compiled=compile, folded=folded, packed=packed, compile_options=compile_options,
                                   max_batch=max_batch, per_sample=tuple(split))
    optimized.channels_last_instance_norms = cl_norms
    return optimized


def prepare_for_inference(generator: nn.Module, fast: bool = True, precision: str = "fp32") -> tuple[nn.Module, dict]:
    """The module inference should run for ``generator``, and a description of what was applied.

    ``fast=True``: :func:`optimize_for_inference` with its defaults and ``precision`` (the generator itself is
    left as it is: save that one), except for generators whose ``fast_path_pays`` is False (measured slower
    through it), which run as they are (in float32: ``precision="bf16"`` is refused for them); ``fast=False``:
    the generator itself, in eval mode, float32. The description (``{"fast": bool, "precision": ...}``: folded
    BNs, packed / Winograd convolutions, threads, OpenMP wait policy) goes into the commands' results files,
    so every figure says which path made it.
    """
    from ..runtime import thread_settings

    _check_precision(precision)
    arch = getattr(generator, "arch", "") or "this"
    generator.eval()
    if not fast:
        if precision != "fp32":
            raise ModelError(f"precision {precision} runs on the inference fast path; drop --no-fast")
        return generator, {"fast": False, "optimized": False, "precision": "fp32", **thread_settings()}
    if not getattr(generator, "fast_path_pays", True):
        if precision != "fp32":
            raise ModelError(f"precision {precision} is not available for the {arch} generator: it runs as it "
                             "is, in float32 (Generator.fast_path_pays)")
        return generator, {"fast": True, "optimized": False, "precision": "fp32",
                           "why": f"the {arch} generator runs faster as it is (Generator.fast_path_pays)",
                           **thread_settings()}
    optimized = optimize_for_inference(generator, precision=precision)
    return optimized, {**optimized.description(), "optimized": True}
