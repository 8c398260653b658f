"""Convert the officially released PATN / PoNA checkpoints (``*_net_netG.pth``, ``*_net_netD_PB.pth``,
``*_net_netD_PP.pth``) into posetransfer safetensors files.

Why the mapping is short: our generators use the official module names and ``nn.Sequential`` index
layouts (``stream1_down``, ``stream2_down``, ``att.{i}.conv_block_stream{1,2}`` / PoNA's ``att.{i}.dconv``
..., ``stream1_up``; the discriminator's single ``model`` Sequential). What remains:

1. the official generator wrapper stores the network as ``self.model`` → strip the ``model.`` prefix
   (and ``module.`` from DataParallel saves); discriminators keep ``model.`` — it is our name too;
2. PyTorch 0.3 saved ``running_mean`` / ``running_var`` buffers for InstanceNorm layers, which current
   InstanceNorm (``track_running_stats=False``) does not have → drop those keys, and only those; its
   BatchNorm had no ``num_batches_tracked`` counter → add it as 0;
3. a model trained with ``--no_dropout`` has no Dropout slot, so its conv indices after the dropout are one
   lower (``.5`` / ``.6`` instead of ``.6`` / ``.7``) → shift them (our layout always has the slot);
4. the architecture options (width, blocks, norm, ...) are read from the tensor shapes and key names.

The result is then loaded with ``strict=True``: any other mismatch is a :class:`CheckpointError`.
Files are read with ``torch.load(weights_only=True)`` — never unpickling arbitrary objects.

The converted file records the official test pipeline as its input contract (:func:`official_contract`;
``test.py`` + ``data/keypoint.py`` + ``tool/generate_pose_map_{market,fashion}.py`` of tengteng95/Pose-Transfer,
which PoNA's repository follows): images ``ToTensor`` + ``Normalize(0.5, 0.5)``; Market 128×64 with float32
Gaussian maps, σ 6; DeepFashion 256×176 with the Gaussians stored as uint8 — every value below 1 truncated,
so one pixel per joint (``onehot``). Without ``--dataset`` the setting follows the weights' norm (batch norm:
Market, instance norm: DeepFashion, the official commands' choice). Its provenance names the ``.pth`` file
and its SHA-256.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, ModelError
from ..io import sha256_file
from ..modelfile import InputContract, save_discriminator, save_generator
from ..kinds import parse_kind, renamed_dataset
from .blocks import DATASET_SETTINGS, dataset_key
from .registry import build_discriminator, build_generator
from .weights_guard import check_declared_size

GENERATOR_ARCHS = ("patn", "pona")
REPOSITORIES = {"patn": "tengteng95/Pose-Transfer", "pona": "Zhangjinso/PoNA"}
#: the pose maps of the official test-time inputs per dataset, in the dataset's frame, σ 6 (module docstring)
OFFICIAL_HEATMAPS: dict[str, str] = {"market": "gaussian", "deepfashion": "onehot"}
_STAT_SUFFIXES = (".running_mean", ".running_var", ".num_batches_tracked")


def read_official_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a plain ``{name: tensor}`` state dict from a ``.pth`` file without executing pickled code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, zip errors, disallowed globals, ...
        if "global" in str(exc).lower():
            raise CheckpointError(f"{path}: holds pickled Python objects, not a plain state dict of tensors "
                                  "(refused: only weights are loaded)") from None
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__})") from None
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"{path}: not a plain state dict of tensors (got {type(state).__name__})")
    bad = next((k for k, v in state.items() if not (isinstance(k, str) and isinstance(v, torch.Tensor))), None)
    if bad is not None:
        raise CheckpointError(f"{path}: not a plain state dict of tensors (entry {str(bad)[:60]!r} is a "
                              f"{type(state[bad]).__name__})")
    return dict(state)


def _strip(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    if all(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}
    return state


def _shift_no_dropout(state: dict[str, torch.Tensor], block_pattern: str) -> tuple[dict[str, torch.Tensor], bool]:
    """Move conv/norm indices 5, 6 of dropout-free residual bodies to our 6, 7. Returns (state, had_dropout)."""
    body = re.compile(rf"^({block_pattern})\.(\d+)\.(.+)$")
    indices = {int(m.group(2)) for k in state if (m := body.match(k))}
    if not indices or 6 in indices and 5 not in indices or max(indices) >= 7:
        return state, True
    out = {}
    for key, value in state.items():
        m = body.match(key)
        if m and int(m.group(2)) >= 5:
            key = f"{m.group(1)}.{int(m.group(2)) + 1}.{m.group(3)}"
        out[key] = value
    return out, False


def _first(state: dict[str, torch.Tensor], key: str, path: Path, what: str) -> torch.Tensor:
    if key not in state:
        raise CheckpointError(f"{path}: no {key!r} tensor — not an official {what} checkpoint")
    return state[key]


def _norm_of(state: dict[str, torch.Tensor], prefix: str) -> str:
    """Batch norm is affine (has ``.weight``) in the official code; instance norm has none (or only stats)."""
    return "batch" if f"{prefix}.weight" in state else "instance"


def _check_dataset(norm: str, dataset: str | None, path: Path) -> str | None:
    """The settings key of ``dataset`` (None stays None), checked against the weights' norm."""
    if dataset is None:
        return None
    try:
        dataset = dataset_key(dataset, DATASET_SETTINGS)
    except ModelError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    expected = DATASET_SETTINGS[dataset]["norm"]
    if expected != norm:
        raise CheckpointError(f"{path}: weights use {norm} norm but dataset {dataset!r} means {expected} norm")
    return dataset


