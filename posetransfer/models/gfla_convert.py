"""Convert GFLA's released checkpoints (``latest_net_G.pth``, ``latest_net_D.pth`` of
RenYurui/Global-Flow-Local-Attention) into posetransfer safetensors files.

Generator (``PoseGenerator``): our ``gfla`` model keeps GFLA's module names and index layouts, so the
mapping is:

1. drop a ``module.`` prefix (DataParallel saves);
2. drop GFLA's duplicate keys: its ``Jump`` and ``Output`` blocks register their convolution twice (as
   ``conv1`` and inside ``model``), so ``torch.save(state_dict())`` holds every such tensor under both names
   — the ``conv1`` copy must equal the ``model`` one and is dropped;
3. read the architecture (widths, layers, ResBlocks per stage, attention layers and kernel sizes, the flow
   net's widths and depth, norm) from the tensor shapes, check it against ``--dataset`` (Market: one
   attention layer at 1/4, kernel 3; DeepFashion: 1/8 kernel 3 and 1/4 kernel 5) and load with
   ``strict=True`` (:func:`posetransfer.models.official._load_strict`: any other mismatch is a
   :class:`CheckpointError`).

The converted file records what the released weights expect as input (its input contract,
:func:`gfla_contract`: 256×256 for DeepFashion with the 256×176 dataset images stretched, GFLA's Gaussian
heatmaps), and the source file's name and SHA-256.

Discriminator (``ResDiscriminator``, spectral norm): → our ``spectral_resnet`` (the same layout;
``encoder{i}`` → ``encoders.{i}``). Old-style spectral-norm tensors (``weight_orig``, ``weight_u``,
``weight_v``) become ``parametrizations.weight.original`` / ``.0._u`` / ``.0._v``. A checkpoint saved by
PyTorch 1.0 has no ``weight_v`` but the normalised ``weight``; v is then solved so that the spectral norm
reproduces that weight — what PyTorch's own loader of such files does.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, ModelError
from ..modelfile import InputContract, save_discriminator, save_generator
from ..kinds import parse_kind, renamed_dataset
from .blocks import dataset_key
from .flow_discriminator import DATASET_SETTINGS as DISCRIMINATOR_SETTINGS
from .gfla import DATASET_FRAMES, DATASET_SETTINGS, DEFAULTS
from .official import _load_strict, _strip, read_official_state_dict, with_source
from .registry import build_discriminator, build_generator
from .weights_guard import check_declared_size

REPOSITORY = "RenYurui/Global-Flow-Local-Attention"
_DUPLICATE = re.compile(r"^(.*)\.conv1\.(weight|bias)$")


def gfla_contract(dataset: str) -> InputContract:
    """What the released GFLA models expect as input (``data/{fashion,market}_dataset.py``, ``util/pose_utils``).

    Images are resized (PIL bilinear) to the model size and normalised to [-1, 1]; the pose input is 18
    Gaussian heatmaps ``exp(−((y−y_j)² + (x−x_j)²) / 2σ²)`` (σ 6, peak 1, all-zero for a missing joint) at the
    image size, centred on the keypoints rescaled from the annotation frame and truncated to integers
    (``int(y · H/H₀)``, ``int(x · W/W₀)``). DeepFashion's annotations are in 256×176, its model runs at
    256×256: GFLA stretched its ``img_highres`` photos (750×1101, the shape of the 256×176 frame) to 256×256,
    so our 256×176 images are stretched the same way. Market's are in the model's 128×64.
    """
    key = dataset_key(dataset, DATASET_FRAMES, "gfla")
    kind = parse_kind(key)
    return InputContract(size=DATASET_FRAMES[key], heatmap="gaussian", sigma=6.0, kind=kind.name,
                         data_size=kind.size, image_resize="bilinear", keypoint_rounding="truncate",
                         provenance={"setting": f"GFLA released {key} weights ({REPOSITORY})"})


def drop_duplicate_convs(state: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """Remove the ``*.conv1.*`` copies GFLA's Jump / Output blocks save next to ``*.model.N.*``."""
    out = dict(state)
    for key, value in state.items():
        m = _DUPLICATE.match(key)
        if not m:
            continue
        twins = [k for k in state if re.fullmatch(rf"{re.escape(m.group(1))}\.model\.\d+\.{m.group(2)}", k)
                 and state[k].shape == value.shape]
        if not twins:
            raise CheckpointError(f"{path}: {key!r} has no twin inside {m.group(1)}.model — not a GFLA checkpoint")
        if not any(torch.equal(state[t], value) for t in twins):
            raise CheckpointError(f"{path}: {key!r} differs from its twin {twins[0]!r} (a corrupt checkpoint)")
        del out[key]
    return out


