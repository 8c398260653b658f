"""Pose transfer on user files: load a checkpoint, bring a photo and a target pose into the model frame, generate.

The pieces are shared by ``transfer``, ``animate``, ``reid-augment`` and ``serve``:

* :class:`Transferer` — a loaded generator plus the frame it works in (size, heatmap kind), with
  :meth:`Transferer.generate` on model-frame arrays.
* :func:`read_pose_file` / :func:`pose_from_csv` / :func:`estimate_pose` — keypoints from JSON, a PATN
  annotation CSV row, or a photo (pose estimator).
* :func:`prepare_source` / :func:`target_to_model` — the person crop of :mod:`posetransfer.apps.crop`.
* :func:`transfer_files` — the ``posetransfer transfer`` command, single file or folder.
"""
from __future__ import annotations

from collections import Counter

import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import torch

from .. import viz
from ..data import keypoints as K
from ..errors import CheckpointError, ConfigError, DataError, ModelError, OutputError, PoseError, PosetransferError
from ..io import image_to_tensor_range, read_image, save_image, write_json
from . import crop as C

log = logging.getLogger(__name__)

CropMode = Literal["auto", "keypoints", "none"]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
DEFAULT_SIZE = K.MARKET_SIZE


# --------------------------------------------------------------------------------------------------
# Model and its frame
# --------------------------------------------------------------------------------------------------
def parse_size(value: str | Sequence[int] | None) -> tuple[int, int] | None:
    """``market`` / ``fashion`` / ``128x64`` / ``128,64`` / (H, W) → (H, W); None stays None."""
    if value is None:
        return None
    if not isinstance(value, str):
        h, w = (int(v) for v in value)
        return h, w
    text = value.strip().lower()
    if text in ("market", "market1501"):
        return K.MARKET_SIZE
    if text in ("fashion", "deepfashion", "fasion"):
        return K.FASHION_SIZE
    for sep in ("x", ","):
        if sep in text:
            try:
                h, w = (int(v) for v in text.split(sep))
            except ValueError:
                break
            if h > 0 and w > 0 and h % 4 == 0 and w % 4 == 0:
                return h, w
            raise ConfigError(f"size {value!r}: height and width must be positive multiples of 4")
    raise ConfigError(f"size {value!r}: use market, fashion or HxW (e.g. 128x64)")


def resolve_generator_path(checkpoint: str | os.PathLike) -> Path:
    """A generator ``.safetensors`` file, or the newest valid one in a checkpoint / run folder."""
    path = Path(checkpoint)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    if path.is_dir():
        try:
            from ..checkpoint import resolve_generator_file
        except ModuleNotFoundError:  # the trainer's module is not in this checkout: plain folder lookup
            candidate = path / "generator.safetensors"
            if not candidate.is_file():
                raise CheckpointError(f"{path}: no generator.safetensors in this folder") from None
            return candidate
        return Path(resolve_generator_file(path))
    return path


