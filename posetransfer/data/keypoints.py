"""The 18-point OpenPose/COCO keypoints: PATN's CSV formats, heatmaps, masks and geometric transforms.

Conventions (exactly those of the PATN annotation CSVs, converted at the edges only):
keypoints are an ``(18, 2)`` int array of ``(y, x)`` = (row, column) in the pixel space of the image they
belong to, with ``-1`` in both entries for a missing joint. The joint order, limbs and flip pairs are
:mod:`posetransfer.skeleton`'s (imported here because every function below uses them); the frame sizes are
:mod:`posetransfer.kinds`'; drawing is :mod:`posetransfer.viz`'s.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import os
from pathlib import Path
from typing import Iterable, Literal, Sequence

import numpy as np

from ..errors import DataError
from ..io import atomic_path
from ..kinds import FASHION, FASHION_CROP_LEFT
from ..skeleton import (FLIP_PERMUTATION, HEAD_JOINTS, JOINT_INDEX, JOINT_NAMES, LIMBS, MASK_LIMBS,  # noqa: F401
                        MISSING, NUM_JOINTS, REQUIRED_FOR_PAIRS)

HeatmapMode = Literal["gaussian", "onehot"]

#: Coordinates beyond this are garbage (and would overflow int64 on the way); real images are far smaller.
MAX_COORDINATE = 1 << 20


# --------------------------------------------------------------------------------------------------
# Validation and conversion
# --------------------------------------------------------------------------------------------------
def missing_mask(keypoints: np.ndarray) -> np.ndarray:
    """Boolean (18,) array: True where the joint is missing (either coordinate is -1)."""
    kp = np.asarray(keypoints)
    return (kp[:, 0] == MISSING) | (kp[:, 1] == MISSING)


def validate_keypoints(keypoints: np.ndarray, size: tuple[int, int] | None = None,
                       where: str = "keypoints") -> np.ndarray:
    """Return ``keypoints`` as an (18, 2) int64 array, or raise :class:`DataError` naming ``where``.

    With ``size`` = (H, W), every present joint must lie inside the image.
    """
    kp = np.asarray(keypoints)
    if kp.shape != (NUM_JOINTS, 2):
        raise DataError(f"{where}: expected 18 (y, x) keypoints, got an array of shape {kp.shape}")
    if kp.dtype == bool or not np.issubdtype(kp.dtype, np.number) or not np.all(np.isfinite(kp)):
        raise DataError(f"{where}: keypoints must be finite numbers")
    if np.any(np.abs(kp) > MAX_COORDINATE):
        raise DataError(f"{where}: keypoint coordinate larger than {MAX_COORDINATE}")
    kp = np.rint(kp).astype(np.int64)
    miss = missing_mask(kp)
    kp[miss] = MISSING
    if np.any(kp[~miss] < 0):
        raise DataError(f"{where}: negative coordinate {kp[~miss].min()} (only -1 = missing is allowed)")
    if size is not None:
        h, w = size
        bad = (~miss) & ((kp[:, 0] >= h) | (kp[:, 1] >= w))
        if bad.any():
            j = int(np.argmax(bad))
            raise DataError(
                f"{where}: joint {j} ({JOINT_NAMES[j]}) at (y={kp[j, 0]}, x={kp[j, 1]}) lies outside the "
                f"{h}x{w} image"
            )
    return kp


def _parse_int_list(text: str, where: str, axis: str) -> list[int]:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':  # a CSV writer may have quoted the field
        text = text[1:-1]
    try:
        values = json.loads(text)
    except (ValueError, TypeError, RecursionError):
        raise DataError(f"{where}: keypoints_{axis} is not a list of numbers: {text[:60]!r}") from None
    if not isinstance(values, list) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
    ):
        raise DataError(f"{where}: keypoints_{axis} is not a list of numbers: {text[:60]!r}")
    if len(values) != NUM_JOINTS:
        raise DataError(f"{where}: keypoints_{axis} has {len(values)} values, 18 expected")
    if not all(isinstance(v, int) or np.isfinite(v) for v in values):
        raise DataError(f"{where}: keypoints_{axis} contains a non-finite value")
    if any(abs(v) > MAX_COORDINATE for v in values):
        raise DataError(f"{where}: keypoints_{axis} contains a coordinate larger than {MAX_COORDINATE}")
    return [int(round(v)) for v in values]


def parse_keypoints(y_text: str, x_text: str, where: str = "keypoints",
                    negative: Literal["error", "missing"] = "error") -> np.ndarray:
    """Parse PATN's two JSON lists (y first, then x) into an (18, 2) (y, x) array.

    ``negative="missing"`` turns negative coordinates other than -1 into missing joints instead of an
    error (the official ``resize_fashion.py`` wrote ``x - 40`` without clipping).
    """
    ys = _parse_int_list(y_text, where, "y")
    xs = _parse_int_list(x_text, where, "x")
    kp = np.stack([ys, xs], axis=1).astype(np.int64)
    if negative == "missing":
        kp[(kp < 0).any(axis=1)] = MISSING
    return validate_keypoints(kp, where=where)


def format_keypoints(keypoints: np.ndarray, where: str = "keypoints") -> tuple[str, str]:
    """The inverse of :func:`parse_keypoints`: two JSON lists ``[y0, ...]``, ``[x0, ...]``."""
    kp = validate_keypoints(keypoints, where=where)
    return json.dumps([int(v) for v in kp[:, 0]]), json.dumps([int(v) for v in kp[:, 1]])


def check_image_name(name: str, where: str = "image name") -> str:
    """Refuse names that could not be written to and read back from both CSVs unchanged.

    Empty names, ':' (the annotation separator), non-printable characters (newlines, NUL, line
    separators that ``str.splitlines`` would break on), surrounding
    whitespace or double quotes (both readers strip them) are a :class:`DataError`.
    """
    if not isinstance(name, str) or not name:
        raise DataError(f"{where}: empty or non-text image name {name!r}")
    if ":" in name or not name.isprintable():
        raise DataError(f"{where}: image name {name!r} cannot contain ':' or control characters")
    if name != name.strip() or name.strip('"') != name:
        raise DataError(f"{where}: image name {name!r} cannot start or end with whitespace or '\"'")
    return name


# --------------------------------------------------------------------------------------------------
# Annotation CSV ("name:keypoints_y:keypoints_x") and pairs CSV ("from,to")
# --------------------------------------------------------------------------------------------------
def _read_text(path: Path, what: str) -> str:
    """Whole file as text (UTF-8, optional BOM); undecodable bytes are a :class:`DataError` naming the file."""
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: {what} file is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read {what} file ({exc.strerror or exc})") from None


def read_annotations(path: str | os.PathLike, size: tuple[int, int] | None = None,
                     outside: Literal["error", "missing"] = "error") -> dict[str, np.ndarray]:
    """Read a PATN annotation CSV into ``{image name: (18, 2) keypoints}``.

    Errors name the file and the 1-based line: wrong header, wrong number of fields, malformed lists,
    duplicate names, keypoints outside ``size`` when given. ``outside="missing"`` instead turns joints
    outside the image (negative, or beyond ``size``) into missing ones, for third-party files that were
    written without clipping; how many were changed is logged once.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: annotation file not found")
    result: dict[str, np.ndarray] = {}
    dropped = 0
    lines = _read_text(path, "annotation").splitlines()
    if not lines:
        raise DataError(f"{path}: annotation file is empty")
    header = [h.strip() for h in lines[0].split(":")]
    if header != ["name", "keypoints_y", "keypoints_x"]:
        raise DataError(f"{path}:1: header must be 'name:keypoints_y:keypoints_x', got {lines[0][:60]!r}")
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split(":")
        where = f"{path}:{lineno}"
        if "\x00" in line:
            raise DataError(f"{where}: NUL byte in line")
        if len(fields) != 3:
            raise DataError(f"{where}: expected 3 ':'-separated fields, got {len(fields)}")
        name = fields[0].strip().strip('"').strip()
        if not name:
            raise DataError(f"{where}: empty image name")
        if name in result:
            raise DataError(f"{where}: duplicate image name {name!r}")
        kp = parse_keypoints(fields[1], fields[2], where=f"{where} ({name})", negative=outside)
        if outside == "missing":
            present_before = NUM_JOINTS - _count_missing_in_text(fields[1], fields[2])
            if size is not None:
                kp = _mark_outside(kp, size)
            dropped += present_before - int(np.count_nonzero(~missing_mask(kp)))
        elif size is not None:
            validate_keypoints(kp, size, where=f"{where} ({name})")
        result[name] = kp
    if dropped:
        logging.getLogger(__name__).warning("%s: %d joints outside the image were marked missing", path, dropped)
    return result


