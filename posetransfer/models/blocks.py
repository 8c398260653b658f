"""Building blocks shared by the PATN-family generators and discriminators.

Why one file: PATN, APATN, PoNA, the ResNet baseline and the discriminators all use the same encoder
(7×7 conv + two stride-2 3×3 convs), the same transposed-conv decoder and the same residual block. The
official code builds them as ``nn.Sequential`` lists, and its checkpoints address parameters by the list
index (``stream1_down.1.weight``, ``conv_block.6.weight``), so these helpers return Sequentials with
exactly that index layout. A dropout slot is always present (``nn.Dropout(0.0)`` when dropout is off) so
the index layout — hence the state-dict keys — does not depend on a training-time switch.

Attention goes through :func:`attend`, which uses ``torch.nn.functional.scaled_dot_product_attention``
(memory-efficient / flash kernels where available, never materialising the HW×HW matrix) and, when the
caller wants to look at the attention, :func:`attention_matrix` computes it explicitly.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError
from ..kinds import KINDS, find_kind, renamed_dataset

NORMS = ("batch", "instance", "none")

#: per-dataset defaults shared by the PATN-family generators (CVPR'19: BN on Market, IN on DeepFashion),
#: keyed by :attr:`posetransfer.kinds.Kind.dataset`
DATASET_SETTINGS: dict[str, dict] = {kind.dataset: {"norm": kind.norm} for kind in KINDS}


def dataset_key(dataset: str, table: Mapping[str, Any], kind: str | None = None) -> str:
    """The key of ``table`` (a model's per-dataset settings) for ``dataset``, in any spelling
    :func:`posetransfer.kinds.parse_kind` accepts (``fashion`` = ``deepfashion``); else a ModelError."""
    found = find_kind(dataset)
    if found is None or found.dataset not in table:
        raise ModelError(f"unknown {kind + ' ' if kind else ''}dataset {dataset!r}; known: {', '.join(table)}")
    return found.dataset


def resolve_dataset(dataset: str | None, defaults: dict, overrides: dict,
                    table: Mapping[str, dict] | None = None, kind: str | None = None) -> tuple[str | None, dict]:
    """(dataset key, ``defaults`` ← ``table[dataset]`` ← explicit ``overrides``); None overrides are ignored.

    ``table`` maps :attr:`~posetransfer.kinds.Kind.dataset` → option values (default
    :data:`DATASET_SETTINGS`); a model whose paper differs passes its own. ``kind`` names the model in the errors (an unknown dataset or option
    is a ModelError).
    """
    table = DATASET_SETTINGS if table is None else table
    overrides = dict(overrides)
    dataset = renamed_dataset(dataset, overrides.pop("preset", None), kind or "model")   # the old spelling
    config = dict(defaults)
    if dataset is not None:
        dataset = dataset_key(dataset, table, kind)
        config.update(table[dataset])
    unknown = set(overrides) - set(defaults)
    if unknown:
        raise ModelError(f"unknown {kind or 'model'} option(s) {', '.join(sorted(unknown))}; "
                         f"known: {', '.join(sorted(defaults))}")
    config.update({k: v for k, v in overrides.items() if v is not None})
    return dataset, config


def with_resolved_config(model: nn.Module, dataset: str | None, config: dict) -> nn.Module:
    """Record the full option set on the model; the registry stores it as ``model.config``."""
    model.resolved_config = {**({"dataset": dataset} if dataset is not None else {}), **config}
    return model


def norm_factory(norm: str) -> Callable[[int], nn.Module]:
    """'batch' → affine BatchNorm2d, 'instance' → InstanceNorm2d(affine=False) (as the official code), 'none'."""
    if norm == "batch":
        return lambda c: nn.BatchNorm2d(c, affine=True)
    if norm == "instance":
        return lambda c: nn.InstanceNorm2d(c, affine=False)
    if norm == "none":
        return lambda c: nn.Identity()
    raise ModelError(f"unknown norm {norm!r}; expected one of {', '.join(NORMS)}")


def conv_bias(norm: str) -> bool:
    """Official rule: convs carry a bias unless followed by an affine (batch) norm."""
    return norm != "batch"


def check_dropout(dropout: float) -> float:
    dropout = float(dropout)
    if not 0.0 <= dropout < 1.0:
        raise ModelError(f"dropout must be in [0, 1), got {dropout}")
    return dropout


def encoder(in_channels: int, ngf: int, norm: str, n_down: int = 2) -> nn.Sequential:
    """ReflectionPad3 – Conv7×7 – N – ReLU, then ``n_down`` × (Conv3×3 s2 – N – ReLU); widths ngf·2^i.

    Index layout = official ``stream1_down`` / ``stream2_down`` (convs at 1, 4, 7; norms at 2, 5, 8).
    """
    make_norm, bias = norm_factory(norm), conv_bias(norm)
    layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7, bias=bias), make_norm(ngf),
                               nn.ReLU(True)]
    for i in range(n_down):
        c = ngf * 2 ** i
        layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1, bias=bias), make_norm(2 * c), nn.ReLU(True)]
    return nn.Sequential(*layers)


def transposed_decoder(ngf: int, out_channels: int, norm: str, n_up: int = 2) -> nn.Sequential:
    """n_up × (ConvT3×3 s2 – N – ReLU) halving the width, then RefPad3 – Conv7×7 (bias) – Tanh.

    Index layout = official ``stream1_up`` (transposed convs at 0, 3; norms at 1, 4; final conv at 7).
    """
    make_norm, bias = norm_factory(norm), conv_bias(norm)
    layers: list[nn.Module] = []
    for i in range(n_up):
        c = ngf * 2 ** (n_up - i)
        layers += [nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1, bias=bias),
                   make_norm(c // 2), nn.ReLU(True)]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh()]
    return nn.Sequential(*layers)


def conv_pair(in_ch: int, mid_ch: int, out_ch: int, norm: str, dropout: float, final_norm: bool = True,
              first_kernel: int = 3) -> nn.Sequential:
    """[Pad] – Conv(in→mid) – N – ReLU – Dropout – RefPad1 – Conv3×3(mid→out) – [N].

    The body of the official ResnetBlock / PATB streams: indices 1, 2 (conv, norm), 4 (dropout), 6, 7.
    With ``first_kernel=1`` the first pad is an identity (the APATB's 1×1 fusion conv) so the indices stay.
    """
    make_norm, bias = norm_factory(norm), conv_bias(norm)
    pad: nn.Module = nn.ReflectionPad2d(1) if first_kernel == 3 else nn.Identity()
    layers: list[nn.Module] = [pad, nn.Conv2d(in_ch, mid_ch, first_kernel, bias=bias), make_norm(mid_ch),
                               nn.ReLU(True), nn.Dropout(dropout), nn.ReflectionPad2d(1),
                               nn.Conv2d(mid_ch, out_ch, 3, bias=bias)]
    if final_norm:
        layers.append(make_norm(out_ch))
    return nn.Sequential(*layers)


class ResnetBlock(nn.Module):
    """x + (RefPad1 – Conv3×3 – N – ReLU – Dropout – RefPad1 – Conv3×3 – N); keys ``conv_block.{1,2,6,7}``."""

    def __init__(self, dim: int, norm: str = "instance", dropout: float = 0.0) -> None:
        super().__init__()
        self.conv_block = conv_pair(dim, dim, dim, norm, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


def init_normal(module: nn.Module, std: float = 0.02) -> nn.Module:
    """Official ``init_type='normal'``: conv / linear weights ~ N(0, std), BatchNorm weight ~ N(1, std), bias 0.

    Conv biases keep PyTorch's default (the official code leaves them alone too).
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
        elif isinstance(m, nn.BatchNorm2d) and m.affine:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
    return module


def flatten_positions(x: torch.Tensor) -> torch.Tensor:
    """B×C×H×W → B×(H·W)×C (one row per spatial position, row-major)."""
    return x.flatten(2).transpose(1, 2)


def attend(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """softmax(Q Kᵀ) V without 1/√d scaling (none of the papers scales), via SDPA.

    query: B×Nq×C, key: B×Nk×C, value: B×Nk×Cv → B×Nq×Cv. The HW×HW matrix is never stored when a
    memory-efficient kernel is available.
    """
    # fused (flash / memory-efficient) kernels only accept B×heads×L×E inputs: add a single head axis
    out = F.scaled_dot_product_attention(query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1), scale=1.0)
    return out.squeeze(1)


def attention_matrix(query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """The explicit softmax(Q Kᵀ) (rows sum to 1), B×Nq×Nk — for visualisation and for tests."""
    return torch.softmax(query @ key.transpose(1, 2), dim=-1)


def attention_summary(matrix: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Turn a B×Nq×Nk attention matrix into a B×1×h×w map in [0, 1] over the *key* (source) positions.

    The map is the attention each source position receives, averaged over all target positions and scaled
    by its per-image maximum — the papers show such maps (APATN Fig. 11) without saying how they aggregate.
    """
    received = matrix.mean(dim=1)                                   # B×Nk
    received = received / received.amax(dim=1, keepdim=True).clamp_min(1e-12)
    return received.reshape(matrix.shape[0], 1, *size)


def count_parameters(module: nn.Module) -> int:
    """All parameters of ``module`` (trainable or not): the number the papers' tables give."""
    return sum(p.numel() for p in module.parameters())