def generator_config(arch: str, state: dict[str, torch.Tensor], path: Path) -> dict[str, Any]:
    """Read the architecture options of an official generator from its (prefix-stripped) state dict."""
    first = _first(state, "stream1_down.1.weight", path, f"{arch.upper()} generator")
    pose = _first(state, "stream2_down.1.weight", path, f"{arch.upper()} generator")
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"^att\.(\d+)\.", k))}
    n_blocks = max(blocks) + 1 if blocks else 0
    config: dict[str, Any] = {"ngf": int(first.shape[0]), "n_blocks": n_blocks,
                              "norm": _norm_of(state, "stream1_down.2"), "pose_channels": int(pose.shape[1]) // 2}
    if arch == "patn":
        dim = 4 * config["ngf"]
        second = state.get("att.1.conv_block_stream2.1.weight")
        config["concat"] = second is None or int(second.shape[1]) == 2 * dim
    else:  # pona: the double convs always hold a Dropout(0.5); the self-attention may be ablated
        config["self_attention"] = "att.0.att2.query_conv.weight" in state or n_blocks == 0
        config["cross_attention"] = "att.0.query_conv.weight" in state or n_blocks == 0
        if n_blocks and _norm_of(state, "att.0.conv.conv.1") != config["norm"]:
            raise CheckpointError(f"{path}: PoNA blocks and encoders use different norms; only one norm is supported")
    return config


def convert_generator_state(arch: str, state: dict[str, torch.Tensor], path: str | os.PathLike = "<state>",
                            dataset: str | None = None, *, preset: str | None = None) -> nn.Module:
    """Official generator state dict → our generator (arch, config set; eval mode), loaded with strict=True.

    ``model.input_contract`` is the official test pipeline of ``dataset`` (or of the dataset the weights'
    norm implies), without the file provenance (:func:`convert_checkpoint` adds it)."""
    path = Path(path)
    if arch not in GENERATOR_ARCHS:
        raise CheckpointError(f"{path}: no official checkpoint conversion for {arch!r}; "
                              f"known: {', '.join(GENERATOR_ARCHS)}")
    state = _strip(_strip(state, "module."), "model.")
    found = _guess_arch(state)
    if found is not None and found != arch:
        raise CheckpointError(f"{path}: holds an official {found.upper()} generator, not {arch.upper()} "
                              f"(use --arch {found})")
    dropout = 0.5
    if arch == "patn":
        state, had_dropout = _shift_no_dropout(state, r"att\.\d+\.conv_block_stream[12]")
        dropout = 0.5 if had_dropout else 0.0
    config = generator_config(arch, state, path)
    dataset = _check_dataset(config["norm"], renamed_dataset(dataset, preset, "convert"), path)
    config["dropout"] = dropout
    check_declared_size(lambda: build_generator(arch, **config), state, str(path), config)
    model = _load_strict(build_generator(arch, **({"dataset": dataset} if dataset else {}), **config), state, path)
    model.input_contract = official_contract(arch, dataset or dataset_of_norm(config["norm"]))
    return model


def dataset_of_norm(norm: str) -> str:
    """The dataset whose official command used this norm (Market: batch, DeepFashion: instance)."""
    return next(name for name, values in DATASET_SETTINGS.items() if values["norm"] == norm)


def official_contract(arch: str, dataset: str) -> InputContract:
    """What the official test code feeds a released ``arch`` model of ``dataset`` (module docstring)."""
    try:
        dataset = dataset_key(dataset, OFFICIAL_HEATMAPS)
    except ModelError:
        raise CheckpointError(f"no official {arch.upper()} setting for dataset {dataset!r}; known: "
                              f"{', '.join(OFFICIAL_HEATMAPS)}") from None
    kind = parse_kind(dataset)
    return InputContract(size=kind.size, heatmap=OFFICIAL_HEATMAPS[dataset], sigma=6.0, kind=kind.name,
                         provenance={"setting": f"official {arch.upper()} {dataset} ({REPOSITORIES[arch]})"})


def converted_provenance(source: str | os.PathLike, setting: str) -> dict[str, str]:
    """Provenance of a converted file: the original file's name and SHA-256, and the official setting."""
    source = Path(source)
    return {"converted": source.name, "sha256": sha256_file(source), "setting": setting}


def with_source(model: nn.Module, source: str | os.PathLike) -> InputContract:
    """The model's contract with the provenance of the ``.pth`` it was converted from."""
    contract = model.input_contract
    return contract.replace(provenance=converted_provenance(source, contract.provenance.get("setting", "")))


def _guess_arch(state: dict[str, torch.Tensor]) -> str | None:
    if any(".conv_block_stream" in k for k in state):
        return "patn"
    if any(".dconv2." in k for k in state):
        return "pona"
    return None


def convert_discriminator_state(state: dict[str, torch.Tensor], path: str | os.PathLike = "<state>",
                                use_sigmoid: bool = False) -> nn.Module:
    """Official ``ResnetDiscriminator`` state dict → our ``patn_resnet`` (ReLU, 256-channel score map)."""
    path = Path(path)
    state = _strip(state, "module.")
    state, had_dropout = _shift_no_dropout(state, r"model\.\d+\.conv_block")
    first = _first(state, "model.1.weight", path, "PATN discriminator")
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"^model\.(\d+)\.conv_block\.", k))}
    config = {"input_nc": int(first.shape[1]), "ndf": int(first.shape[0]), "n_blocks": len(blocks),
              "norm": _norm_of(state, "model.2"), "dropout": 0.5 if had_dropout else 0.0,
              "output": "features", "use_sigmoid": bool(use_sigmoid), "activation": "relu"}
    check_declared_size(lambda: build_discriminator("patn_resnet", **config), state, str(path), config)
    return _load_strict(build_discriminator("patn_resnet", **config), state, path)