def _count_missing_in_text(y_text: str, x_text: str) -> int:
    """Joints written as missing (-1 in either list); the texts were already validated by the parser."""
    ys = _parse_int_list(y_text, "", "y")
    xs = _parse_int_list(x_text, "", "x")
    return sum(1 for y, x in zip(ys, xs) if y == MISSING or x == MISSING)


def write_annotations(path: str | os.PathLike, annotations: dict[str, np.ndarray]) -> None:
    """Write ``{name: keypoints}`` as a PATN annotation CSV (atomically)."""
    rows = ["name:keypoints_y:keypoints_x"]
    for name, kp in annotations.items():
        check_image_name(name, where=str(path))
        y_text, x_text = format_keypoints(kp, where=f"{path} ({name})")
        rows.append(f"{name}: {y_text}: {x_text}")
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(rows) + "\n", encoding="utf-8")


def read_pairs(path: str | os.PathLike, known_names: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """Read a pairs CSV (header ``from,to``). With ``known_names``, unknown images are a :class:`DataError`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: pairs file not found")
    known = set(known_names) if known_names is not None else None
    pairs: list[tuple[str, str]] = []
    text = _read_text(path, "pairs")
    if "\x00" in text:
        raise DataError(f"{path}: NUL byte in pairs file")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise DataError(f"{path}: pairs file is empty") from None
    except csv.Error as exc:
        raise DataError(f"{path}:1: not a valid CSV line ({exc})") from None
    if [h.strip() for h in header] != ["from", "to"]:
        raise DataError(f"{path}:1: header must be 'from,to', got {','.join(header)[:60]!r}")
    try:
        for row in reader:
            lineno = reader.line_num
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != 2:
                raise DataError(f"{path}:{lineno}: expected 2 comma-separated names, got {len(row)} fields")
            src, dst = row[0].strip(), row[1].strip()
            if not src or not dst:
                raise DataError(f"{path}:{lineno}: empty image name")
            if known is not None:
                for name in (src, dst):
                    if name not in known:
                        raise DataError(f"{path}:{lineno}: image {name!r} is not in the annotation file")
            pairs.append((src, dst))
    except csv.Error as exc:
        raise DataError(f"{path}:{reader.line_num}: not a valid CSV line ({exc})") from None
    return pairs


def write_pairs(path: str | os.PathLike, pairs: Sequence[tuple[str, str]]) -> None:
    """Write a pairs CSV (header ``from,to``) atomically."""
    for pair in pairs:
        if len(pair) != 2:
            raise DataError(f"{path}: a pair must have 2 names, got {pair!r}")
        for name in pair:
            check_image_name(name, where=str(path))
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["from", "to"])
            writer.writerows(pairs)


# --------------------------------------------------------------------------------------------------
# Heatmaps
# --------------------------------------------------------------------------------------------------
#: float32's smallest normal number, 2**-126 (a literal: np.finfo warns when it is first computed with
#: denormals flushed to zero, as the trainer runs)
_FLOAT32_TINY = np.float32(2.0 ** -126)


def heatmaps(keypoints: np.ndarray, size: tuple[int, int], sigma: float = 6.0,
             mode: HeatmapMode = "gaussian") -> np.ndarray:
    """(18, H, W) float32 pose maps for ``keypoints`` at image ``size`` = (H, W).

    ``gaussian``: ``exp(-((y-yj)^2 + (x-xj)^2) / (2 sigma^2))`` per joint (PATN's ``cords_to_map``),
    computed as an outer product of two 1-D Gaussians (identical values, O(H+W) exponentials).
    ``onehot``: the legacy DeepFashion maps — PATN saved the Gaussian maps as uint8, which truncates every
    value below 1 to 0, leaving a single 1 at the joint. The released DeepFashion checkpoints were trained
    on these. A missing joint, or one outside the image, gives an all-zero channel.
    """
    h, w = size
    kp = np.asarray(keypoints)
    out = np.zeros((NUM_JOINTS, h, w), dtype=np.float32)
    present = ~missing_mask(kp) & (kp[:, 0] < h) & (kp[:, 1] < w) & (kp[:, 0] >= 0) & (kp[:, 1] >= 0)
    if mode == "onehot":
        idx = np.nonzero(present)[0]
        out[idx, kp[idx, 0].astype(int), kp[idx, 1].astype(int)] = 1.0
        return out
    if mode != "gaussian":
        raise ValueError(f"unknown heatmap mode {mode!r} (gaussian or onehot)")
    idx = np.nonzero(present)[0]
    if idx.size == 0:
        return out
    ys = np.arange(h, dtype=np.float32)
    xs = np.arange(w, dtype=np.float32)
    denom = np.float32(2.0 * sigma * sigma)
    gy = np.exp(-((ys[None, :] - kp[idx, 0:1].astype(np.float32)) ** 2) / denom)   # (J, H)
    gx = np.exp(-((xs[None, :] - kp[idx, 1:2].astype(np.float32)) ** 2) / denom)   # (J, W)
    maps = gy[:, :, None] * gx[:, None, :]
    # values below float32's smallest normal number (far from the joint) become 0: subnormal inputs make
    # every convolution reading them several times slower on x86 CPUs (measured: 5x for the shape D)
    maps[maps < _FLOAT32_TINY] = 0.0
    out[idx] = maps
    return out


def heatmap_argmax(maps: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Recover (18, 2) keypoints from heatmaps (peak position; -1 where the peak is below ``threshold``)."""
    n, h, w = maps.shape
    flat = maps.reshape(n, -1)
    idx = flat.argmax(axis=1)
    kp = np.stack([idx // w, idx % w], axis=1).astype(np.int64)
    kp[flat.max(axis=1) < threshold] = MISSING
    return kp


# --------------------------------------------------------------------------------------------------
# Geometric transforms
# --------------------------------------------------------------------------------------------------
def _mark_outside(kp: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    if size is not None:
        h, w = size
        outside = (kp[:, 0] < 0) | (kp[:, 1] < 0) | (kp[:, 0] >= h) | (kp[:, 1] >= w)
        kp[outside] = MISSING
    return kp


def rescale_keypoints(keypoints: np.ndarray, from_size: tuple[int, int],
                      to_size: tuple[int, int], rounding: Literal["round", "truncate"] = "round") -> np.ndarray:
    """Scale keypoints from an image of ``from_size`` (H, W) to ``to_size``; missing stays missing.

    ``round`` uses the pixel-centre convention ``y' = (y + 0.5) * H'/H - 0.5`` so that a round trip returns
    the same pixel; ``truncate`` is GFLA's ``int(y / H * H')`` (its released models were trained on those
    centres). Joints that end up outside the image become missing.
    """
    kp = np.asarray(keypoints)
    miss = missing_mask(kp)
    if rounding == "truncate":
        out = np.floor(kp / np.array(from_size, dtype=np.float64) * np.array(to_size, dtype=np.float64))
        out = out.astype(np.int64)
        out[miss] = MISSING
        return _mark_outside(out, to_size)
    if rounding != "round":
        raise ValueError(f"unknown keypoint rounding {rounding!r} (round or truncate)")
    scale = np.array([to_size[0] / from_size[0], to_size[1] / from_size[1]])
    out = np.rint((kp + 0.5) * scale - 0.5).astype(np.int64)
    out[miss] = MISSING
    return _mark_outside(out, to_size)


def crop_keypoints(keypoints: np.ndarray, top: int, left: int,
                   size: tuple[int, int] | None = None) -> np.ndarray:
    """Keypoints after cropping the image at (top, left); with ``size`` joints outside become missing."""
    kp = np.asarray(keypoints).astype(np.int64).copy()
    miss = missing_mask(kp)
    kp[~miss, 0] -= top
    kp[~miss, 1] -= left
    return _mark_outside(kp, size)


def fashion_256_to_176(keypoints: np.ndarray) -> np.ndarray:
    """DeepFashion 256×256 annotations → the 256×176 centre crop (``x' = x - 40``, PATN ``resize_fashion``)."""
    return crop_keypoints(keypoints, 0, FASHION_CROP_LEFT, FASHION.size)


def fashion_176_to_256(keypoints: np.ndarray) -> np.ndarray:
    """The inverse of :func:`fashion_256_to_176` (``x' = x + 40``)."""
    return crop_keypoints(keypoints, 0, -FASHION_CROP_LEFT, FASHION.raw_size)


def flip_keypoints(keypoints: np.ndarray, width: int) -> np.ndarray:
    """Keypoints of the horizontally mirrored image: ``x' = W - 1 - x`` and left/right joints swapped."""
    kp = np.asarray(keypoints).astype(np.int64).copy()
    miss = missing_mask(kp)
    kp[~miss, 1] = width - 1 - kp[~miss, 1]
    return kp[list(FLIP_PERMUTATION)]


def affine_keypoints(keypoints: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Apply a 2×3 affine ``matrix`` acting on (x, y) pixel coordinates; joints leaving the image go missing."""
    kp = np.asarray(keypoints)
    miss = missing_mask(kp)
    xy1 = np.stack([kp[:, 1], kp[:, 0], np.ones(len(kp))], axis=1).astype(np.float64)
    moved = xy1 @ np.asarray(matrix, dtype=np.float64).T
    out = np.rint(np.stack([moved[:, 1], moved[:, 0]], axis=1)).astype(np.int64)
    out[miss] = MISSING
    return _mark_outside(out, size)


# --------------------------------------------------------------------------------------------------
# Masks
# --------------------------------------------------------------------------------------------------
def pose_mask(keypoints: np.ndarray, size: tuple[int, int], radius: int = 4) -> np.ndarray:
    """The body mask of mask-SSIM / mask-IS / mask-LPIPS (PATN ``produce_ma_mask``), bool (H, W).

    A 2·radius-wide polygon around each of the 23 :data:`MASK_LIMBS` whose two ends are present, a disc of
    ``radius`` on every present joint, then a 5×5 dilation followed by a 5×5 erosion (a closing) to fill
    small gaps between limbs.
    """
    from skimage.draw import disk, polygon
    from skimage.morphology import dilation, erosion

    kp = np.asarray(keypoints).astype(np.float64)
    miss = missing_mask(kp)
    mask = np.zeros(size, dtype=bool)
    for a, b in MASK_LIMBS:
        if miss[a] or miss[b]:
            continue
        direction = kp[a] - kp[b]
        length = np.linalg.norm(direction)
        if length == 0:
            continue
        normal = radius * np.array([-direction[1], direction[0]]) / length
        corners = np.array([kp[a] + normal, kp[a] - normal, kp[b] - normal, kp[b] + normal])
        rr, cc = polygon(corners[:, 0], corners[:, 1], shape=size)
        mask[rr, cc] = True
    for j in np.nonzero(~miss)[0]:
        rr, cc = disk((kp[j, 0], kp[j, 1]), radius, shape=size)
        mask[rr, cc] = True
    # PATN applies skimage's dilation then erosion with a 5x5 square (a closing), in that order.
    footprint = np.ones((5, 5), dtype=bool)
    return erosion(dilation(mask, footprint), footprint)
