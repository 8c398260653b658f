"""``posetransfer reid-augment``: person re-ID training sets augmented with generated images.

The papers' protocol (PATN/APATN TPAMI §5, Table 6; PoNA Table VI):

* ``replace`` (M_p^A): keep a random portion ``p`` of the training images, at least one per identity
  (the reduced set M_p^R); replace every dropped image by a generated one that transfers a random image
  of the same identity *from M_p^R* to the dropped image's pose. The result has the same identities,
  the same number of images per identity and the same poses as the full set.
* ``x2`` / ``x3``: every real image of M_p^R (p = 1 by default: the whole set) plus 1 or 2 generated
  images of it in target poses drawn at random from the whole training set.

Output: a Market-1501 style folder ``<out>/bounding_box_train/`` that re-ID frameworks read
(open-reid, torchreid, layumi's baseline) plus ``<out>/manifest.csv``. Naming: real images keep their
names; a generated image is ``<stem>_gen.jpg`` (replace: the stem of the image it replaces, whose pose it
has) or ``<stem>_gen1.jpg`` / ``_gen2.jpg`` (x2/x3: the stem of the real image it was made from). The
identity and camera prefix ``0002_c1s1_`` stays in front, so the frameworks' parsers (regex
``([-\\d]+)_c(\\d)`` or ``name.split('_')[0]``) read the right person id and a valid camera id (1–6;
open-reid and torchreid assert that range, which rules out marking generated images with a fake ``c9``).
"""
from __future__ import annotations

import csv
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ..data import keypoints as K
from ..errors import ConfigError, DataError
from ..io import atomic_path, atomic_write_text, read_image, save_image, write_json
from ..inference import InferenceModel

log = logging.getLogger(__name__)

Mode = Literal["replace", "x2", "x3"]
MANIFEST_FIELDS = ("name", "kind", "identity", "source", "target_pose")
TRAIN_FOLDER = "bounding_box_train"


@dataclass(frozen=True)
class Job:
    """One generated image: appearance from ``source``, pose of ``target``, written as ``name``."""

    name: str
    source: str
    target: str


def select_reduced(names: list[str], identities: dict[str, str], portion: float, seed: int) -> list[str]:
    """M_p^R: ``round(p·N)`` images chosen at random, but at least one of every identity.

    One image per identity is drawn first, then the remaining quota uniformly from the rest; the result
    keeps the input order. Deterministic for a given ``seed``.
    """
    if not 0 < portion <= 1:
        raise ConfigError(f"--portion must be in (0, 1], got {portion}")
    rng = np.random.default_rng(seed)
    by_identity: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        by_identity.setdefault(identities[name], []).append(i)
    chosen = {int(rng.choice(members)) for _, members in sorted(by_identity.items())}
    quota = max(len(chosen), int(round(portion * len(names))))
    rest = np.array(sorted(set(range(len(names))) - chosen), dtype=np.int64)
    extra = rng.permutation(rest)[:quota - len(chosen)] if len(rest) else rest
    chosen.update(int(i) for i in extra)
    return [names[i] for i in sorted(chosen)]


def generated_name(stem_of: str, tag: str) -> str:
    return f"{Path(stem_of).stem}_{tag}.jpg"


def plan_jobs(names: list[str], identities: dict[str, str], usable_pose: set[str], mode: Mode, portion: float,
              seed: int) -> tuple[list[str], list[Job]]:
    """(real images kept, images to generate) for ``mode``; all random draws come from ``seed``."""
    reduced = select_reduced(names, identities, portion, seed)
    rng = np.random.default_rng([seed, 1])
    jobs: list[Job] = []
    if mode == "replace":
        kept = set(reduced)
        pool: dict[str, list[str]] = {}
        for name in reduced:
            if name in usable_pose:
                pool.setdefault(identities[name], []).append(name)
        for name in names:
            if name in kept:
                continue
            candidates = pool.get(identities[name], [])
            if not candidates or name not in usable_pose:
                # no posed same-identity source, or no pose to transfer to: keep the real image instead
                reduced.append(name)
                continue
            jobs.append(Job(generated_name(name, "gen"), str(candidates[int(rng.integers(len(candidates)))]), name))
        reduced.sort(key=names.index)
    elif mode in ("x2", "x3"):
        per_image = 1 if mode == "x2" else 2
        targets = sorted(usable_pose)
        if not targets:
            raise DataError("no training image has enough keypoints to serve as a target pose")
        for name in reduced:
            if name not in usable_pose:
                continue
            for k in range(1, per_image + 1):
                jobs.append(Job(generated_name(name, f"gen{k}"), name, targets[int(rng.integers(len(targets)))]))
    else:
        raise ConfigError(f"unknown mode {mode!r} (replace, x2 or x3)")
    return reduced, jobs


