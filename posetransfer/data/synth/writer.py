"""Datasets on disk: which images a seed makes, their PATN-layout names, and the folder written atomically.

Why: every image depends only on ``(seed, identity, pose)`` (see :mod:`.sampling`), so identities can be
rendered in any order, by any number of worker processes, and still give byte-identical files; the dataset
is written into a temporary folder next to the output and renamed into place at the end, so an interrupted
run never leaves a half dataset that looks complete. The JPEG files are written by a
:class:`~posetransfer.io.BackgroundWriter` thread, so creating them overlaps the next render.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Iterator

import numpy as np

from ...errors import DataError, OutputError
from ...io import BackgroundWriter, os_error_reason, write_json
from .. import keypoints as K
from .appearance import Identity, sample_identity
from ...kinds import KINDS, parse_kind
from .kinds import check_kind
from .person import render_rig
from .rig import VIEW_PROBS, VIEWS, sample_pose
from .sampling import STREAM_IDENTITY, STREAM_PLAN, STREAM_POSE, STREAM_SCENE, Draws
from .scene import Scene, sample_scene

log = logging.getLogger(__name__)

GENERATOR_TAG = "posetransfer.synth"
FORMAT_VERSION = 1
JPEG_QUALITY = 95
#: Market-1501 ids have 4 digits (0000 is the distractor id), DeepFashion item ids 8.
MAX_IDENTITIES = {"market": 9999, "fashion": 99_999_999}


# --------------------------------------------------------------------------------------------------
# What a seed makes: people, names, scenes, images
# --------------------------------------------------------------------------------------------------
_FASHION_VIEW_WORDS = {"front": "front", "back": "back", "side": "side", "three_quarter": "additional"}


def _fashion_category(ident: Identity) -> str:
    """The DeepFashion In-shop category the person's clothes would be filed under (part of the file name)."""
    if ident.bottom_kind == "dress":
        return "Dresses"
    if ident.top_kind == "jacket":
        return "Jackets_Coats" if ident.gender == "WOMEN" else "Jackets_Vests"
    if ident.bottom_kind == "skirt":
        return "Skirts"
    if ident.bottom_kind == "shorts":
        return "Shorts"
    if ident.top_kind in ("tshirt", "tank"):
        return "Tees_Tanks"
    if ident.top_kind == "shirt":
        return "Blouses_Shirts" if ident.gender == "WOMEN" else "Shirts_Polos"
    return "Sweaters" if ident.gender == "MEN" else "Cardigans"


def make_identity(seed: int, kind: str, identity: int) -> Identity:
    """Identity number ``identity`` (0-based) of the dataset made with ``seed``."""
    return sample_identity(np.random.default_rng([seed, STREAM_IDENTITY, identity]), kind, index=identity)


def plan_identity(seed: int, kind: str, identity: int, poses: int) -> tuple[Identity, list[tuple[str, str, int]]]:
    """The person and the (file name, view, camera) of each of its ``poses`` images.

    Market names ``0007_c3s1_000123_01.jpg`` (person id, camera, sequence, frame, detection); DeepFashion
    names ``fashionWOMENTees_Tanksid0000000702_1front.jpg`` (gender, category, item id + outfit, index and
    view). Only the identity's own generators are used, so planning is cheap and order independent.
    """
    kind = check_kind(kind)
    ident = make_identity(seed, kind, identity)
    d = Draws(np.random.default_rng([seed, STREAM_PLAN, identity]))
    views = [d.choice(VIEWS, VIEW_PROBS) for _ in range(poses)]
    names: list[tuple[str, str, int]] = []
    if kind == "market":
        seqs = {c: d.integers(1, 7) for c in ident.cameras}
        frames = sorted(d.rng.choice(999_999, size=poses, replace=False) + 1)
        for k in range(poses):
            cam = ident.cameras[d.integers(0, len(ident.cameras))]
            names.append((f"{identity + 1:04d}_c{cam}s{seqs[cam]}_{int(frames[k]):06d}_01.jpg", views[k], cam))
    else:
        stem = f"fashion{ident.gender}{_fashion_category(ident)}id{identity + 1:08d}{ident.outfit:02d}"
        names = [(f"{stem}_{k + 1}{_FASHION_VIEW_WORDS[views[k]]}.jpg", views[k], 0) for k in range(poses)]
    return ident, names


