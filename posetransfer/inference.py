"""Inference: load a generator with its input contract and run it on tensors, dataset images or photos.

Every inference command (``test``, ``transfer``, ``animate``, ``serve``, ``reid-augment``) and the demo's
evaluation go through :func:`load_model`, which returns an :class:`InferenceModel`::

    model = posetransfer.load_model("patn.safetensors")          # a file, a checkpoint folder or a run
    images = model.generate_batch(photos, source_keypoints, target_keypoints)   # uint8 in, uint8 out
    out = model.generate_tensors(source_image, source_heatmaps, target_heatmaps, extras=True)
    result = model.transfer(photo, target_pose)                    # a photo of any size, cropped and back

Where the input frame and pose maps come from (the precedence, in this order):

1. an explicit override (``size=`` / ``heatmap=`` / ``sigma=``; the CLI's ``--size`` / ``--heatmap`` /
   ``--sigma``), logged as one INFO line naming what the file said;
2. the input contract stored in the file (:class:`posetransfer.modelfile.InputContract`);
3. for files written before contracts existed: the training config saved next to the file
   (``state.json`` of its checkpoint folder), else the Market default (128×64, Gaussian σ 6) — either
   with one WARNING line naming the file and what was assumed. Never silently another frame.

Frames: ``model.frame`` is the frame callers work in (dataset images, crops of photos, keypoints);
``model.size`` is the frame the generator runs at. They differ only where the contract says how to map
one onto the other (GFLA's released DeepFashion model: 256×176 → 256×256, see the contract's
``data_size``); :class:`InferenceModel` does that mapping, in and back out, so the callers never see it.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np
import torch
from torch import nn

from . import viz
from .apps import crop as C
from .apps.poses import CropMode, Pose, Prepared, estimate_pose, image_size, prepare_source, target_to_model
from .checkpoint import STATE_FILE, resolve_generator_file
from .data import keypoints as K
from .errors import CheckpointError, ConfigError, DataError, ModelError
from .io import image_to_tensor_range
from .kinds import parse_size
from .modelfile import HEATMAPS, MARKET_DEFAULT, InputContract, load_generator_file
from .models.base import GeneratorOutput

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------
def resolve_generator_path(checkpoint: str | os.PathLike) -> Path:
    """A generator ``.safetensors`` file, or the newest valid one in a checkpoint / run folder."""
    path = Path(checkpoint)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    return Path(resolve_generator_file(path))


def load_generator(path: str | os.PathLike, arch: str | None = None,
                   map_location: str | torch.device = "cpu") -> nn.Module:
    """Any posetransfer generator: a ``.safetensors`` file, a checkpoint folder or a run folder (its newest
    valid checkpoint). Eval mode; ``model.input_contract`` is the file's contract (None in old files)."""
    return load_generator_file(resolve_generator_path(path), arch=arch, map_location=map_location)


