"""The posetransfer model file format: safetensors weights + JSON metadata, and the input contract.

This module is the one place that knows how generator and discriminator files are written and read.
The registry (:mod:`posetransfer.models.registry`) only names and builds architectures; the training
checkpoints (:mod:`posetransfer.checkpoint`) are folders of the files written here.

A **generator file** (``*.safetensors``) holds the state dict as tensors and, as string metadata:

=================  ============================================================================================
``format``         ``posetransfer-generator-1``
``arch``           registry name (``patn``, ``pona``, ``gfla``, ...)
``config``         JSON: the fully resolved builder options (``build_generator(arch, **config)`` rebuilds it)
``input_contract`` JSON: what the weights expect as input (:class:`InputContract`); absent in files written
                   before contracts existed (readers fall back, with a warning: :mod:`posetransfer.inference`)
=================  ============================================================================================

A **discriminator file** has ``format = posetransfer-discriminator-1``, ``arch`` and ``config``; a training
checkpoint's ``discriminators.safetensors`` (several discriminators, ``<name>.<param>`` tensors) has
``format = posetransfer-discriminators-1`` and ``discriminators`` (JSON ``{name: {arch, config}}``).
Nothing is ever unpickled.

Why a contract in the file (in the spirit of torchvision's ``Weights.transforms`` and timm's
``pretrained_cfg``): the same architecture is trained at different frames with different pose maps — PATN's
released Market model takes 128×64 images with Gaussian maps (σ 6), its DeepFashion model 256×176 images
with one-pixel maps (the official script stored the Gaussians as uint8), GFLA's DeepFashion model 256×256
images stretched from the 256×176 frame. Weights alone do not say which; a wrong guess gives wrong images
without any error.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, NamedTuple

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from .errors import CheckpointError, ModelError
from .io import atomic_path
from .kinds import KIND_NAMES, MARKET, find_kind, parse_kind, parse_size
from .models.registry import build_discriminator, build_generator
from .models.weights_guard import check_declared_size, check_weight_dtypes

log = logging.getLogger(__name__)

GENERATOR_FORMAT = "posetransfer-generator-1"
DISCRIMINATOR_FORMAT = "posetransfer-discriminator-1"
DISCRIMINATORS_FORMAT = "posetransfer-discriminators-1"
CONTRACT_KEY = "input_contract"
CONTRACT_VERSION = 1

HEATMAPS = ("gaussian", "onehot")
KEYPOINT_ROUNDINGS = ("round", "truncate")
IMAGE_RESIZES = ("bilinear", "bicubic")
#: the one image normalisation every generator here uses: ToTensor + Normalize(0.5, 0.5) → [-1, 1]
HALF = (0.5, 0.5, 0.5)


# --------------------------------------------------------------------------------------------------
# The input contract
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class InputContract:
    """What a generator's weights expect as input, stored in its file.

    * ``size`` (H, W): the frame the generator runs at.
    * ``heatmap`` (``gaussian`` | ``onehot``) and ``sigma``: the 18 pose maps
      (:func:`posetransfer.data.keypoints.heatmaps`).
    * ``kind``: the dataset kind the weights were made for (``market`` | ``fashion``).
    * ``data_size`` (H, W): the frame of the dataset images and keypoints the inputs come from, when it
      differs from ``size`` (GFLA's DeepFashion model: 256×176 data, 256×256 model). Such images are resized
      to ``size`` with ``image_resize`` (PIL filter; the aspect ratio is *not* kept — GFLA stretched its
      256×176-shaped ``img_highres`` photos the same way, so padding back PATN's centre crop would show the
      model people it never saw) and keypoints are scaled by ``size / data_size`` and rounded with
      ``keypoint_rounding`` (``round``: pixel centres; ``truncate``: GFLA's ``int()``). None: same as ``size``.
    * ``mean`` / ``std``: the image normalisation (0.5 / 0.5: ``[-1, 1]``, the only one the models use).
    * ``provenance``: ``{"trained": run, "step": n}``, ``{"converted": file name, "sha256": ...,
      "setting": official setting}``, ``{"preset": name}`` (frame of the builder preset) or, for the
      fallbacks of old files, ``{"assumed": why}``.
    """

    size: tuple[int, int]
    heatmap: Literal["gaussian", "onehot"] = "gaussian"        # HEATMAPS, checked below
    sigma: float = 6.0
    kind: str = "market"
    data_size: tuple[int, int] | None = None
    image_resize: str = "bilinear"
    keypoint_rounding: Literal["round", "truncate"] = "round"  # KEYPOINT_ROUNDINGS, checked below
    mean: tuple[float, float, float] = HALF
    std: tuple[float, float, float] = HALF
    provenance: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", _pair(self.size, "size"))
        if self.data_size is not None:
            data_size = _pair(self.data_size, "data_size")
            object.__setattr__(self, "data_size", None if data_size == self.size else data_size)
        if self.heatmap not in HEATMAPS:
            raise ModelError(f"input contract: heatmap must be one of {', '.join(HEATMAPS)}, got {self.heatmap!r}")
        try:
            sigma = float(self.sigma)
        except (TypeError, ValueError):
            raise ModelError(f"input contract: sigma must be a number, got {self.sigma!r}") from None
        if not sigma > 0 or sigma != sigma or sigma == float("inf"):
            raise ModelError(f"input contract: sigma must be positive, got {self.sigma!r}")
        object.__setattr__(self, "sigma", sigma)
        if self.kind not in KIND_NAMES:
            raise ModelError(f"input contract: kind must be one of {', '.join(KIND_NAMES)}, got {self.kind!r}")
        if self.image_resize not in IMAGE_RESIZES:
            raise ModelError(f"input contract: image_resize must be one of {', '.join(IMAGE_RESIZES)}, "
                             f"got {self.image_resize!r}")
        if self.keypoint_rounding not in KEYPOINT_ROUNDINGS:
            raise ModelError(f"input contract: keypoint_rounding must be one of {', '.join(KEYPOINT_ROUNDINGS)}, "
                             f"got {self.keypoint_rounding!r}")
        for name in ("mean", "std"):
            values = tuple(float(v) for v in getattr(self, name))
            if len(values) != 3:
                raise ModelError(f"input contract: {name} needs 3 values (RGB), got {values}")
            object.__setattr__(self, name, values)
        if self.mean != HALF or self.std != HALF:
            raise ModelError(f"input contract: image normalisation mean {self.mean} / std {self.std} is not "
                             "supported (the generators take images in [-1, 1]: mean = std = 0.5)")
        object.__setattr__(self, "provenance", dict(self.provenance or {}))

    # ----------------------------------------------------------------------------------------------
    @property
    def frame(self) -> tuple[int, int]:
        """(H, W) of the images and keypoints the callers give: ``data_size`` when set, else ``size``."""
        return self.data_size or self.size

    def replace(self, **changes: Any) -> "InputContract":
        return dataclasses.replace(self, **changes)

    def describe(self) -> str:
        """One line for logs and command output."""
        h, w = self.size
        maps = "one-hot heatmaps" if self.heatmap == "onehot" else f"Gaussian heatmaps (sigma {self.sigma:g})"
        text = f"{h}x{w} images in [-1, 1], {maps}, {self.kind}"
        if self.data_size is not None:
            text += (f"; {self.data_size[0]}x{self.data_size[1]} dataset images resized ({self.image_resize}), "
                     f"keypoints scaled ({self.keypoint_rounding})")
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "version": CONTRACT_VERSION,
            "size": list(self.size),
            "heatmap": self.heatmap,
            "sigma": self.sigma,
            "kind": self.kind,
            "data_size": list(self.frame),
            "image_resize": self.image_resize,
            "keypoint_rounding": self.keypoint_rounding,
            "normalisation": {"mean": list(self.mean), "std": list(self.std)},
            "provenance": dict(self.provenance),
        }

    @classmethod
    def from_json(cls, data: Any, where: str = "input contract") -> "InputContract":
        """Parse :meth:`to_json` output (or the ``input_contract`` config entry of GFLA files converted
        before contracts had their own metadata key); a malformed one is a :class:`CheckpointError`."""
        if not isinstance(data, Mapping):
            raise CheckpointError(f"{where}: input contract must be a JSON object, got {type(data).__name__}")
        data = dict(data)
        if "keypoint_frame" in data or isinstance(data.get("normalisation"), str):
            data = _from_gfla_entry(data)
        version = data.pop("version", CONTRACT_VERSION)
        if version != CONTRACT_VERSION:
            raise CheckpointError(f"{where}: input contract version {version!r} is not supported "
                                  f"(this posetransfer reads version {CONTRACT_VERSION})")
        norm = data.pop("normalisation", None) or {}
        if not isinstance(norm, Mapping):
            raise CheckpointError(f"{where}: malformed input contract normalisation {norm!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            log.warning("%s: ignoring unknown input-contract field(s) %s", where, ", ".join(unknown))
        if "size" not in data:
            raise CheckpointError(f"{where}: input contract has no size")
        try:
            return cls(**{k: v for k, v in data.items() if k in known}, mean=norm.get("mean", HALF),
                       std=norm.get("std", HALF))
        except (ModelError, TypeError, ValueError) as exc:
            message = str(exc).removeprefix("input contract: ")
            raise CheckpointError(f"{where}: malformed input contract ({message})") from None

    @classmethod
    def for_dataset(cls, dataset: Mapping[str, Any], provenance: Mapping[str, Any]) -> "InputContract":
        """The contract of a model trained on ``dataset`` (the ``dataset`` section of a training config)."""
        return cls(size=tuple(dataset["size"]), heatmap=dataset.get("heatmap", "gaussian"),
                   sigma=dataset.get("sigma", 6.0), kind=dataset.get("kind", "market"), provenance=provenance)

    @classmethod
    def for_kind(cls, dataset: str, provenance: Mapping[str, Any] | None = None) -> "InputContract":
        """The frame of a model built with ``dataset=`` settings (``market`` 128×64, ``deepfashion`` 256×176)
        with Gaussian σ 6 maps, what the training presets train on."""
        kind = parse_kind(dataset, what="dataset", error=ModelError)
        return cls(size=kind.size, kind=kind.name,
                   provenance=provenance if provenance is not None else {"dataset": kind.dataset})


def _pair(value: Any, name: str) -> tuple[int, int]:
    size = parse_size(value, where=f"input contract: {name}", error=ModelError)
    if size is None:
        raise ModelError(f"input contract: {name} is missing")
    return size


def _from_gfla_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """GFLA files converted before this format held the contract as ``config["input_contract"]`` with
    GFLA's field names: map them onto :class:`InputContract` (one representation)."""
    provenance = entry.get("provenance")
    if isinstance(provenance, str):
        provenance = {"converted": "latest_net_G.pth", "setting": provenance}
    return {"size": entry.get("size"), "heatmap": entry.get("heatmap", "gaussian"), "sigma": entry.get("sigma", 6.0),
            "kind": entry.get("kind", "market"), "data_size": entry.get("keypoint_frame"),
            "image_resize": entry.get("image_resize", "bilinear"),
            "keypoint_rounding": entry.get("keypoint_rounding", "truncate"), "provenance": provenance or {}}


#: what a file without a contract and without a training config is assumed to be (logged as a warning)
MARKET_DEFAULT = InputContract(size=MARKET.size, provenance={"assumed": "Market default (no contract in the file)"})


def default_contract(model: nn.Module) -> InputContract | None:
    """The contract :func:`save_generator` writes when none is given: the model's own (set when it was
    loaded, converted or trained), else the frame of its ``dataset=`` settings; None when neither is known."""
    own = getattr(model, "input_contract", None)
    if isinstance(own, InputContract):
        return own
    dataset = find_kind((getattr(model, "config", None) or {}).get("dataset"))
    return None if dataset is None else InputContract.for_kind(dataset.dataset)


# --------------------------------------------------------------------------------------------------
# safetensors I/O
# --------------------------------------------------------------------------------------------------
def write_safetensors(path: str | os.PathLike, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> None:
    """Write detached, contiguous CPU copies of ``tensors`` with string ``metadata``, atomically."""
    clean = {key: value.detach().contiguous().cpu().clone() for key, value in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(clean, str(tmp), metadata=dict(metadata))


def read_safetensors(path: str | os.PathLike) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """(metadata, tensors) of a safetensors file; unreadable or corrupt → :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    try:
        with safe_open(str(path), framework="pt") as handle:
            return handle.metadata() or {}, {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as exc:  # safetensors raises several error types for corrupt headers
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None


def _json_meta(metadata: Mapping[str, str], key: str, path: Path, default: str = "{}") -> Any:
    try:
        return json.loads(metadata.get(key, default))
    except json.JSONDecodeError:
        raise CheckpointError(f"{path}: malformed {key} in the file's metadata") from None


# --------------------------------------------------------------------------------------------------
# Generator and discriminator files
# --------------------------------------------------------------------------------------------------
class ModelFile(NamedTuple):
    """What :func:`read_generator_file` / :func:`read_discriminator_file` return."""

    arch: str
    config: dict[str, Any]
    state: dict[str, torch.Tensor]
    contract: InputContract | None
    metadata: dict[str, str]


def save_generator(model: nn.Module, path: str | os.PathLike, contract: InputContract | None = None) -> None:
    """Write ``model``'s weights, (arch, config) and its input ``contract`` to a safetensors file, atomically.

    Without ``contract``: the model's own (:func:`default_contract`), else the frame of its dataset settings;
    a model with neither is a :class:`ModelError` — a file must never claim a frame nobody chose.
    """
    contract = contract if contract is not None else default_contract(model)
    if contract is None:
        raise ModelError(f"{path}: the {getattr(model, 'arch', 'generator')!r} model has no input contract and no "
                         "dataset settings to take its frame from; pass "
                         "save_generator(model, path, InputContract(...))")
    write_safetensors(path, model.state_dict(), {
        "format": GENERATOR_FORMAT,
        "arch": getattr(model, "arch", ""),
        "config": json.dumps(getattr(model, "config", {})),
        CONTRACT_KEY: json.dumps(contract.to_json()),
    })


def save_discriminator(model: nn.Module, path: str | os.PathLike) -> None:
    """Write one discriminator's weights and (arch, config), atomically (used by ``posetransfer convert``)."""
    write_safetensors(path, model.state_dict(), {"format": DISCRIMINATOR_FORMAT, "arch": getattr(model, "arch", ""),
                                                 "config": json.dumps(getattr(model, "config", {}))})


def _read_model_file(path: str | os.PathLike, file_format: str) -> ModelFile:
    path = Path(path)
    kind = "generator" if file_format == GENERATOR_FORMAT else "discriminator"
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, not a {kind} file")
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    metadata, state = read_safetensors(path)
    if metadata.get("format") != file_format or "arch" not in metadata:
        raise CheckpointError(f"{path}: safetensors file has no posetransfer {kind} metadata")
    config = _json_meta(metadata, "config", path)
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: malformed config in the file's metadata")
    _rename_legacy_keys(config)
    contract = None
    legacy = config.pop(CONTRACT_KEY, None)   # GFLA conversions before contracts had their own key
    if CONTRACT_KEY in metadata:
        contract = InputContract.from_json(_json_meta(metadata, CONTRACT_KEY, path), where=str(path))
    elif legacy:
        contract = InputContract.from_json(legacy, where=str(path))
    check_weight_dtypes({key: value.dtype for key, value in state.items()}, str(path))
    return ModelFile(metadata["arch"], config, state, contract, metadata)


def _rename_legacy_keys(config: dict[str, Any]) -> None:
    """Files written before ``preset=`` was renamed ``dataset=`` (the builders' dataset settings) record
    ``"preset"``: read it as ``"dataset"``, silently (the file is not the user's script to fix)."""
    if "preset" in config and "dataset" not in config:
        config["dataset"] = config.pop("preset")


def read_generator_file(path: str | os.PathLike) -> ModelFile:
    """(arch, config, state dict, input contract or None, metadata) of a generator file; nothing unpickled."""
    return _read_model_file(path, GENERATOR_FORMAT)


def read_discriminator_file(path: str | os.PathLike) -> ModelFile:
    """The same for a discriminator file (its contract is always None)."""
    return _read_model_file(path, DISCRIMINATOR_FORMAT)


def _build_and_load(found: ModelFile, path: Path, arch: str | None, role: str, build) -> nn.Module:
    if arch is not None and found.arch != arch:
        raise CheckpointError(f"{path}: file holds a {found.arch!r} {role}, not {arch!r}")
    try:
        check_declared_size(lambda: build(found.arch, **found.config), found.state, str(path), found.config)
        model = build(found.arch, **found.config)
    except (ModelError, TypeError) as exc:  # a config this version cannot build
        raise CheckpointError(f"{path}: {exc}") from None
    try:
        model.load_state_dict(found.state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(f"{path}: weights do not match the {found.arch!r} {role} ({first})") from None
    return model


def load_generator_file(path: str | os.PathLike, arch: str | None = None,
                        map_location: str | torch.device = "cpu") -> nn.Module:
    """Build and load the generator of one file (eval mode); ``model.input_contract`` is the file's contract
    (None for files written before contracts). With ``arch``, another architecture is a CheckpointError.
    Folders (checkpoints, runs): :func:`posetransfer.load_generator`."""
    path = Path(path)
    found = read_generator_file(path)
    model = _build_and_load(found, path, arch, "generator", build_generator)
    setattr(model, "input_contract", found.contract)  # a plain attribute (nn.Module types only tensors/modules)
    return model.to(map_location).eval()


def load_discriminator(path: str | os.PathLike, arch: str | None = None,
                       map_location: str | torch.device = "cpu") -> nn.Module:
    """Load a discriminator file written by :func:`save_discriminator` (train mode, like a fresh one)."""
    path = Path(path)
    model = _build_and_load(read_discriminator_file(path), path, arch, "discriminator", build_discriminator)
    return model.to(map_location)


# --------------------------------------------------------------------------------------------------
# The discriminators of a training checkpoint (one file, several models)
# --------------------------------------------------------------------------------------------------
def save_discriminator_set(discriminators: Mapping[str, nn.Module], path: str | os.PathLike) -> None:
    """``<name>.<param>`` tensors of every discriminator; metadata = each one's registry name and config."""
    tensors, meta = {}, {}
    for name, model in discriminators.items():
        for key, value in model.state_dict().items():
            tensors[f"{name}.{key}"] = value
        meta[name] = {"arch": getattr(model, "arch", ""), "config": getattr(model, "config", {})}
    write_safetensors(path, tensors, {"format": DISCRIMINATORS_FORMAT, "discriminators": json.dumps(meta)})


def read_discriminator_set(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """``{name: {"arch", "config", "state"}}`` of a file written by :func:`save_discriminator_set`."""
    path = Path(path)
    metadata, tensors = read_safetensors(path)
    meta = _json_meta(metadata, "discriminators", path)
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: malformed discriminators metadata")
    for info in meta.values():
        if isinstance(info, dict) and isinstance(info.get("config"), dict):
            _rename_legacy_keys(info["config"])
    found = {name: {**info, "state": {}} for name, info in meta.items()}
    for key, value in tensors.items():
        name, _, param = key.partition(".")
        if name not in found:
            raise CheckpointError(f"{path}: tensor {key} of unknown discriminator")
        found[name]["state"][param] = value
    return found