def training_config(generator_file: Path) -> dict:
    """The training config saved next to a generator (``state.json`` of its checkpoint folder), or {}."""
    state = generator_file.parent / "state.json"
    if not state.is_file():
        return {}
    try:
        data = json.loads(state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        log.warning("%s: unreadable, ignoring it for the model settings", state)
        return {}
    config = data.get("config") if isinstance(data, dict) else None
    return config if isinstance(config, dict) else {}


class Transferer:
    """A generator and the frame it works in; thread-safe (one inference at a time).

    ``size`` (H, W), ``heatmap_mode`` and ``sigma`` default to the training config saved with the
    checkpoint, else Market 128×64 with Gaussian σ = 6 maps.
    """

    def __init__(self, generator: torch.nn.Module, size: tuple[int, int] = DEFAULT_SIZE,
                 heatmap_mode: str = "gaussian", sigma: float = 6.0, name: str = "generator") -> None:
        self.generator = generator.eval()
        self.size = (int(size[0]), int(size[1]))
        self.heatmap_mode = heatmap_mode
        self.sigma = float(sigma)
        self.name = name
        self.arch = getattr(generator, "arch", "") or "generator"
        self.lock = threading.Lock()
        #: where ``size`` came from: explicit (argument), checkpoint (training config) or default
        self.size_source = "explicit"
        self.device = next(generator.parameters()).device

    @classmethod
    def load(cls, checkpoint: str | os.PathLike, arch: str | None = None,
             size: str | Sequence[int] | None = None, heatmap_mode: str | None = None,
             sigma: float | None = None, device: str = "cpu") -> "Transferer":
        from ..models.registry import load_generator

        path = resolve_generator_path(checkpoint)
        generator = load_generator(path, arch=arch, map_location=device)
        dataset_cfg = training_config(path).get("dataset", {}) or {}
        frame, source = parse_size(size), "explicit"
        if frame is None:
            frame, source = parse_size(dataset_cfg.get("size")), "checkpoint"
        if frame is None:
            kind = str(dataset_cfg.get("kind", "")).lower()
            if kind:
                frame = K.FASHION_SIZE if kind.startswith(("fashion", "deepfashion")) else K.MARKET_SIZE
            else:
                frame, source = DEFAULT_SIZE, "default"
                log.info("%s: no training config next to the checkpoint; using %dx%d (pass --size)",
                         path, *frame)
        mode = heatmap_mode or dataset_cfg.get("heatmap", "gaussian")
        model = cls(generator, frame, mode, float(sigma or dataset_cfg.get("sigma", 6.0)), name=str(path))
        model.size_source = source
        return model

    def heatmaps(self, keypoints: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(K.heatmaps(keypoints, self.size, self.sigma, self.heatmap_mode))

    @torch.inference_mode()
    def generate_batch(self, images: Sequence[np.ndarray], source_keypoints: Sequence[np.ndarray],
                       target_keypoints: Sequence[np.ndarray], extras: bool = False):
        """Model-frame uint8 images and keypoints → list of uint8 outputs (and the GeneratorOutput)."""
        for img in images:
            if img.shape[:2] != self.size:
                raise DataError(f"image of {img.shape[0]}x{img.shape[1]} given to a {self.size[0]}x{self.size[1]} "
                                f"model (crop it first)")
        src = torch.stack([torch.from_numpy(image_to_tensor_range(i)) for i in images]).to(self.device)
        src_maps = torch.stack([self.heatmaps(k) for k in source_keypoints]).to(self.device)
        tgt_maps = torch.stack([self.heatmaps(k) for k in target_keypoints]).to(self.device)
        with self.lock:
            out = self.generator(src, src_maps, tgt_maps, return_extras=True)
        if not torch.isfinite(out.image).all():
            raise ModelError(f"{self.name}: the generator produced non-finite values")
        results = [viz.to_uint8(img) for img in out.image]
        return (results, out) if extras else results

    def generate(self, image: np.ndarray, source_keypoints: np.ndarray, target_keypoints: np.ndarray,
                 extras: bool = False):
        results, out = self.generate_batch([image], [source_keypoints], [target_keypoints], extras=True)
        return (results[0], out) if extras else results[0]


# --------------------------------------------------------------------------------------------------
# Keypoints from files and photos
# --------------------------------------------------------------------------------------------------
@dataclass
class Pose:
    """Keypoints and the size (H, W) of the frame they are given in (None = unknown: crop around them)."""

    keypoints: np.ndarray
    frame: tuple[int, int] | None = None
    where: str = "pose"


def read_pose_file(path: str | os.PathLike) -> Pose:
    """A keypoints JSON file: OpenPose BODY_25 / COCO-18, or our ``{"keypoints": [[y, x]...], "size": [H, W]}``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: keypoints file not found")
    from ..pose.openpose import read_keypoints_json

    kp = read_keypoints_json(path)
    frame = None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and isinstance(data.get("size"), (list, tuple)) and len(data["size"]) == 2:
            frame = (int(data["size"][0]), int(data["size"][1]))
    except (ValueError, TypeError, OSError):
        frame = None
    return Pose(K.validate_keypoints(kp, where=str(path)), frame, str(path))


def pose_from_csv(csv_path: str | os.PathLike, name: str, frame: tuple[int, int] | None = None) -> Pose:
    """Keypoints of image ``name`` in a PATN annotation CSV (in the frame of that dataset's images)."""
    annotations = K.read_annotations(csv_path)
    if name not in annotations:
        raise DataError(f"{csv_path}: no row for image {name!r}")
    if frame is None:  # the CSV of a dataset root: its images' size, when dataset.json says it
        from ..data.prepare import read_dataset_json

        try:
            frame = parse_size(read_dataset_json(Path(csv_path).parent).get("size"))
        except (PosetransferError, TypeError, ValueError):
            frame = None
    return Pose(annotations[name], frame, f"{csv_path} ({name})")


def estimate_pose(image: np.ndarray, where: str) -> Pose:
    """Keypoints of the person in ``image`` with the pose estimator; errors name ``where``."""
    try:
        from ..pose import estimate_keypoints
    except ImportError as exc:
        raise PoseError(f"{where}: pose estimation is unavailable ({exc}); give the keypoints as JSON") from None
    try:
        kp = estimate_keypoints(image)
    except PoseError as exc:
        message = str(exc)
        raise PoseError(message if where in message else f"{where}: {message}") from None
    kp = K.validate_keypoints(kp, where=where)
    if int((~K.missing_mask(kp)).sum()) < C.MIN_JOINTS:
        raise PoseError(f"{where}: no person found")
    return Pose(kp, image.shape[:2], where)


def load_pose(spec: str | os.PathLike) -> Pose:
    """A target pose given as a JSON file or as a photo (pose estimated)."""
    path = Path(spec)
    if path.suffix.lower() == ".json":
        return read_pose_file(path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return estimate_pose(read_image(path), str(path))
    raise DataError(f"{path}: expected a keypoints .json file or an image")


# --------------------------------------------------------------------------------------------------
# Into the model frame
# --------------------------------------------------------------------------------------------------
@dataclass
class Prepared:
    """A photo brought into the model frame: the crop, its keypoints, and how to go back."""

    image: np.ndarray            # model-size uint8
    keypoints: np.ndarray        # model-frame keypoints
    box: C.CropBox               # in photo pixels
    photo: np.ndarray            # the original photo


def _use_identity(frame: tuple[int, int] | None, size: tuple[int, int], crop: CropMode) -> bool:
    return crop == "none" or (crop == "auto" and frame is not None and tuple(frame) == tuple(size))


def prepare_source(photo: np.ndarray, pose: Pose, size: tuple[int, int], crop: CropMode = "auto",
                   pad: C.PadMode = "edge") -> Prepared:
    """Crop the person out of ``photo`` (box from its keypoints) and resize to the model ``size``.

    ``crop="auto"`` leaves photos that already have the model's size alone (dataset images).
    """
    if _use_identity(photo.shape[:2], size, crop):
        box = C.CropBox.full(photo.shape[:2])
    else:
        box = C.box_from_keypoints(pose.keypoints, size, where=pose.where, photo_size=photo.shape[:2])
    image = C.crop_image(photo, box, size, pad, where=pose.where)
    return Prepared(image, C.keypoints_to_model(pose.keypoints, box, size), box, photo)


def target_to_model(pose: Pose, size: tuple[int, int], crop: CropMode = "auto") -> np.ndarray:
    """Target keypoints in the model frame: rescaled when given in a frame of the model's size/shape,
    else cropped around the person like a source photo so both people have the same framing."""
    if _use_identity(pose.frame, size, crop):
        frame = pose.frame or size
        return K.rescale_keypoints(K.validate_keypoints(pose.keypoints, frame, where=pose.where), frame, size)
    box = C.box_from_keypoints(pose.keypoints, size, where=pose.where)
    return C.keypoints_to_model(pose.keypoints, box, size)


# --------------------------------------------------------------------------------------------------
# The transfer command
# --------------------------------------------------------------------------------------------------
@dataclass
class TransferReport:
    """Sources done (``succeeded``), every file written, and the sources that failed with their message."""

    succeeded: list[Path] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)

    def summary(self) -> str:
        return f"transfer: {len(self.succeeded)} image(s) transferred, {len(self.failed)} failed"


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def source_pose_for(image_path: Path, source_pose: Path | None, photo: np.ndarray) -> Pose:
    """The source keypoints: estimated from the photo, or read from a JSON file / ``<dir>/<stem>.json``."""
    if source_pose is None:
        return estimate_pose(photo, str(image_path))
    if source_pose.is_dir():
        candidate = source_pose / f"{image_path.stem}.json"
        if not candidate.is_file():
            raise DataError(f"{image_path}: no keypoints file {candidate}")
        return read_pose_file(candidate)
    return read_pose_file(source_pose)


def transfer_one(model: Transferer, source: Path, target_keypoints: np.ndarray, out: Path, *,
                 source_pose: Path | None = None, paste_back: bool = False, save_attention: bool = False,
                 crop: CropMode = "auto", pad: C.PadMode = "edge", target_pose_image: bool = True,
                 ) -> list[Path]:
    """One source photo → ``out`` (mapped back to the photo's scale, or pasted into it), ``<out>_model.png``
    at model resolution, optionally ``<out>_attention.png`` and a ``<out>.json`` with the geometry."""
    photo = read_image(source)
    pose = source_pose_for(source, source_pose, photo)
    if pose.frame is not None and tuple(pose.frame) != photo.shape[:2]:
        pose = Pose(K.rescale_keypoints(pose.keypoints, pose.frame, photo.shape[:2]), photo.shape[:2], pose.where)
    prepared = prepare_source(photo, pose, model.size, crop, pad)
    generated, extras = model.generate(prepared.image, prepared.keypoints, target_keypoints, extras=True)
    written = []
    result = (C.paste_back(photo, generated, prepared.box) if paste_back
              else C.box_to_photo(generated, prepared.box, photo.shape[:2]))
    save_image(out, result)
    written.append(out)
    model_out = out.with_name(f"{out.stem}_model.png")
    save_image(model_out, generated)
    written.append(model_out)
    if save_attention:
        if not extras.attention:
            raise ModelError(f"{model.name}: the {model.arch!r} generator has no attention masks to save")
        figure = viz.attention_figure(prepared.image, viz.pose_image(target_keypoints, model.size),
                                      extras.attention, generated)
        attention_out = out.with_name(f"{out.stem}_attention.png")
        save_image(attention_out, figure)
        written.append(attention_out)
    write_json(out.with_name(f"{out.stem}.json"), {
        "source": str(source), "checkpoint": model.name, "arch": model.arch, "size": list(model.size),
        "crop_box": prepared.box.to_json(), "source_keypoints": prepared.keypoints,
        "target_keypoints": target_keypoints, "paste_back": paste_back,
    })
    return written


def transfer_files(model: Transferer, source: str | os.PathLike, target: Pose, out: str | os.PathLike, *,
                   source_pose: str | os.PathLike | None = None, paste_back: bool = False,
                   save_attention: bool = False, crop: CropMode = "auto", pad: C.PadMode = "edge",
                   ) -> TransferReport:
    """``posetransfer transfer``: a source photo → ``out`` file; a folder → one output per image in ``out``/.

    In folder mode a bad file is reported and skipped; single-file errors raise.
    """
    source, out = Path(source), Path(out)
    pose_path = Path(source_pose) if source_pose is not None else None
    if pose_path is not None and not pose_path.exists():
        raise DataError(f"{pose_path}: source keypoints not found")
    target_kp = target_to_model(target, model.size, crop)
    if int((~K.missing_mask(target_kp)).sum()) == 0:
        raise PoseError(f"{target.where}: no target joint lies inside the model frame")
    report = TransferReport()
    if not source.exists():
        raise DataError(f"{source}: source not found")
    if source.is_file():
        if out.suffix.lower() not in IMAGE_SUFFIXES:
            raise ConfigError(f"{out}: output must be an image file (.png, .jpg) when the source is one file")
        report.written.extend(transfer_one(model, source, target_kp, out, source_pose=pose_path,
                                           paste_back=paste_back, save_attention=save_attention, crop=crop, pad=pad))
        report.succeeded.append(source)
        return report
    images = list_images(source)
    if not images:
        raise DataError(f"{source}: no images (.jpg, .png, ...) in this folder")
    if out.suffix.lower() in IMAGE_SUFFIXES:
        raise ConfigError(f"{out}: output must be a folder when the source is a folder")
    out.mkdir(parents=True, exist_ok=True)
    from tqdm import tqdm

    # x.jpg and x.png must not both write out/x.png: a shared stem keeps its extension in the output name
    stems = Counter(p.stem for p in images)
    for path in tqdm(images, desc="transfer", unit="img", disable=len(images) < 2):
        stem = path.stem if stems[path.stem] == 1 else f"{path.stem}_{path.suffix.lstrip('.').lower()}"
        try:
            report.written.extend(transfer_one(model, path, target_kp, out / f"{stem}.png",
                                               source_pose=pose_path, paste_back=paste_back,
                                               save_attention=save_attention, crop=crop, pad=pad))
            report.succeeded.append(path)
        except (ModelError, OutputError):   # the model or the disk fails for every photo alike: stop
            raise
        except PosetransferError as exc:
            report.failed.append((path, str(exc)))
    return report