def training_config(generator_file: Path) -> dict:
    """The training config saved next to a generator (``state.json`` of its checkpoint folder), or {}."""
    state = generator_file.parent / STATE_FILE
    if not state.is_file():
        return {}
    try:
        data = json.loads(state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        log.warning("%s: unreadable, ignoring it for the model settings", state)
        return {}
    config = data.get("config") if isinstance(data, dict) else None
    return config if isinstance(config, dict) else {}


def _fallback_contract(file: Path) -> InputContract:
    """The contract of a file written before contracts: its training config, else Market (with a warning)."""
    dataset = training_config(file).get("dataset")
    if isinstance(dataset, dict) and "size" in dataset:
        try:
            contract = InputContract.for_dataset(dataset, {"assumed": f"training config {file.parent / STATE_FILE}"})
        except (ModelError, KeyError, TypeError, ValueError):
            contract = None
        if contract is not None:
            log.warning("%s: no input contract in the file; assumed its training config (%s): %s", file,
                        STATE_FILE, contract.describe())
            return contract
    log.warning("%s: no input contract in the file and no training config next to it; assumed %s "
                "(pass --size / --heatmap / --sigma if that is wrong)", file, MARKET_DEFAULT.describe())
    return MARKET_DEFAULT


def resolve_contract(file: Path, found: InputContract | None, *, size: str | Sequence[int] | None = None,
                     heatmap: str | None = None, sigma: float | None = None) -> tuple[InputContract, str]:
    """(contract, where it came from: ``file`` | ``fallback`` | ``override``), by the module's precedence."""
    contract, source = (found, "file") if found is not None else (_fallback_contract(file), "fallback")
    changes: dict = {}
    frame = parse_size(size, multiple=4)
    if frame is not None and frame != contract.size:
        changes.update(size=frame, data_size=None)     # an explicit frame is used as is: no mapping
    elif frame is not None and contract.data_size is not None:
        changes.update(data_size=None)
    if heatmap is not None:
        if heatmap not in HEATMAPS:
            raise ConfigError(f"--heatmap {heatmap!r}: use {' or '.join(HEATMAPS)}")
        if heatmap != contract.heatmap:
            changes["heatmap"] = heatmap
    if sigma is not None:
        if not float(sigma) > 0:
            raise ConfigError(f"--sigma must be positive, got {sigma}")
        if float(sigma) != contract.sigma:
            changes["sigma"] = float(sigma)
    if not changes:
        return contract, source
    overridden = contract.replace(**changes)
    log.info("%s: input contract overridden: %s (the %s says %s)", file, overridden.describe(),
             "file" if source == "file" else "fallback", contract.describe())
    return overridden, "override"


def load_model(path: str | os.PathLike, *, size: str | Sequence[int] | None = None, heatmap: str | None = None,
               sigma: float | None = None, device: str | torch.device = "cpu",
               arch: str | None = None, fast: bool = True, runtime: str = "torch",
               threads: int | None = None, precision: str = "fp32") -> "InferenceModel":
    """Load a generator file, checkpoint folder or run folder for inference, with its input contract.

    ``size`` (``market``, ``fashion``, ``HxW`` or (H, W)), ``heatmap`` (``gaussian`` | ``onehot``) and
    ``sigma`` override the contract (logged); ``arch`` refuses other architectures. ``fast`` runs the
    inference fast path (:func:`posetransfer.models.fast.prepare_for_inference`; same images within 1e-4);
    ``precision="bf16"`` runs it in bfloat16 (CUDA, or a CPU with bf16 instructions; the images change: a
    trained PATN's by 2 grey levels at most).
    ``runtime="onnx"`` runs the generator in ONNX Runtime instead (exported once into a cache, see
    :func:`posetransfer.export.onnx_runner`; ``threads`` sizes its pool), CPU only.
    """
    if runtime not in RUNTIMES:
        raise ConfigError(f"--runtime {runtime!r}: use {' or '.join(RUNTIMES)}")
    if runtime == "onnx" and torch.device(device).type != "cpu":
        raise ConfigError(f"--runtime onnx runs on the CPU; got --device {device}")
    file = resolve_generator_path(path)
    generator = load_generator_file(file, arch=arch, map_location=device)
    contract, source = resolve_contract(file, getattr(generator, "input_contract"), size=size, heatmap=heatmap, sigma=sigma)
    return InferenceModel(generator, contract, name=str(file), contract_source=source, fast=fast,
                          runtime=runtime, source_file=file, threads=threads, precision=precision)


#: what runs the generator: PyTorch (the fast path or the plain model) or ONNX Runtime (an export of it)
RUNTIMES = ("torch", "onnx")


# --------------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------------
@dataclass
class TransferResult:
    """A photo's person in a new pose: ``image`` at the photo's scale (or pasted into it), ``model_image`` in
    the model frame, the ``source`` crop, the ``target_keypoints`` (model frame) and the generator's extras."""

    image: np.ndarray
    model_image: np.ndarray
    source: Prepared
    target_keypoints: np.ndarray
    output: GeneratorOutput


class InferenceModel:
    """A generator and its input contract; thread-safe (one inference at a time).

    The constructor is the one place a generator is prepared for inference (eval mode, its device, and
    with ``fast`` the inference fast path: ``runner`` is what runs, ``generator`` stays the model as loaded,
    for saving; ``fast_path`` describes what was applied and by which ``runtime``, for results files).
    ``runtime="onnx"`` needs ``source_file`` (the generator's file: the key of the cached export).
    """

    def __init__(self, generator: nn.Module, contract: InputContract, *, name: str = "generator",
                 contract_source: str = "file", fast: bool = True, runtime: str = "torch",
                 source_file: str | os.PathLike | None = None, threads: int | None = None,
                 precision: str = "fp32") -> None:
        self.generator = generator.eval()
        self.contract = contract
        self.contract_source = contract_source
        self.name = name
        self.arch = getattr(generator, "arch", "") or "generator"
        self.lock = threading.Lock()
        self.device = next(generator.parameters()).device
        self.runtime = runtime
        self.runner: Callable[..., Any]        # the generator's call: the fast path, the plain model or ONNX Runtime
        if runtime == "onnx":
            from .export import onnx_runner

            if precision != "fp32":
                raise ConfigError(f"{name}: precision {precision} needs --runtime torch (the ONNX export is float32)")
            if source_file is None:
                raise ConfigError(f"{name}: --runtime onnx needs the generator's file")
            self.runner, description = onnx_runner(self.generator, self.size, source_file,
                                                   metadata=self.export_metadata(), threads=threads)
        elif runtime == "torch":
            from .models.fast import prepare_for_inference

            self.runner, description = prepare_for_inference(self.generator, fast, precision)
        else:
            raise ConfigError(f"--runtime {runtime!r}: use {' or '.join(RUNTIMES)}")
        self.fast_path = {"runtime": runtime, **description}

    def export_metadata(self) -> dict:
        """What an exported file of this model carries (:func:`posetransfer.export.generator_metadata`)."""
        from .export import generator_metadata

        return generator_metadata(self.generator, self.size, input_contract=self.contract.to_json(),
                                  heatmap=self.heatmap, sigma=self.sigma, checkpoint=self.name,
                                  contract_source=self.contract_source)

    # ---- the frames ---------------------------------------------------------------------------------
    @property
    def size(self) -> tuple[int, int]:
        """(H, W) the generator runs at."""
        return self.contract.size

    @property
    def frame(self) -> tuple[int, int]:
        """(H, W) of the images and keypoints callers give and get back (dataset frame, photo crops)."""
        return self.contract.frame

    @property
    def heatmap(self) -> Literal["gaussian", "onehot"]:
        return self.contract.heatmap

    @property
    def sigma(self) -> float:
        return self.contract.sigma

    def check_frame(self, size: Sequence[int], where: str) -> None:
        """Images of ``size`` (e.g. a dataset's) must be in :attr:`frame`; else one line saying what to do."""
        if tuple(size) == self.frame:
            return
        said = {"file": "its input contract", "override": "the override",
                "fallback": "assumed: the file has no input contract"}[self.contract_source]
        raise ConfigError(f"{where}: images are {size[0]}x{size[1]} but {self.name} takes {self.frame[0]}x"
                          f"{self.frame[1]} ({said}); pass --size {size[0]}x{size[1]} (and --heatmap) to "
                          "run it at that frame anyway")

    def keypoints_to_model(self, keypoints: np.ndarray) -> np.ndarray:
        """Keypoints in :attr:`frame` → the generator's frame (as the contract says)."""
        if self.frame == self.size:
            return np.asarray(keypoints)
        return K.rescale_keypoints(keypoints, self.frame, self.size, self.contract.keypoint_rounding)

    def image_to_model(self, image: np.ndarray) -> np.ndarray:
        """A uint8 image in :attr:`frame` → the generator's frame (as the contract says)."""
        return viz.resize(image, self.size, resample=self.contract.image_resize)

    def image_to_frame(self, image: np.ndarray) -> np.ndarray:
        """A uint8 generated image (generator frame) → :attr:`frame`."""
        return viz.resize(image, self.frame, resample=self.contract.image_resize)

    def heatmaps(self, keypoints: np.ndarray) -> torch.Tensor:
        """18×H×W pose maps of generator-frame ``keypoints``, as the contract says (kind, σ)."""
        return torch.from_numpy(K.heatmaps(keypoints, self.size, self.sigma, self.heatmap))

    # ---- generating -----------------------------------------------------------------------------------
    @torch.inference_mode()
    def generate_tensors(self, source_image: torch.Tensor, source_heatmaps: torch.Tensor,
                         target_heatmaps: torch.Tensor, extras: bool = False) -> torch.Tensor | GeneratorOutput:
        """Generator-frame B×3×H×W images in [-1, 1] and B×18×H×W maps → images in [-1, 1] (or, with
        ``extras``, the whole :class:`GeneratorOutput`). Non-finite output is a :class:`ModelError`."""
        device = self.device
        with self.lock:
            out = self.runner(source_image.to(device), source_heatmaps.to(device), target_heatmaps.to(device),
                              return_extras=extras)
        image = out.image if extras else out
        if not torch.isfinite(image).all():
            raise ModelError(f"{self.name}: the generator produced non-finite values")
        return out

    def generate_batch(self, images: Sequence[np.ndarray], source_keypoints: Sequence[np.ndarray],
                       target_keypoints: Sequence[np.ndarray], extras: bool = False):
        """uint8 images and keypoints in :attr:`frame` → list of uint8 outputs in :attr:`frame` (and, with
        ``extras``, the :class:`GeneratorOutput`, in the generator's frame)."""
        for img in images:
            if tuple(img.shape[:2]) != self.frame:
                raise DataError(f"image of {img.shape[0]}x{img.shape[1]} given to a {self.frame[0]}x{self.frame[1]} "
                                f"model (crop it first)")
        src = torch.stack([torch.from_numpy(image_to_tensor_range(self.image_to_model(i))) for i in images])
        src_maps = torch.stack([self.heatmaps(self.keypoints_to_model(k)) for k in source_keypoints])
        tgt_maps = torch.stack([self.heatmaps(self.keypoints_to_model(k)) for k in target_keypoints])
        out = self.generate_tensors(src, src_maps, tgt_maps, extras=extras)
        generated = out.image if isinstance(out, GeneratorOutput) else out
        results = [self.image_to_frame(viz.to_uint8(img)) for img in generated]
        return (results, out) if extras else results

    def generate(self, image: np.ndarray, source_keypoints: np.ndarray, target_keypoints: np.ndarray,
                 extras: bool = False):
        """One image: :meth:`generate_batch` of one."""
        if not extras:
            return self.generate_batch([image], [source_keypoints], [target_keypoints])[0]
        results, out = self.generate_batch([image], [source_keypoints], [target_keypoints], extras=True)
        return results[0], out

    def transfer(self, photo: np.ndarray, target: Pose | np.ndarray, source: Pose | None = None, *,
                 crop: CropMode = "auto", pad: C.PadMode = "edge", paste_back: bool = False,
                 where: str = "photo") -> TransferResult:
        """The person of ``photo`` (any size) in the ``target`` pose.

        ``source``: the photo's keypoints (estimated when None); a :class:`Pose` in another frame is
        rescaled to the photo. ``target``: a :class:`Pose` (cropped or rescaled into the frame) or keypoints
        already in :attr:`frame`. The person is cropped to the frame's aspect ratio, generated, and the result
        mapped back to the photo's scale (``paste_back``: into the photo).
        """
        pose = source if source is not None else estimate_pose(photo, where)
        if pose.frame is not None and tuple(pose.frame) != image_size(photo):
            pose = Pose(K.rescale_keypoints(pose.keypoints, pose.frame, image_size(photo)), image_size(photo), pose.where)
        target_kp = target_to_model(target, self.frame, crop) if isinstance(target, Pose) else np.asarray(target)
        prepared = prepare_source(photo, pose, self.frame, crop, pad)
        generated, output = self.generate(prepared.image, prepared.keypoints, target_kp, extras=True)
        image = (C.paste_back(photo, generated, prepared.box) if paste_back
                 else C.box_to_photo(generated, prepared.box, image_size(photo)))
        return TransferResult(image, generated, prepared, target_kp, output)

    def __repr__(self) -> str:
        return f"InferenceModel({self.name!r}, arch={self.arch!r}, {self.contract.describe()})"