def render_dataset_image(seed: int, kind: str, identity: int, pose_index: int, view: str, camera: int,
                         ident: Identity | None = None, scene: Scene | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Image ``pose_index`` of ``identity``: depends only on these numbers (not on order or workers)."""
    if ident is None:
        ident = make_identity(seed, kind, identity)
    if scene is None:
        scene = make_scene(seed, kind, identity, camera)
    pose = sample_pose(Draws(np.random.default_rng([seed, STREAM_POSE, identity, pose_index])), kind, view=view)
    return render_rig(ident, pose, parse_kind(kind).size, scene=scene)


def make_scene(seed: int, kind: str, identity: int, camera: int) -> Scene:
    """The background of ``identity`` seen by ``camera`` (market: each person has 2–4 cameras)."""
    return sample_scene(np.random.default_rng([seed, STREAM_SCENE, identity, camera]), kind)


def render_identity(seed: int, kind: str, identity: int, poses: int
                    ) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(file name, uint8 image, keypoints) of each of the ``poses`` images of ``identity``, in pose order.

    The render loop of the dataset writer (each camera's scene is made once and serves all its images);
    a generator, so that whoever consumes it decides what happens between two images: the writer encodes
    and hands the file to its writer thread, benchmarks/bench_synth.py times it.
    """
    ident, plan = plan_identity(seed, kind, identity, poses)
    scenes: dict[int, Scene] = {}
    for k, (name, view, camera) in enumerate(plan):
        if camera not in scenes:
            scenes[camera] = make_scene(seed, kind, identity, camera)
        image, kp = render_dataset_image(seed, kind, identity, k, view, camera, ident=ident, scene=scenes[camera])
        yield name, image, kp


def encode_jpeg(image: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """JPEG bytes of a uint8 H×W×3 RGB image (what the dataset files contain).

    OpenCV's encoder (libjpeg-turbo, like Pillow's, same default 4:2:0 subsampling) rather than Pillow's:
    most of Pillow's cost on an image this small is its per-call set-up, a noticeable part of the
    generator's per-image cost (benchmarks/results/synth_renderer_notes.md).
    """
    import cv2

    ok, data = cv2.imencode(".jpg", cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - OpenCV fails only on invalid arrays, which the renderer never makes
        raise DataError(f"JPEG encoding failed for an image of shape {image.shape}")
    return data.tobytes()


# --------------------------------------------------------------------------------------------------
# The dataset folder
# --------------------------------------------------------------------------------------------------
def write_identity(job: tuple, writer: BackgroundWriter | None = None) -> list[tuple[str, np.ndarray]]:
    """Render and write every image of one identity; returns (name, keypoints) in pose order.

    ``job``: (seed, kind, identity, poses, folder, JPEG quality), one picklable tuple for the worker pool.
    Files go through ``writer`` (the caller's, which may still be writing when this returns) or, in a
    worker process, through one of its own that has finished when this returns.
    """
    if writer is None:
        with BackgroundWriter() as own:
            return write_identity(job, own)
    seed, kind, identity, poses, folder, quality = job
    out = []
    for name, image, kp in render_identity(seed, kind, identity, poses):
        writer.write(os.path.join(folder, name), encode_jpeg(image, quality))
        out.append((name, kp))
    return out


def _synth_entries() -> set[str]:
    """The names a synthetic dataset folder may hold (either kind's CSV prefix)."""
    names = {"train", "test", "dataset.json"}
    for prefix in (k.prefix for k in KINDS):
        names |= {f"{prefix}-{what}-{split}.csv" for what in ("annotation", "pairs") for split in ("train", "test")}
    return names


def is_synth_dataset(folder: str | os.PathLike) -> bool:
    """True for a folder written by :func:`generate_dataset` (its dataset.json says so) holding nothing else."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not (isinstance(meta, dict) and meta.get("synthetic") is True and meta.get("generator") == GENERATOR_TAG):
        return False
    allowed = _synth_entries()
    return all(p.name in allowed or p.name.endswith(".tmp") for p in folder.iterdir())


def _check_destination(out: Path, overwrite: bool) -> str:
    """'new' | 'empty' | 'replace'; a non-empty folder that is not a synthetic dataset needs ``overwrite``."""
    if not out.exists() and not out.is_symlink():
        return "new"
    if out.is_symlink() or not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder; choose another output folder")
    if not any(out.iterdir()):
        return "empty"
    if is_synth_dataset(out):
        return "replace"
    if not overwrite:
        raise DataError(f"{out}: folder is not empty and is not a synthetic dataset (use --overwrite to replace it)")
    resolved, cwd = out.resolve(), Path.cwd().resolve()
    if resolved == Path(resolved.anchor) or resolved == Path.home().resolve() or resolved in (cwd, *cwd.parents):
        raise DataError(f"{out}: refusing to replace the root, home or current folder (or a folder containing it)")
    return "replace"


def _check_int(value, name: str, minimum: int) -> int:
    """``value`` as an int of at least ``minimum`` (an integral float or string is accepted), else a DataError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        try:
            as_int = int(value)
            if float(value) != as_int:
                raise ValueError
        except (TypeError, ValueError, OverflowError):
            raise DataError(f"{name} must be an integer, got {value!r}") from None
        value = as_int
    if value < minimum:
        raise DataError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def generate_dataset(out: str | os.PathLike, size: str = "market", identities: int = 20, poses: int = 8,
                     test_identities: int | None = None, seed: int = 0, workers: int = 1, *,
                     overwrite: bool = False, test_pairs: int | None = None,
                     quality: int = JPEG_QUALITY) -> Path:
    """Write a synthetic PATN-layout dataset to ``out`` and return its path.

    ``identities`` people × ``poses`` images each. The last ``test_identities`` people (default 20%, at
    least 1) form the test split, the others the train split, so the splits share no identity. Pairs are
    all ordered pairs of two images of one person (``layout.build_pairs``); ``test_pairs`` keeps a seeded
    sample of the test pairs. The same ``seed`` gives byte-identical files whatever ``workers`` is.
    ``out`` must be new, empty or an earlier synthetic dataset (replaced) unless ``overwrite``.
    """
    from ..layout import build_pairs

    kind = check_kind(size)
    identities = _check_int(identities, "identities", 2)
    poses = _check_int(poses, "poses", 2)
    seed = _check_int(seed, "seed", 0)
    workers = _check_int(workers, "workers", 1)
    quality = _check_int(quality, "quality", 1)
    if quality > 100:
        raise DataError(f"quality must be between 1 and 100, got {quality}")
    if identities > MAX_IDENTITIES[kind]:
        raise DataError(f"identities must be at most {MAX_IDENTITIES[kind]} for {kind} names, got {identities}")
    if test_identities is None:
        test_identities = min(identities - 1, max(1, round(0.2 * identities)))
    test_identities = _check_int(test_identities, "test identities", 1)
    if test_identities >= identities:
        raise DataError(f"test identities must be fewer than identities ({identities}), got {test_identities}")
    if test_pairs is not None:
        test_pairs = _check_int(test_pairs, "test pairs", 1)

    out = Path(out)
    state = _check_destination(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.synth-{uuid.uuid4().hex[:8]}.tmp"
    n_train = identities - test_identities
    split_of = ["train" if i < n_train else "test" for i in range(identities)]
    annotations: dict[str, dict[str, np.ndarray]] = {"train": {}, "test": {}}
    pair_counts: dict[str, int] = {}
    try:
        for split in ("train", "test"):
            (tmp / split).mkdir(parents=True)
        jobs = [(seed, kind, i, poses, str(tmp / split_of[i]), quality) for i in range(identities)]
        with contextlib.closing(_run_jobs(jobs, workers)) as results:   # no file written after the clean-up
            for i, rows in enumerate(results):
                annotations[split_of[i]].update(rows)
        prefix = parse_kind(kind).prefix
        for split in ("train", "test"):
            ann = annotations[split]
            K.write_annotations(tmp / f"{prefix}-annotation-{split}.csv", ann)
            pairs = build_pairs(ann, kind, test_sample=test_pairs if split == "test" else None, seed=seed)
            if not pairs:
                raise DataError(f"{out}: no {split} pairs (no person has two images with both hips and shoulders)")
            K.write_pairs(tmp / f"{prefix}-pairs-{split}.csv", pairs)
            pair_counts[split] = len(pairs)
        h, w = parse_kind(kind).size
        write_json(tmp / "dataset.json", {
            "kind": kind, "size": [h, w], "synthetic": True, "generator": GENERATOR_TAG,
            "format_version": FORMAT_VERSION, "seed": seed, "identities": identities, "poses": poses,
            "train_identities": n_train, "test_identities": test_identities,
            "images": {s: len(annotations[s]) for s in ("train", "test")}, "pairs": pair_counts,
            "test_pairs": test_pairs, "jpeg_quality": quality,
        })
        _install(tmp, out, state)
    except OSError as exc:   # read-only folder, disk full: name the dataset, not the temporary folder
        raise OutputError(f"{out}: cannot write the dataset ({os_error_reason(exc)})") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.debug("%s: %d + %d images, %d + %d pairs (train + test)", out, len(annotations["train"]),
             len(annotations["test"]), pair_counts["train"], pair_counts["test"])
    return out


def _run_jobs(jobs: list[tuple], workers: int):
    """Yield each job's result in job order, in this process or in ``workers`` spawned processes."""
    if workers <= 1 or len(jobs) <= 1:
        with BackgroundWriter() as writer:   # every file is written when the last result has been taken
            for job in jobs:
                yield write_identity(job, writer)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("spawn")  # no fork of a process that may hold torch threads
    pool = ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx)
    try:
        yield from pool.map(write_identity, jobs, chunksize=max(1, len(jobs) // (8 * workers)))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _install(tmp: Path, out: Path, state: str) -> None:
    """Move the finished dataset into place: one rename, or two with the old folder set aside first."""
    if state == "new":
        os.rename(tmp, out)
    elif state == "empty":
        out.rmdir()
        os.rename(tmp, out)
    else:
        old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}.tmp"
        os.rename(out, old)
        os.rename(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