def _count(state: dict[str, torch.Tensor], pattern: str) -> int:
    found = {int(m.group(1)) for k in state if (m := re.match(pattern, k))}
    return max(found) + 1 if found else 0


def _tensor(state: dict[str, torch.Tensor], key: str, path: Path) -> torch.Tensor:
    if key not in state:
        raise CheckpointError(f"{path}: no {key!r} tensor — not a GFLA PoseGenerator checkpoint")
    return state[key]


def _norm_of(state: dict[str, torch.Tensor], prefix: str, conv_key: str) -> str:
    """``prefix`` = a block's first slot: a norm (with running stats for batch norm) or, without norm, a ReLU."""
    if f"{prefix}.running_mean" in state and f"{prefix}.weight" in state:
        return "batch"
    if f"{prefix}.weight" in state:
        return "instance"
    return "none" if conv_key in state else "instance"


def _widths(state: dict[str, torch.Tensor], net: str, layers: int, conv_index: int, path: Path) -> list[int]:
    names = ["block0"] + [f"encoder{i}" for i in range(layers - 1)]
    return [int(_tensor(state, f"{net}.{n}.model.{conv_index}.weight", path).shape[0]) for n in names]


def _cap(widths: list[int], default: int) -> int:
    """The channel cap: GFLA's default when it gives these widths (a cap the widths never reach is not
    visible in the weights), else the widest layer."""
    ngf = widths[0]
    if [ngf * min(2 ** i, default // ngf) for i in range(len(widths))] == widths:
        return default
    return max(widths)


def generator_config(state: dict[str, torch.Tensor], path: Path) -> dict[str, Any]:
    """The ``gfla`` options of a (prefix-stripped, de-duplicated) GFLA generator state dict."""
    norm = _norm_of(state, "source.block0.model.0", "source.block0.model.1.weight")
    conv = 1 if norm == "none" else 2                       # index of an EncoderBlock's first conv
    first = _tensor(state, f"source.block0.model.{conv}.weight", path)
    pose = _tensor(state, f"target.block0.model.{conv}.weight", path)
    flow = _tensor(state, f"flow_net.block0.model.{conv}.weight", path)
    layers = 1 + _count(state, r"^source\.encoder(\d+)\.")
    flow_layers = 1 + _count(state, r"^flow_net\.encoder(\d+)\.")
    widths = _widths(state, "source", layers, conv, path)
    flow_widths = _widths(state, "flow_net", flow_layers, conv, path)
    attn = {layers - int(m.group(1)): int(state[k].shape[2]) for k in state
            if (m := re.match(r"^target\.attn(\d+)\.fully_connect_layer\.0\.weight$", k))}
    if not attn:
        raise CheckpointError(f"{path}: no local-attention layer (target.attn*) — not a GFLA PoseGenerator")
    stage = "target.decoder0.0"
    if f"{stage}.shortcut.0.weight" in state:
        num_blocks = 1
    else:
        num_blocks = 1 + _count(state, rf"^{re.escape(stage)}\.model\.(\d+)\.model\.")
    order = sorted(attn)                                 # GFLA's --attn_layer order, e.g. 2,3
    return {"ngf": widths[0], "max_channels": _cap(widths, DEFAULTS["max_channels"]), "layers": layers,
            "num_blocks": num_blocks,
            "attn_layers": order, "kernel_sizes": [attn[a] for a in order], "flow_ngf": flow_widths[0],
            "flow_max_channels": _cap(flow_widths, DEFAULTS["flow_max_channels"]), "flow_layers": flow_layers, "norm": norm,
            "image_channels": int(first.shape[1]), "pose_channels": int(pose.shape[1]),
            "flow_input_channels": int(flow.shape[1])}


def _describe(values: dict[str, Any]) -> str:
    pairs = sorted(zip(values["attn_layers"], values["kernel_sizes"]), reverse=True)
    return ", ".join(f"1/{2 ** a} kernel {k}" for a, k in pairs)


def _checked_dataset(dataset: str | None, table: dict[str, Any], path: Path) -> str | None:
    """The settings key of ``dataset`` (any spelling), None for None; unknown: a CheckpointError naming ``path``."""
    if dataset is None:
        return None
    try:
        return dataset_key(dataset, table, "gfla")
    except ModelError as exc:
        raise CheckpointError(f"{path}: {exc}") from None


def dataset_of(config: dict[str, Any]) -> str | None:
    """The released dataset setting whose attention layers and kernel sizes these are (None: neither)."""
    for name, values in DATASET_SETTINGS.items():
        if sorted(zip(values["attn_layers"], values["kernel_sizes"])) == sorted(
                zip(config["attn_layers"], config["kernel_sizes"])):
            return name
    return None


def convert_generator_state(state: dict[str, torch.Tensor], path: str | os.PathLike = "<state>",
                            dataset: str | None = None, *, preset: str | None = None) -> nn.Module:
    """GFLA ``PoseGenerator`` state dict → our ``gfla`` generator (eval mode), loaded with strict=True.

    ``model.input_contract`` is :func:`gfla_contract` of the released setting with this attention layout
    (None when it matches none)."""
    path = Path(path)
    dataset = _checked_dataset(renamed_dataset(dataset, preset, "convert"), DATASET_SETTINGS, path)
    state = drop_duplicate_convs(_strip(state, "module."), path)
    if any(k.startswith("stream1_down.") or k.startswith("model.stream1_down.") for k in state):
        raise CheckpointError(f"{path}: holds an official PATN/PoNA generator, not GFLA (use --arch patn|pona)")
    if not any(k.startswith("flow_net.") for k in state):
        raise CheckpointError(f"{path}: no flow_net.* tensors — not a GFLA PoseGenerator checkpoint")
    config = generator_config(state, path)
    if config.pop("flow_input_channels") != config["image_channels"] + 2 * config["pose_channels"]:
        raise CheckpointError(f"{path}: the flow net's input is not image + source pose + target pose channels")
    found = dataset_of(config)
    if dataset is not None and found != dataset:
        raise CheckpointError(f"{path}: local attention at {_describe(config)}, but the released {dataset} model "
                              f"has {_describe(DATASET_SETTINGS[dataset])}")
    check_declared_size(lambda: build_generator("gfla", **config), state, str(path), config)
    model = _load_strict(build_generator("gfla", **({"dataset": dataset} if dataset else {}), **config), state, path)
    model.input_contract = gfla_contract(dataset or found) if (dataset or found) else None
    return model


def convert_checkpoint(source: str | os.PathLike, out: str | os.PathLike, dataset: str | None = None, *,
                       preset: str | None = None) -> nn.Module:
    """``posetransfer convert --arch gfla``: ``latest_net_G.pth`` → our ``.safetensors`` generator file."""
    dataset = renamed_dataset(dataset, preset, "convert")
    model = convert_generator_state(read_official_state_dict(source), source, dataset)
    if model.input_contract is None:
        raise CheckpointError(f"{source}: local attention at {_describe(model.config)} matches no released GFLA "
                              "model, so its input frame is unknown (only the released settings are converted)")
    model.input_contract = with_source(model, source)
    save_generator(model, out, model.input_contract)
    return model


# --------------------------------------------------------------------------------------------------
# Discriminator
# --------------------------------------------------------------------------------------------------
def _solve_v(weight_orig: torch.Tensor, u: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """v with u·W_orig·v = σ where W = W_orig / σ is the stored normalised weight (PyTorch 1.0 files)."""
    matrix = weight_orig.reshape(weight_orig.shape[0], -1).double()
    x = torch.linalg.lstsq(matrix, u.double().unsqueeze(1)).solution.squeeze(1)
    ratio = (weight_orig.double().abs().sum() / weight.double().abs().sum().clamp_min(1e-30))
    return (x / (u.double() @ matrix @ x) * ratio).to(weight_orig.dtype)


def convert_discriminator_state(state: dict[str, torch.Tensor], path: str | os.PathLike = "<state>",
                                dataset: str | None = None, *, preset: str | None = None) -> nn.Module:
    """GFLA ``ResDiscriminator`` state dict → our ``spectral_resnet`` (train mode, like a fresh D)."""
    path = Path(path)
    dataset = _checked_dataset(renamed_dataset(dataset, preset, "convert"), DISCRIMINATOR_SETTINGS, path)
    state = _strip(state, "module.")
    if "block0.model.1.weight_orig" not in state:
        raise CheckpointError(f"{path}: no 'block0.model.1.weight_orig' — not a GFLA ResDiscriminator checkpoint")
    mapped: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        base, _, leaf = key.rpartition(".")
        if leaf == "weight" and f"{base}.weight_orig" in state:
            continue                                            # PyTorch 1.0's stored normalised weight
        name = re.sub(r"^encoder(\d+)\.", r"encoders.\1.", base)
        if leaf == "weight_orig":
            mapped[f"{name}.parametrizations.weight.original"] = value
        elif leaf == "weight_u":
            mapped[f"{name}.parametrizations.weight.0._u"] = value
        elif leaf == "weight_v":
            mapped[f"{name}.parametrizations.weight.0._v"] = value
        else:
            mapped[f"{name}.{leaf}"] = value
        if leaf == "weight_orig" and f"{base}.weight_v" not in state:
            if f"{base}.weight" not in state or f"{base}.weight_u" not in state:
                raise CheckpointError(f"{path}: {base} has spectral norm but neither weight_v nor weight")
            mapped[f"{name}.parametrizations.weight.0._v"] = _solve_v(value, state[f"{base}.weight_u"],
                                                                     state[f"{base}.weight"])
    first = mapped["block0.model.1.parametrizations.weight.original"]
    n_layers = 1 + _count(mapped, r"^encoders\.(\d+)\.")
    widths = [int(first.shape[0])] + [int(_tensor(mapped, f"encoders.{i}.model.3.parametrizations.weight.original",
                                                  path).shape[0]) for i in range(n_layers - 1)]
    if dataset is not None:
        expected = DISCRIMINATOR_SETTINGS[dataset]["n_layers"]
        if expected != n_layers:
            raise CheckpointError(f"{path}: discriminator has {n_layers} layers, GFLA's {dataset} one has {expected}")
    config = {"input_nc": int(first.shape[1]), "ndf": widths[0], "max_channels": max(widths), "n_layers": n_layers,
              "spectral": True}
    check_declared_size(lambda: build_discriminator("spectral_resnet", **config), mapped, str(path), config)
    model = _load_strict(build_discriminator("spectral_resnet", **config), mapped, path)
    return model.train()


def convert_discriminator(source: str | os.PathLike, out: str | os.PathLike, dataset: str | None = None, *,
                          preset: str | None = None) -> nn.Module:
    """GFLA ``latest_net_D.pth`` → our discriminator ``.safetensors`` file."""
    model = convert_discriminator_state(read_official_state_dict(source), source,
                                        renamed_dataset(dataset, preset, "convert"))
    save_discriminator(model, out)
    return model

