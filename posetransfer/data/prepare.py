"""Turning raw benchmark downloads into the PATN on-disk layout (see :mod:`posetransfer.data.layout`).

Why here and not in the official ``tool/`` scripts: those are python2 / need pandas and a Keras pose model,
``generate_fashion_datasets.py`` crashes on an undefined name, and none of them reports which file was wrong.
"""
from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from ..errors import DataError
from ..io import atomic_path, read_image, save_image
from ..kinds import FASHION, MARKET, kind_of_filename, parse_kind
from . import keypoints as K
from .layout import IMAGE_SUFFIXES, SPLITS, DatasetKind, build_pairs

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------
# Pairs CSV from an annotation CSV
# --------------------------------------------------------------------------------------------------
def kind_from_filename(path: str | os.PathLike) -> DatasetKind | None:
    """``market`` / ``fashion`` from an annotation file name (``market-…``, ``fasion-…``), else None."""
    kind = kind_of_filename(Path(path).name)
    return None if kind is None else kind.name  # type: ignore[return-value]


def make_pairs(annotation_csv: str | os.PathLike, kind: str | None, out_csv: str | os.PathLike,
               test_sample: int | None = None, seed: int = 0) -> int:
    """Write the pairs CSV built by :func:`build_pairs` from ``annotation_csv``; returns the number of pairs.

    ``kind`` None: guessed from the file name. No pairable image at all is a :class:`DataError`
    (a pairs file without pairs only fails later, further from the cause).
    """
    annotation_csv = Path(annotation_csv)
    if kind is None:
        kind = kind_from_filename(annotation_csv)
        if kind is None:
            raise DataError(f"{annotation_csv}: cannot tell market from fashion by the name; give the kind")
    annotations = K.read_annotations(annotation_csv)
    pairs = build_pairs(annotations, kind, test_sample=test_sample, seed=seed)
    if not pairs:
        raise DataError(
            f"{annotation_csv}: no pairs: no identity has two images with both hips and both shoulders"
        )
    K.write_pairs(out_csv, pairs)
    log.info("%s: %d pairs from %d annotated images", out_csv, len(pairs), len(annotations))
    return len(pairs)


# --------------------------------------------------------------------------------------------------
# Image geometry shared by the preparation of both datasets
# --------------------------------------------------------------------------------------------------
def fit_to_frame(image: np.ndarray, size: tuple[int, int], fill: int = 255) -> np.ndarray:
    """Resize to height ``H`` keeping the aspect ratio, then centre-crop or pad (``fill``) the width to ``W``.

    For the 256×256 In-shop ``img/`` files and (256, 176) this is exactly the official
    ``img.crop((40, 0, 216, 256))``. For the ``img_highres/`` files (1101×750) it gives the same framing:
    the 256×256 images are the high-resolution ones scaled to height 256 and padded white to a square.
    """
    from PIL import Image

    h, w = size
    ih, iw = image.shape[:2]
    if ih != h:
        new_w = max(1, int(round(iw * h / ih)))
        image = np.asarray(Image.fromarray(image).resize((new_w, h), Image.BICUBIC))
    iw = image.shape[1]
    if iw > w:
        left = (iw - w) // 2
        image = image[:, left:left + w]
    elif iw < w:
        left = (w - iw) // 2
        canvas = np.full((h, w, 3), fill, dtype=np.uint8)
        canvas[:, left:left + iw] = image
        image = canvas
    return np.ascontiguousarray(image)


