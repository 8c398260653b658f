"""``posetransfer transfer``: the person of a photo (or of every photo in a folder) in a target pose.

The model is an :class:`posetransfer.inference.InferenceModel` (its input contract says the frame and the
pose maps); the photo and pose helpers are :mod:`posetransfer.apps.poses` and :mod:`posetransfer.apps.crop`.
"""
from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import viz
from ..data import keypoints as K
from ..data.layout import IMAGE_SUFFIXES
from ..errors import ConfigError, DataError, ModelError, OutputError, PoseError, PosetransferError
from ..inference import InferenceModel
from ..io import read_image, save_image, write_json
from . import crop as C
from .poses import CropMode, Pose, source_pose_for, target_to_model

log = logging.getLogger(__name__)


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


def transfer_one(model: InferenceModel, source: Path, target_keypoints: np.ndarray, out: Path, *,
                 source_pose: Path | None = None, paste_back: bool = False, save_attention: bool = False,
                 crop: CropMode = "auto", pad: C.PadMode = "edge") -> list[Path]:
    """One source photo → ``out`` (mapped back to the photo's scale, or pasted into it), ``<out>_model.png``
    in the model frame, optionally ``<out>_attention.png`` and a ``<out>.json`` with the geometry."""
    photo = read_image(source)
    pose = source_pose_for(source, source_pose, photo)
    result = model.transfer(photo, target_keypoints, pose, crop=crop, pad=pad, paste_back=paste_back,
                            where=str(source))
    written = []
    save_image(out, result.image)
    written.append(out)
    model_out = out.with_name(f"{out.stem}_model.png")
    save_image(model_out, result.model_image)
    written.append(model_out)
    if save_attention:
        if not result.output.attention:
            raise ModelError(f"{model.name}: the {model.arch!r} generator has no attention masks to save")
        figure = viz.attention_figure(result.source.image, viz.pose_image(target_keypoints, model.frame),
                                      result.output.attention, result.model_image)
        attention_out = out.with_name(f"{out.stem}_attention.png")
        save_image(attention_out, figure)
        written.append(attention_out)
    write_json(out.with_name(f"{out.stem}.json"), {
        "source": str(source), "checkpoint": model.name, "arch": model.arch, "size": list(model.frame),
        "model_size": list(model.size), "input_contract": model.contract.to_json(),
        "crop_box": result.source.box.to_json(), "source_keypoints": result.source.keypoints,
        "target_keypoints": target_keypoints, "paste_back": paste_back,
    })
    return written


def transfer_files(model: InferenceModel, source: str | os.PathLike, target: Pose, out: str | os.PathLike, *,
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
    target_kp = target_to_model(target, model.frame, crop)
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