def _write_manifest(path: Path, rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=MANIFEST_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def _copy_real(src: Path, dst: Path) -> None:
    with atomic_path(dst) as tmp:
        tmp.write_bytes(src.read_bytes())


def reid_augment(model: InferenceModel, data_root: str | os.PathLike, out: str | os.PathLike, *, portion: float = 1.0,
                 mode: Mode = "replace", seed: int = 0, batch_size: int = 16, min_joints: int = 4,
                 overwrite: bool = False, progress: bool = True) -> dict:
    """Build the augmented re-ID training folder; returns the counts (also in ``<out>/reid_augment.json``)."""
    from tqdm import tqdm

    from ..data.layout import detect_kind, find_split_files, identity_of, MARKET_JUNK_PREFIXES

    if mode == "replace" and portion >= 1:
        log.warning("--mode replace with --portion 1: nothing is dropped, nothing is generated")
    root = Path(data_root)
    kind = detect_kind(root)
    images_dir, annotation_csv, _ = find_split_files(root, "train")
    annotations = K.read_annotations(annotation_csv)
    on_disk = {p.name for p in images_dir.iterdir() if p.is_file()}
    names = [n for n in annotations if n in on_disk and not n.startswith(MARKET_JUNK_PREFIXES)]
    skipped = len(annotations) - len(names)
    if skipped:
        log.warning("%s: %d annotated images are missing on disk or junk/distractors; left out", annotation_csv, skipped)
    if not names:
        raise DataError(f"{annotation_csv}: no usable training image")
    identities = {n: identity_of(n, kind) for n in names}
    usable = {n for n in names if int((~K.missing_mask(annotations[n])).sum()) >= min_joints}
    kept, jobs = plan_jobs(names, identities, usable, mode, portion, seed)

    out = Path(out)
    folder = out / TRAIN_FOLDER
    if folder.is_dir() and any(folder.iterdir()):
        if not overwrite:
            raise ConfigError(f"{folder}: folder is not empty (use --overwrite to replace its images)")
        for stale in folder.iterdir():
            if stale.is_file():
                stale.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in tqdm(kept, desc="copy real", unit="img", disable=not progress or len(kept) < 50):
        _copy_real(images_dir / name, folder / name)
        rows.append({"name": name, "kind": "real", "identity": identities[name], "source": name, "target_pose": name})
    cache: dict[str, np.ndarray] = {}

    def load(name: str) -> np.ndarray:
        if name not in cache:
            image = read_image(images_dir / name)
            model.check_frame(image.shape[:2], str(images_dir / name))
            cache[name] = image
        return cache[name]

    for start in tqdm(range(0, len(jobs), batch_size), desc="generate", unit="batch", disable=not progress):
        chunk = jobs[start:start + batch_size]
        results = model.generate_batch([load(j.source) for j in chunk], [annotations[j.source] for j in chunk],
                                       [annotations[j.target] for j in chunk])
        for job, image in zip(chunk, results):
            save_image(folder / job.name, image)
            rows.append({"name": job.name, "kind": "generated", "identity": identities[job.source],
                         "source": job.source, "target_pose": job.target})
        if len(cache) > 4096:
            cache.clear()
    _write_manifest(out / "manifest.csv", rows)
    summary = {"data": str(root), "checkpoint": model.name, "mode": mode, "portion": portion, "seed": seed,
               "real": len(kept), "generated": len(jobs), "identities": len(set(identities.values())),
               "full_set": len(names), "folder": str(folder)}
    write_json(out / "reid_augment.json", summary)
    return summary


def link_evaluation_sets(market_root: str | os.PathLike, out: str | os.PathLike) -> list[Path]:
    """Symlink ``query`` and ``bounding_box_test`` of an original Market-1501 folder into ``out``."""
    market_root, out = Path(market_root), Path(out)
    linked = []
    for sub in ("query", "bounding_box_test"):
        src = market_root / sub
        if not src.is_dir():
            raise DataError(f"{src}: folder not found (expected an original Market-1501 root)")
        dst = out / sub
        if dst.is_symlink() or dst.exists():
            continue
        dst.symlink_to(src.resolve(), target_is_directory=True)
        linked.append(dst)
    return linked
