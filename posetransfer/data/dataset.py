"""``PairDataset``: (source image, source pose, target image, target pose) from a PATN-layout folder.

What it reads (see :mod:`posetransfer.data.layout`): ``<root>/<split>/*.jpg``, the annotation CSV and the
pairs CSV of the split, optionally ``dataset.json`` for the kind and image size. Pose heatmaps are computed
on the fly from the CSV keypoints (the official code stored them as ``.npy`` files; for DeepFashion as
uint8, which made them one-hot — ``heatmap_mode="onehot"`` reproduces that).

Why the checks: a bad dataset must fail at start-up (or, with ``on_bad_sample="skip"``, lose one pair with
a logged warning), with a one-line :class:`DataError` naming the file — never a PIL traceback from a
DataLoader worker after an hour of training.

Augmentation (``augment=True``, off by default like PATN) is deterministic: every random draw comes from
``numpy.random.default_rng([seed, epoch, index])``, so a given (epoch, index) always gives the same sample,
in the main process or in any DataLoader worker. Call :meth:`PairDataset.set_epoch` before each epoch
(with non-persistent workers, which receive a fresh copy of the dataset every epoch).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path, PurePath
from typing import Iterable, Literal, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import ConfigError, DataError
from ..io import image_to_tensor_range, read_image
from ..kinds import parse_kind, parse_size
from . import keypoints as K
from .layout import detect_kind, find_split_files, read_dataset_json

log = logging.getLogger(__name__)

AUGMENTATIONS = ("flip", "affine")

#: GFLA's train-time affine jitter (``data/market_dataset.py`` defaults, also used for DeepFashion):
#: the source gets angle U(-5, 5)°, shift U(-5, 5) px per axis, scale U(0.95, 1.05); the target 0.2× the
#: angle, 0.5× the shift and no scaling ("reduce the deform parameters of the generated image").
AFFINE_ANGLE = 5.0
AFFINE_SHIFT = 5.0
AFFINE_SCALE = 0.05
TARGET_ANGLE_FACTOR = 0.2
TARGET_SHIFT_FACTOR = 0.5
AFFINE_FILL = 128

#: Give up on ``on_bad_sample="skip"`` after this many unreadable images while looking for a replacement.
MAX_BAD_READS_PER_ITEM = 20


def affine_matrix(size: tuple[int, int], angle: float, shift: tuple[float, float], scale: float) -> np.ndarray:
    """2×3 forward matrix on (x, y) pixel coordinates: rotate ``angle``° and scale about the image centre,
    then shift by ``shift`` = (dx, dy). The same matrix moves the image (``cv2.warpAffine``) and the
    keypoints (:func:`keypoints.affine_keypoints`), which keeps them consistent.
    """
    h, w = size
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    a = np.deg2rad(angle)
    cos, sin = scale * np.cos(a), scale * np.sin(a)
    return np.array([
        [cos, sin, (1 - cos) * cx - sin * cy + shift[0]],
        [-sin, cos, sin * cx + (1 - cos) * cy + shift[1]],
    ])


def warp_image(image: np.ndarray, matrix: np.ndarray, fill: int = AFFINE_FILL) -> np.ndarray:
    """Apply a forward 2×3 ``matrix`` to a uint8 H×W×3 image (bilinear, constant ``fill`` outside)."""
    import cv2

    h, w = image.shape[:2]
    return cv2.warpAffine(np.ascontiguousarray(image), matrix.astype(np.float64), (w, h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(fill, fill, fill))


def _parse_augment(augment: bool | str | Iterable[str]) -> frozenset[str]:
    if augment is True:
        return frozenset(AUGMENTATIONS)
    if augment is False or augment is None:
        return frozenset()
    items = [augment] if isinstance(augment, str) else list(augment)
    unknown = [a for a in items if a not in AUGMENTATIONS]
    if unknown:
        raise ConfigError(f"unknown augmentation {unknown[0]!r} (choose from {', '.join(AUGMENTATIONS)})")
    return frozenset(items)


def _safe_relative(name: str, where: str) -> None:
    """Image names are file names below the split folder: no absolute paths, no ``..``."""
    pure = PurePath(name)
    if pure.is_absolute() or ".." in pure.parts or "\\" in name:
        raise DataError(f"{where}: image name {name!r} must be a file name inside the image folder")


class PairDataset(Dataset):
    """Pairs of one person in two poses, as dicts of tensors (see :meth:`__getitem__`).

    Parameters follow the project contract: ``root`` (PATN layout), ``split`` (train/test), ``size`` (H, W;
    default from dataset.json or the kind: Market 128×64, DeepFashion 256×176), ``heatmap_mode``
    (``gaussian`` σ=``sigma`` or the legacy ``onehot``), ``augment`` (True = flip + affine, or a list of
    those names), ``on_bad_sample`` (``fail``: raise :class:`DataError`; ``skip``: log once per file, record it
    in :attr:`bad_samples` and return the next good pair), ``pairs`` (None = the split's pairs CSV, a path to
    another pairs CSV, or a list of (from, to) names).

    Extra keywords: ``seed`` (augmentation base seed), ``keypoints_outside`` (``error`` or ``missing`` for
    annotation files with joints beyond the image), ``check_images`` (open every image header at start-up
    to find wrong sizes and corrupt files before training), ``flip_prob``.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", size: tuple[int, int] | None = None,
                 heatmap_mode: K.HeatmapMode = "gaussian", sigma: float = 6.0,
                 augment: bool | str | Iterable[str] = False,
                 on_bad_sample: Literal["fail", "skip"] = "fail",
                 pairs: str | os.PathLike | Sequence[tuple[str, str]] | None = None, *,
                 seed: int = 0, keypoints_outside: Literal["error", "missing"] = "error",
                 check_images: bool = False, flip_prob: float = 0.5) -> None:
        if heatmap_mode not in ("gaussian", "onehot"):
            raise ConfigError(f"heatmap_mode must be 'gaussian' or 'onehot', got {heatmap_mode!r}")
        if on_bad_sample not in ("fail", "skip"):
            raise ConfigError(f"on_bad_sample must be 'fail' or 'skip', got {on_bad_sample!r}")
        if keypoints_outside not in ("error", "missing"):
            raise ConfigError(f"keypoints_outside must be 'error' or 'missing', got {keypoints_outside!r}")
        if not sigma > 0:
            raise ConfigError(f"sigma must be positive, got {sigma!r}")
        self.root = Path(root)
        self.split = split
        self.heatmap_mode = heatmap_mode
        self.sigma = float(sigma)
        self.augmentations = _parse_augment(augment)
        self.on_bad_sample = on_bad_sample
        self.seed = int(seed)
        self.flip_prob = float(flip_prob)
        self.epoch = 0
        self.bad_samples: set[str] = set()
        self._warned: set[str] = set()

        self.images_dir, self.annotation_csv, pairs_csv = find_split_files(self.root, split)
        self.kind = detect_kind(self.root)
        meta = read_dataset_json(self.root)
        if size is not None:
            self.size = parse_size(size, where="size", error=DataError)
        elif "size" in meta:
            self.size = parse_size(meta["size"], where=f"{self.root / 'dataset.json'}: size", error=DataError)
        else:
            self.size = parse_kind(self.kind).size

        self.annotations = K.read_annotations(self.annotation_csv, size=self.size, outside=keypoints_outside)
        for name in self.annotations:
            _safe_relative(name, str(self.annotation_csv))
        if pairs is None or isinstance(pairs, (str, os.PathLike)):
            self.pairs_source = str(pairs_csv if pairs is None else pairs)
            self.pairs = K.read_pairs(self.pairs_source, known_names=self.annotations)
        else:
            self.pairs_source = "pairs argument"
            self.pairs = []
            for i, pair in enumerate(pairs):
                if len(pair) != 2:
                    raise DataError(f"pairs[{i}]: expected (from, to), got {pair!r}")
                for name in pair:
                    if name not in self.annotations:
                        raise DataError(f"pairs[{i}]: image {name!r} is not in {self.annotation_csv}")
                self.pairs.append((str(pair[0]), str(pair[1])))
        if not self.pairs:
            raise DataError(f"{self.pairs_source}: no pairs, the {split} dataset is empty")
        self._check_files_exist()
        if check_images:
            self._check_image_headers()
        if not self.pairs:
            raise DataError(f"{self.pairs_source}: every pair references a missing or unreadable image")

    # ----------------------------------------------------------------------------------------------
    # Start-up checks
    # ----------------------------------------------------------------------------------------------
    def _referenced(self) -> list[str]:
        seen: dict[str, None] = {}
        for a, b in self.pairs:
            seen.setdefault(a)
            seen.setdefault(b)
        return list(seen)

    def _check_files_exist(self) -> None:
        """Every image named by a pair must exist: one directory listing, not one stat per pair."""
        try:
            present = set(os.listdir(self.images_dir))
        except OSError as exc:
            raise DataError(f"{self.images_dir}: cannot list image folder ({exc.strerror or exc})") from None
        for name in self._referenced():
            if name in present or ("/" in name and (self.images_dir / name).is_file()):
                continue
            message = f"{self.images_dir / name}: image file not found (referenced in {self.pairs_source})"
            self._bad(name, message)
        self._drop_bad_pairs()

    def _check_image_headers(self) -> None:
        from PIL import Image, UnidentifiedImageError

        for name in self._referenced():
            path = self.images_dir / name
            try:
                with Image.open(path) as img:
                    img.verify()
                    w, h = img.size
            except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
                self._bad(name, f"{path}: not a readable image ({exc.__class__.__name__}: {exc})")
                continue
            if (h, w) != self.size:
                self._bad(name, f"{path}: image is {h}x{w} (HxW) but {self.size[0]}x{self.size[1]} is expected")
        self._drop_bad_pairs()

    def _bad(self, name: str, message: str) -> None:
        """Fail, or (skip mode) remember the file and warn once."""
        if self.on_bad_sample == "fail":
            raise DataError(message)
        self.bad_samples.add(name)
        if name not in self._warned:
            self._warned.add(name)
            log.warning("%s; skipping its pairs", message)

    def _drop_bad_pairs(self) -> None:
        if self.bad_samples:
            self.pairs = [p for p in self.pairs if p[0] not in self.bad_samples and p[1] not in self.bad_samples]

    # ----------------------------------------------------------------------------------------------
    # Dataset protocol
    # ----------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.pairs)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draws of ``epoch`` (see the module docstring)."""
        self.epoch = int(epoch)

    def load_image(self, name: str) -> np.ndarray:
        """uint8 H×W×3 image ``name`` of this split; wrong size or corrupt file → :class:`DataError`."""
        return read_image(self.images_dir / name, self.size)

    def __getitem__(self, index: int) -> dict:
        """Dict with ``source_image``, ``target_image`` (3×H×W in [-1, 1]), ``source_heatmaps``,
        ``target_heatmaps`` (18×H×W), ``source_keypoints``, ``target_keypoints`` ((18, 2) int64, (y, x),
        -1 missing, after augmentation) and ``source_name``, ``target_name``.
        """
        n = len(self.pairs)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} pairs")
        index %= n
        failures = 0
        for step in range(n):
            j = (index + step) % n
            a, b = self.pairs[j]
            if a in self.bad_samples or b in self.bad_samples:
                continue
            images = []
            for name in (a, b):
                try:
                    images.append(self.load_image(name))
                except DataError as exc:
                    self._bad(name, str(exc))  # raises in "fail" mode
                    failures += 1
                    if failures >= MAX_BAD_READS_PER_ITEM:
                        raise DataError(f"{self.images_dir}: {failures} unreadable images while looking for a "
                                        f"good pair, last: {exc}") from None
                    break
            if len(images) == 2:
                return self._make_item(index, a, b, images)
        raise DataError(f"{self.pairs_source}: no readable pair left (bad images: {len(self.bad_samples)})")

    def _make_item(self, index: int, a: str, b: str, images: list[np.ndarray]) -> dict:
        kps = [self.annotations[a].copy(), self.annotations[b].copy()]
        if self.augmentations:
            images, kps = self._augment(index, images, kps)
        item = {"source_name": a, "target_name": b}
        for role, image, kp in zip(("source", "target"), images, kps):
            item[f"{role}_image"] = torch.from_numpy(image_to_tensor_range(image))
            item[f"{role}_heatmaps"] = torch.from_numpy(K.heatmaps(kp, self.size, self.sigma, self.heatmap_mode))
            item[f"{role}_keypoints"] = torch.from_numpy(np.ascontiguousarray(kp, dtype=np.int64))
        return item

    def _augment(self, index: int, images: list[np.ndarray], kps: list[np.ndarray]):
        """Flip the whole pair, then jitter each image with GFLA's affine; all draws made in a fixed order."""
        rng = np.random.default_rng([self.seed, self.epoch, index])
        flip = rng.random() < self.flip_prob
        angle = rng.uniform(-AFFINE_ANGLE, AFFINE_ANGLE, size=2)
        shift = rng.uniform(-AFFINE_SHIFT, AFFINE_SHIFT, size=(2, 2))
        scale = rng.uniform(1 - AFFINE_SCALE, 1 + AFFINE_SCALE)
        h, w = self.size
        if "flip" in self.augmentations and flip:
            images = [np.ascontiguousarray(im[:, ::-1]) for im in images]
            kps = [K.flip_keypoints(kp, w) for kp in kps]
        if "affine" in self.augmentations:
            params = [(angle[0], shift[0], scale),
                      (angle[1] * TARGET_ANGLE_FACTOR, shift[1] * TARGET_SHIFT_FACTOR, 1.0)]
            out_images, out_kps = [], []
            for im, kp, (ang, sh, sc) in zip(images, kps, params):
                m = affine_matrix(self.size, float(ang), (float(sh[0]), float(sh[1])), float(sc))
                out_images.append(warp_image(im, m))
                out_kps.append(K.affine_keypoints(kp, m, self.size))
            images, kps = out_images, out_kps
        return images, kps

    def __repr__(self) -> str:
        aug = ",".join(sorted(self.augmentations)) or "none"
        return (f"PairDataset({str(self.root)!r}, split={self.split!r}, kind={self.kind}, size={self.size}, "
                f"pairs={len(self.pairs)}, heatmaps={self.heatmap_mode}, augment={aug})")