def _load_strict(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> nn.Module:
    ours = model.state_dict()
    state = {k: v for k, v in state.items() if k in ours or not _is_instance_norm_stat(model, k)}
    for key in ours:  # PyTorch < 0.4 BatchNorm had no batch counter; it only matters for momentum=None
        if key.endswith(".num_batches_tracked") and key not in state:
            state[key] = torch.zeros((), dtype=torch.long)
    missing = sorted(set(ours) - set(state))
    unexpected = sorted(set(state) - set(ours))
    if missing or unexpected:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise CheckpointError(f"{path}: keys do not match the {getattr(model, 'arch', '')!r} layout ({detail})")
    wrong = [k for k, v in state.items() if tuple(v.shape) != tuple(ours[k].shape)]
    if wrong:
        raise CheckpointError(f"{path}: tensor {wrong[0]!r} has shape {tuple(state[wrong[0]].shape)}, "
                              f"expected {tuple(ours[wrong[0]].shape)}")
    model.load_state_dict({k: v.to(ours[k].dtype) for k, v in state.items()}, strict=True)
    return model.eval()


def _is_instance_norm_stat(model: nn.Module, key: str) -> bool:
    """True for the running statistics PyTorch 0.3 stored for InstanceNorm layers (dropped on conversion)."""
    if not key.endswith(_STAT_SUFFIXES):
        return False
    try:
        return isinstance(model.get_submodule(key.rsplit(".", 1)[0]), nn.InstanceNorm2d)
    except AttributeError:
        return False


def convert_checkpoint(arch: str, source: str | os.PathLike, out: str | os.PathLike,
                       dataset: str | None = None, *, preset: str | None = None) -> nn.Module:
    """``posetransfer convert``: official generator ``.pth`` → our ``.safetensors`` generator file, with the
    official input contract and the source file's name and SHA-256 as its provenance."""
    model = convert_generator_state(arch, read_official_state_dict(source), source,
                                    renamed_dataset(dataset, preset, "convert"))
    model.input_contract = with_source(model, source)
    save_generator(model, out, model.input_contract)
    return model


def convert_discriminator(source: str | os.PathLike, out: str | os.PathLike, use_sigmoid: bool = False) -> nn.Module:
    """Official ``netD_PB`` / ``netD_PP`` ``.pth`` → our discriminator ``.safetensors`` file."""
    model = convert_discriminator_state(read_official_state_dict(source), source, use_sigmoid)
    save_discriminator(model, out)
    return model