def _image_size(path: Path) -> tuple[int, int]:
    """(H, W) from the image header without decoding the pixels; unreadable → :class:`DataError`."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            w, h = img.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: not a readable image ({exc.__class__.__name__}: {exc})") from None
    return h, w


def _copy_file(src: Path, dst: Path) -> None:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


@dataclass
class PrepareReport:
    """What a preparation run did; also written into ``dataset.json``."""

    kind: str
    out: Path
    written: dict[str, int] = field(default_factory=dict)      # split → images written now
    existing: dict[str, int] = field(default_factory=dict)     # split → images already there (kept)
    missing: dict[str, list[str]] = field(default_factory=dict)  # split → listed but not found
    unlisted: int = 0                                          # images found in no list
    csv_files: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{split}: {self.written.get(split, 0)} written, {self.existing.get(split, 0)} kept"
                 for split in SPLITS if split in self.written or split in self.existing]
        missing = sum(len(v) for v in self.missing.values())
        if missing:
            parts.append(f"{missing} listed images not found")
        if self.unlisted:
            parts.append(f"{self.unlisted} images in no list")
        if self.csv_files:
            parts.append("csv: " + ", ".join(self.csv_files))
        return f"{self.out} ({self.kind}): " + "; ".join(parts)


def _write_dataset_json(out: Path, kind: str, size: tuple[int, int], source: Path, report: PrepareReport,
                        **extra) -> None:
    from ..io import write_json

    meta = {"kind": kind, "size": [int(size[0]), int(size[1])], "synthetic": False,
            "source": str(source), "images": {s: report.written.get(s, 0) + report.existing.get(s, 0)
                                                for s in SPLITS}}
    meta.update(extra)
    write_json(out / "dataset.json", meta)


def _install_csvs(src: Path, out: Path, kind: DatasetKind, size: tuple[int, int], report: PrepareReport,
                  annotations: Mapping[str, str | os.PathLike] | None = None,
                  pairs: Mapping[str, str | os.PathLike] | None = None,
                  raw_annotations: Mapping[str, str | os.PathLike] | None = None,
                  test_sample: int | None = None, seed: int = 0) -> None:
    """Validate and copy (or convert, or build) the annotation and pairs CSVs of each split.

    Annotation CSVs already in the output frame are copied byte for byte after validation (so the files
    stay those of the authors); DeepFashion 256×256 ones (``raw_annotations``) are converted with
    :func:`convert_fashion_annotations`. Missing pairs CSVs are built with :func:`build_pairs`
    (test split sampled to ``test_sample``).
    """
    prefix = parse_kind(kind).prefix
    for split in SPLITS:
        ann_out = out / f"{prefix}-annotation-{split}.csv"
        pairs_out = out / f"{prefix}-pairs-{split}.csv"
        ann_src = (annotations or {}).get(split)
        raw_src = (raw_annotations or {}).get(split)
        if ann_src is None and raw_src is None:
            for candidate in parse_kind(kind).discovered_prefixes:
                if (src / f"{candidate}-annotation-{split}.csv").is_file():
                    ann_src = src / f"{candidate}-annotation-{split}.csv"
                    break
        if ann_src is not None:
            try:
                ann = K.read_annotations(ann_src, size=size)
                if Path(ann_src).resolve() != ann_out.resolve():
                    _copy_file(Path(ann_src), ann_out)
            except DataError as exc:
                # Only joints outside the image are repaired; any other problem is raised again below.
                ann = K.read_annotations(ann_src, size=size, outside="missing")
                log.warning("%s; written to %s with such joints marked missing", exc, ann_out)
                K.write_annotations(ann_out, ann)
        elif raw_src is not None:
            ann = convert_fashion_annotations(raw_src, ann_out)
        else:
            continue
        report.csv_files.append(ann_out.name)
        pairs_src = (pairs or {}).get(split)
        if pairs_src is None:
            for candidate in parse_kind(kind).discovered_prefixes:
                if (src / f"{candidate}-pairs-{split}.csv").is_file():
                    pairs_src = src / f"{candidate}-pairs-{split}.csv"
                    break
        if pairs_src is not None:
            K.read_pairs(pairs_src, known_names=ann)
            if Path(pairs_src).resolve() != pairs_out.resolve():
                _copy_file(Path(pairs_src), pairs_out)
        else:
            built = build_pairs(ann, kind, test_sample=test_sample if split == "test" else None, seed=seed)
            if not built:
                raise DataError(f"{ann_out}: no pairs can be built (no identity with two complete poses)")
            K.write_pairs(pairs_out, built)
        report.csv_files.append(pairs_out.name)


# --------------------------------------------------------------------------------------------------
# DeepFashion In-shop
# --------------------------------------------------------------------------------------------------
FASHION_IMAGE_FOLDERS = ("img", "img_highres")


def flatten_fashion_name(relative: str | os.PathLike) -> str:
    """The PATN/GFLA flat file name of an In-shop image path.

    ``[img/]WOMEN/Tees_Tanks/id_00007838/05_7_additional.jpg`` → ``fashionWOMENTees_Tanksid0000783805_7additional.jpg``:
    ``"fashion"`` + gender + category (unchanged) + id without ``_`` + file name keeping only its first ``_``
    (``tool/generate_fashion_datasets.py``, fixed version in GFLA ``script/generate_fashion_datasets.py``).
    """
    parts = [p for p in Path(relative).as_posix().split("/") if p not in ("", ".")]
    if parts and parts[0] in FASHION_IMAGE_FOLDERS:
        parts = parts[1:]
    if len(parts) != 4:
        raise DataError(f"{relative}: expected <gender>/<category>/<id>/<file> below img/, got {len(parts)} levels")
    gender, category, ident, fname = parts
    head, sep, tail = fname.partition("_")
    fname = head + sep + tail.replace("_", "")
    return "fashion" + gender + category + ident.replace("_", "") + fname


def _read_list(path: Path) -> list[str]:
    """Names of a ``train.lst``/``test.lst`` (one flat name per line; like the official script, only ``.jpg``)."""
    if not path.is_file():
        raise DataError(f"{path}: image list not found")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read image list ({exc.__class__.__name__})") from None
    names = [line.strip() for line in lines if line.strip()]
    bad = [n for n in names if "/" in n or "\\" in n]
    if bad:
        raise DataError(f"{path}: names must be flat file names (e.g. fashionWOMEN...jpg), got {bad[0]!r}")
    return [n for n in names if n.lower().endswith(".jpg")]


def convert_fashion_annotations(src_csv: str | os.PathLike, dst_csv: str | os.PathLike) -> dict[str, np.ndarray]:
    """256×256 DeepFashion annotations → the 256×176 crop (``tool/resize_fashion.py``: ``x' = x - 40``).

    Unlike the official script, joints falling outside the crop become missing (-1) instead of negative or
    ≥176 coordinates.
    """
    raw = K.read_annotations(src_csv, size=FASHION.raw_size)
    converted = {name: K.fashion_256_to_176(kp) for name, kp in raw.items()}
    K.write_annotations(dst_csv, converted)
    return converted


def _find_image_folder(src: Path, image_folder: str | os.PathLike | None) -> Path:
    """The In-shop image tree: ``image_folder`` if given, else ``img/`` or ``img_highres/`` in ``src``."""
    if image_folder is None:
        for candidate in FASHION_IMAGE_FOLDERS:
            if (src / candidate).is_dir():
                return src / candidate
        raise DataError(f"{src}: no img/ or img_highres/ folder (the In-shop image tree)")
    image_folder = Path(image_folder)
    if not image_folder.is_dir():
        raise DataError(f"{image_folder}: image folder not found")
    return image_folder


def _split_of_names(lists: Mapping[str, Path]) -> dict[str, str]:
    """Flat image name → its split, from the official ``train.lst``/``test.lst``; a name in both is an error."""
    wanted: dict[str, str] = {}
    for split in SPLITS:
        for name in _read_list(lists[split]):
            if wanted.setdefault(name, split) != split:
                raise DataError(f"{lists[split]}: {name} is listed in both train and test")
    return wanted


def _frame_fashion_images(image_folder: Path, out: Path, wanted: Mapping[str, str], size: tuple[int, int],
                          quality: int, overwrite: bool, report: PrepareReport) -> set[str]:
    """Walk the image tree in sorted order and write every listed image to ``out/<split>/<flat name>``
    (framed by :func:`fit_to_frame`, or copied when it already has the frame); returns the names found."""
    found: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(image_folder):
        dirnames.sort()
        for fname in sorted(filenames):
            if not fname.lower().endswith(IMAGE_SUFFIXES):
                continue
            path = Path(dirpath) / fname
            try:
                flat = flatten_fashion_name(path.relative_to(image_folder))
            except DataError:
                log.warning("%s: not at <gender>/<category>/<id>/<file> depth, ignored", path)
                continue
            split = wanted.get(flat)
            if split is None:
                report.unlisted += 1
                continue
            if flat in found:
                raise DataError(f"{path}: flattens to {flat}, already produced by another file")
            found.add(flat)
            target = out / split / flat
            if target.exists() and not overwrite:
                report.existing[split] += 1
                continue
            image = read_image(path)
            if image.shape[:2] == tuple(size) and path.suffix.lower() in (".jpg", ".jpeg"):
                _copy_file(path, target)
            else:
                save_image(target, fit_to_frame(image, size), quality=quality)
            report.written[split] += 1
    return found


def prepare_deepfashion(src: str | os.PathLike, out: str | os.PathLike, *,
                        image_folder: str | os.PathLike | None = None,
                        train_list: str | os.PathLike | None = None,
                        test_list: str | os.PathLike | None = None,
                        size: tuple[int, int] = FASHION.size,
                        annotations: Mapping[str, str | os.PathLike] | None = None,
                        raw_annotations: Mapping[str, str | os.PathLike] | None = None,
                        pairs: Mapping[str, str | os.PathLike] | None = None,
                        quality: int = 75, overwrite: bool = False) -> PrepareReport:
    """Build ``<out>/{train,test}`` (256×176 crops named by :func:`flatten_fashion_name`) from the In-shop tree.

    ``src`` holds ``img/`` (256×256) or ``img_highres/`` and ``train.lst``/``test.lst`` (the official lists,
    48,674 / 4,038 names). Every image is framed by :func:`fit_to_frame` and saved as JPEG with ``quality``
    75 (PIL's default, what the official script produced). Annotation/pairs CSVs found in ``src``
    (``fasion-resize-*``) or given per split are validated and installed; 256×256 annotation CSVs
    (``raw_annotations``) are converted. Existing output images are kept unless ``overwrite``.
    """
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise DataError(f"{src}: DeepFashion folder not found")
    image_folder = _find_image_folder(src, image_folder)
    lists = {"train": Path(train_list) if train_list else src / "train.lst",
             "test": Path(test_list) if test_list else src / "test.lst"}
    wanted = _split_of_names(lists)
    report = PrepareReport(kind="fashion", out=out, written={s: 0 for s in SPLITS},
                           existing={s: 0 for s in SPLITS})
    found = _frame_fashion_images(image_folder, out, wanted, size, quality, overwrite, report)
    for split in SPLITS:
        missing = [n for n, s in wanted.items() if s == split and n not in found]
        if missing:
            report.missing[split] = missing
            log.warning("%s: %d listed images not found below %s (first: %s)", lists[split], len(missing),
                        image_folder, missing[0])
    if not found:
        raise DataError(f"{image_folder}: none of the images named in {lists['train'].name}/"
                        f"{lists['test'].name} was found (check the folder and the lists)")
    _install_csvs(src, out, "fashion", size, report, annotations=annotations, pairs=pairs,
                  raw_annotations=raw_annotations)
    _write_dataset_json(out, "fashion", size, src, report,
                        missing={s: len(v) for s, v in report.missing.items()})
    log.info("%s", report.summary())
    return report


# --------------------------------------------------------------------------------------------------
# Market-1501
# --------------------------------------------------------------------------------------------------
MARKET_FOLDERS = {"train": "bounding_box_train", "test": "bounding_box_test"}


def prepare_market(src: str | os.PathLike, out: str | os.PathLike, *,
                   annotations: Mapping[str, str | os.PathLike] | None = None,
                   pairs: Mapping[str, str | os.PathLike] | None = None,
                   test_sample: int | None = 12000, seed: int = 0,
                   overwrite: bool = False) -> PrepareReport:
    """Copy ``bounding_box_train``→``train`` and ``bounding_box_test``→``test`` (PATN's Market layout).

    Every image must be 128×64 (a wrong size is a :class:`DataError` naming the file). Junk (``-1_*``) and
    distractor (``0000_*``) images are copied like the official layout does; only pairs exclude them.
    ``market-annotation-*.csv`` / ``market-pairs-*.csv`` found in ``src`` or given are validated and
    installed; missing pairs are built (test: ``test_sample`` seeded pairs, the official 12,000).
    """
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise DataError(f"{src}: Market-1501 folder not found")
    report = PrepareReport(kind="market", out=out, written={s: 0 for s in SPLITS},
                           existing={s: 0 for s in SPLITS})
    for split, folder in MARKET_FOLDERS.items():
        source_dir = src / folder
        if not source_dir.is_dir():
            raise DataError(f"{source_dir}: Market-1501 folder not found (expected {folder}/ in {src})")
        names = sorted(n for n in os.listdir(source_dir) if n.lower().endswith(".jpg"))
        if not names:
            raise DataError(f"{source_dir}: no .jpg images")
        for name in names:
            path = source_dir / name
            hw = _image_size(path)
            if hw != MARKET.size:
                raise DataError(f"{path}: image is {hw[0]}x{hw[1]} (HxW) but Market-1501 images are 128x64")
            target = out / split / name
            if target.exists() and not overwrite:
                report.existing[split] += 1
                continue
            _copy_file(path, target)
            report.written[split] += 1
    _install_csvs(src, out, "market", MARKET.size, report, annotations=annotations, pairs=pairs,
                  test_sample=test_sample, seed=seed)
    _write_dataset_json(out, "market", MARKET.size, src, report)
    log.info("%s", report.summary())
    return report
