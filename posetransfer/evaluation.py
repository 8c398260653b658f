"""``posetransfer eval``: score a folder of generated images against a PATN-layout dataset.

    results = evaluate("runs/patn/test_images", "data/market", protocol="patn", out="results.json")

Generated images are matched to test pairs by name (:mod:`posetransfer.metrics.matching`), metrics are
selected by a protocol (:mod:`posetransfer.metrics.protocols`) and computed in one streaming pass over the
images (batches; nothing holds the whole test set in memory; progress with an ETA). Only the networks the
chosen metrics need are loaded (:mod:`posetransfer.metrics.engines`). Everything a number depends on —
protocol, resolution, resize method, reference images, FID network and preprocessing, L1 / PSNR conventions,
weights of every network, batch dropping, cache use, missing/extra files — is written next to the numbers,
atomically. A metric whose pretrained network is unavailable offline is reported as ``null`` with the reason
under ``"unavailable"``; a random network is never used.

References: an official 5-panel ``_vis`` strip is scored against its own target panel (``reference="strip"``,
the default, as PATN's ``getMetrics_*.py`` does — the panel went through the same JPEG as the generated one);
single images, which carry no target, against the dataset's test image. ``reference="dataset"`` scores
everything against the dataset's test images.
"""
from __future__ import annotations

import logging
import math
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .data import keypoints as K
from .data.layout import detect_kind, find_split_files, read_dataset_json
from .errors import DataError
from .io import read_image, write_json
from .kinds import parse_kind
from .metrics.matching import STRIP_PANELS, GeneratedFile, Matching, load_generated, match_generated
from .metrics.protocols import FID_KINDS, GFLA_BATCH, IS_ORDERS, Protocol, get_protocol

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
EXAMPLES = 20  # names of missing/extra files listed in the results (all are counted)
REFERENCES = {
    "strip": "official _vis strips: their own target panel (PATN getMetrics_*.py); single images: the dataset's "
             "test image",
    "dataset": "the dataset's test images for every generated image",
}


def _resize_bicubic(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.BICUBIC))


def _finite(value: Any) -> Any:
    """JSON has no NaN/inf: non-finite floats become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _real_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"{folder}: FID real image folder not found")
    files = sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    if len(files) < 2:
        raise DataError(f"{folder}: FID needs at least 2 real images, found {len(files)}")
    return files


class Scorer:
    """The metrics of a protocol over uint8 H×W×3 images, batch by batch: the one scoring path, fed from
    files on disk by :func:`evaluate` and from memory by ``posetransfer demo``.

        scorer = Scorer("patn", "market", metrics=["ssim", "l1"])
        scorer.add([(key, generated, reference, target_keypoints), ...])   # keypoints: None without masks
        values, details = scorer.finish()

    ``protocol``: a name or a :class:`Protocol`; ``kind``: the dataset kind (its metric list and SSIM pad);
    ``keep`` / ``is_rank``: GFLA's dropped last batch and PATN's IS split order
    (:class:`posetransfer.metrics.accumulate.MetricRun`). Only the networks the metrics need are loaded.
    """

    def __init__(self, protocol: str | Protocol = "patn", kind: str = "market", metrics: list[str] | None = None,
                 *, files=None, device: str = "cpu", batch_size: int = 32, keep: dict | None = None,
                 is_rank: dict | None = None) -> None:
        from .metrics.accumulate import MetricRun
        from .metrics.engines import Engines, WeightFiles

        prot = protocol if isinstance(protocol, Protocol) else get_protocol(protocol, metrics)
        self.protocol = prot
        self.engines = Engines(set(prot.metrics_for(kind)), prot, files or WeightFiles(), device=device,
                               batch_size=batch_size)
        self.names = list(prot.metrics_for(kind)) + self.engines.added
        self.active = [m for m in self.names if m not in self.engines.unavailable]
        self.pad = prot.fashion_pad if kind == "fashion" else 0
        self.run = MetricRun(prot, self.active, self.engines, self.pad, keep, is_rank)

    def add(self, batch: list[tuple[Any, np.ndarray, np.ndarray, np.ndarray | None]]) -> None:
        self.run.add_batch(batch)

    def finish(self) -> tuple[dict[str, float | None], dict[str, Any]]:
        """``(values, details)`` of the per-image and set metrics (FID: see :func:`evaluate`)."""
        return self.run.finish()


def evaluate(generated_dir: str | os.PathLike, data_root: str | os.PathLike, protocol: str = "patn", *,
             metrics: list[str] | None = None, out: str | os.PathLike | None = None, label: str | None = None,
             resize: str | None = None, reference: str = "strip", strip_panels: int = STRIP_PANELS,
             fid_kind: str | None = None, inception_preprocess: str | None = None,
             fid_real_dir: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None,
             use_cache: bool = True, inception_weights: str | os.PathLike | None = None,
             imagenet_inception_weights: str | os.PathLike | None = None,
             lpips_weights: str | os.PathLike | None = None, detector_weights: str | os.PathLike | None = None,
             detector_arch: str | None = None, drop_last_batch: bool | None = None, is_order: str | None = None,
             batch_size: int = 32, device: str = "cpu", progress: bool = True, require_all: bool = False,
             limit: int | None = None) -> dict:
    """Evaluate ``generated_dir`` against the test split of ``data_root``; return (and write) the results.

    ``reference``: ``"strip"`` (default: strips against their own target panel, single images against the
    dataset) or ``"dataset"``. ``fid_kind`` / ``inception_preprocess`` / ``drop_last_batch`` / ``is_order``
    override the protocol's (``None`` keeps them). ``limit``: only the first N matched pairs.
    """
    from .metrics.engines import WeightFiles
    from .metrics.progress import StreamProgress

    started = time.perf_counter()
    prot = get_protocol(protocol, metrics, resize, inception_preprocess, fid_kind=fid_kind,
                        drop_last_batch=drop_last_batch, is_order=is_order)
    if reference not in REFERENCES:
        raise DataError(f"unknown reference {reference!r} (one of {', '.join(REFERENCES)})")
    if not Path(generated_dir).is_dir():
        raise DataError(f"{generated_dir}: generated image folder not found")
    root = Path(data_root)
    images_dir, annotation_csv, pairs_csv = find_split_files(root, "test")
    kind = detect_kind(root)
    meta = read_dataset_json(root)
    size = tuple(meta.get("size") or parse_kind(kind).size)
    annotations = K.read_annotations(annotation_csv)
    pairs = K.read_pairs(pairs_csv, known_names=annotations.keys())
    matching = match_generated(generated_dir, pairs)
    _check_matching(matching, Path(generated_dir), pairs_csv, require_all)
    items = matching.matched[:limit] if limit else matching.matched

    files = WeightFiles(inception_weights, imagenet_inception_weights, lpips_weights, detector_weights, detector_arch)
    keep = _kept_items(items) if prot.drop_last_batch else None
    is_rank = _listdir_rank(Path(generated_dir), items) if prot.is_order == "listdir" else None
    scorer = Scorer(prot, kind, files=files, device=device, batch_size=batch_size, keep=keep, is_rank=is_rank)
    engines, names, active, pad, run = scorer.engines, scorer.names, scorer.active, scorer.pad, scorer.run
    loader = _PairLoader(images_dir, annotations, prot.resize, prot.name, reference, strip_panels)
    bar = StreamProgress(len(items), "eval", enabled=progress)
    try:
        for start in range(0, len(items), batch_size):
            batch = [loader(item) for item in items[start:start + batch_size]]
            scorer.add(batch)
            bar.update(len(batch))
    finally:
        bar.close()
    resolutions = loader.resolutions

    values, details = scorer.finish()
    if "fid" in active:
        values["fid"], details["fid"] = _fid(run, engines, prot, root, fid_real_dir, resolutions, size,
                                             cache_dir, use_cache, batch_size, progress)

    results = _results_document(
        label=label, prot=prot, root=root, kind=kind, size=size, pairs=pairs, annotation_csv=annotation_csv,
        pairs_csv=pairs_csv, generated_dir=generated_dir, matching=matching, items=items, loader=loader,
        strip_panels=strip_panels, reference=reference, values=values, details=details, engines=engines,
        names=names, pad=pad, batch_size=batch_size, device=device, limit=limit,
        elapsed=time.perf_counter() - started)
    if out is not None:
        write_json(out, results)
    return results


def _results_document(*, label, prot, root: Path, kind: str, size, pairs, annotation_csv, pairs_csv, generated_dir,
                      matching, items, loader, strip_panels: int, reference: str, values: dict, details: dict,
                      engines, names, pad, batch_size: int, device: str, limit: int | None,
                      elapsed: float) -> dict:
    """The results JSON of :func:`evaluate`: metrics plus everything needed to tell how they were computed."""
    resolutions, resized = loader.resolutions, loader.resized
    return {
        "posetransfer_eval": 1,
        "label": label,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "protocol": prot.as_dict(),
        "dataset": {"root": str(root), "kind": kind,
                    "resolution": list(sorted(resolutions)[0] if resolutions else size),
                    "ground_truth_sizes": [list(r) for r in sorted(resolutions)], "dataset_size": list(size),
                    "test_pairs": len(pairs), "annotation": str(annotation_csv), "pairs": str(pairs_csv)},
        "generated": {
            "dir": str(Path(generated_dir)), **matching.counts(), "evaluated": len(items),
            "missing_examples": [f"{a}___{b}" for a, b in matching.missing[:EXAMPLES]],
            "extra_examples": matching.extra[:EXAMPLES], "strip_panels": strip_panels,
            "resize_policy": prot.resize, "resized": resized,
            "resize_method": "PIL bicubic to the ground-truth size" if prot.resize == "bicubic" else None,
            "reference": reference, "reference_description": REFERENCES[reference],
            "reference_counts": dict(loader.reference_counts),
        },
        "metrics": {m: _finite(values.get(m)) for m in names},
        "details": details,
        "settings": _settings(prot, engines, names, pad, batch_size, device, limit),
        "weights": engines.weights,
        "unavailable": {m: r for m, r in engines.unavailable.items() if m in names},
        "versions": _versions(),
        "timing": {"seconds": round(elapsed, 2),
                   "images_per_second": round(len(items) / elapsed, 2) if elapsed else None},
    }


def _kept_items(items: list[GeneratedFile]) -> dict[str, set]:
    """The generated files GFLA's script would feed to FID and to LPIPS (last partial batch of 64 dropped)."""
    from .metrics.ordering import gfla_fid_kept, gfla_lpips_kept

    paths = [item.path for item in items]
    return {"fid": set(gfla_fid_kept(paths)), "lpips": set(gfla_lpips_kept(paths))}


def _listdir_rank(folder: Path, items: list[GeneratedFile]) -> dict[Path, int]:
    """Each generated file's position in ``os.listdir(folder)`` (PATN's IS split order)."""
    from .metrics.ordering import listdir_positions

    positions = listdir_positions(folder)
    return {item.path: positions.get(item.path.name, len(positions)) for item in items}


def _fid(run, engines, prot: Protocol, root: Path, fid_real_dir, resolutions, size, cache_dir, use_cache,
         batch_size: int, progress: bool) -> tuple[float, dict]:
    """FID of the accumulated generated features against the real set's (cached) statistics."""
    from .metrics.fid import fid_from_stats, real_set_statistics
    from .metrics.ordering import gfla_fid_kept
    from .metrics.progress import StreamProgress

    fid_started = time.perf_counter()
    real_dir = Path(fid_real_dir) if fid_real_dir else root / "train"
    eval_size = next(iter(resolutions)) if len(resolutions) == 1 else size
    real_files = _real_files(real_dir)
    used = gfla_fid_kept(real_files) if prot.drop_last_batch else real_files
    real = real_set_statistics(used, engines.fid, eval_size, cache_dir=cache_dir, use_cache=use_cache,
                               batch_size=batch_size,
                               progress=(lambda **kw: StreamProgress(enabled=True, **kw)) if progress else None)
    value = fid_from_stats((real.mu, real.sigma), run.fid_stats)
    detail = {**engines.fid.describe(), "real_dir": str(real_dir), "real_images": real.n,
              "real_dropped": len(real_files) - len(used), "real_resized": real.resized,
              "generated_images": run.fid_stats.n, "generated_dropped": run.fid_seen - run.fid_stats.n,
              "cache": real.cache, "cache_file": real.cache_file,
              "real_stats_seconds": round(time.perf_counter() - fid_started, 2)}
    return value, detail


def _settings(prot: Protocol, engines, names: list[str], pad: int, batch_size: int, device: str,
              limit: int | None) -> dict:
    """How every metric was computed (conventions, networks, preprocessing), next to the numbers."""
    from .metrics import pixel

    settings: dict[str, Any] = {
        "ssim": "skimage structural_similarity, gaussian sigma 1.5, population covariance, "
                "data_range = generated max-min, uint8 RGB",
        "ssim_white_pad": pad, "ssim_win51": "uniform window 51, data_range 1, [0,1] floats",
        "mask": "PATN produce_ma_mask of the target keypoints (radius 4, 5x5 closing); SSIM/IS/PSNR: "
                "uint8 x mask (black background); LPIPS: [-1,1] x mask (grey background, GFLA)",
        "l1_range": prot.l1_range, "l1": pixel.L1_RANGES[prot.l1_range],
        "psnr_kind": prot.psnr_kind, "psnr": pixel.PSNR_KINDS[prot.psnr_kind],
        "drop_last_batch": prot.drop_last_batch,
        "drop_last_batch_description": (f"GFLA: FID and LPIPS only on whole batches of {GFLA_BATCH} (FID in "
                                        f"glob *.jpg+*.png order, LPIPS in sorted name order)"
                                        if prot.drop_last_batch else "every image is used"),
        "is_splits": prot.is_splits, "is_order": prot.is_order, "is_order_description": IS_ORDERS[prot.is_order],
        "pckh_alpha": prot.pckh_alpha, "pose_visibility": prot.pose_visibility,
        "batch_size": batch_size, "device": device, "limit": limit,
    }
    if "fid" in names:
        described = engines.fid.describe() if engines.fid is not None else {"kind": prot.fid_kind, "network": None}
        settings["fid"] = {**described, "kind_description": FID_KINDS[prot.fid_kind]}
    uses_tf_inception = bool({"is", "mask_is"} & set(names)) or (prot.fid_kind == "tf" and "fid" in names)
    if uses_tf_inception:
        from .weights.inception import PREPROCESS_DESCRIPTION

        settings["inception_preprocess"] = prot.inception_preprocess
        settings["inception_preprocess_description"] = PREPROCESS_DESCRIPTION[prot.inception_preprocess]
    return settings


def _check_matching(matching: Matching, generated_dir: Path, pairs_csv: Path, require_all: bool) -> None:
    if not matching.matched:
        hint = f" (found e.g. {matching.extra[0]!r})" if matching.extra else " (the folder is empty)"
        raise DataError(
            f"{generated_dir}: no generated image matches a test pair of {pairs_csv.name}; expected names like "
            f"'<from>___<to>.png' or '<from>___<to>_vis.jpg'{hint}"
        )
    if matching.missing:
        a, b = matching.missing[0]
        message = (f"{generated_dir}: {len(matching.missing)} of {len(matching.missing) + len(matching.matched)} "
                   f"test pairs have no generated image (first: {a}___{b})")
        if require_all:
            raise DataError(message)
        log.warning("%s; evaluating the %d present", message, len(matching.matched))
    if matching.extra:
        log.warning("%s: %d files are not test pairs and were ignored (first: %s)", generated_dir,
                    len(matching.extra), matching.extra[0])


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for package in ("posetransfer", "torch", "torchvision", "scikit-image", "mediapipe", "lpips"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            continue
    return out


class _PairLoader:
    """Reads one matched file and its reference, cutting strips and applying the resize policy."""

    def __init__(self, images_dir: Path, annotations: dict, resize: str, protocol_name: str, reference: str,
                 panels: int) -> None:
        self.images_dir = images_dir
        self.annotations = annotations
        self.resize = resize
        self.protocol_name = protocol_name
        self.reference = reference
        self.panels = panels
        self.resolutions: set[tuple[int, int]] = set()
        self.resized = 0
        self.reference_counts = {"strip_target_panel": 0, "dataset_test_image": 0}

    def __call__(self, item: GeneratedFile) -> tuple[Path, np.ndarray, np.ndarray, np.ndarray]:
        gen, panel = load_generated(item, self.panels)
        if panel is not None and self.reference == "strip":
            ref = panel
            self.reference_counts["strip_target_panel"] += 1
        else:
            ref = read_image(self.images_dir / item.target)
            self.reference_counts["dataset_test_image"] += 1
        if gen.shape[:2] != ref.shape[:2]:
            if self.resize == "reject":
                raise DataError(
                    f"{item.path}: generated image is {gen.shape[0]}x{gen.shape[1]} but the ground truth is "
                    f"{ref.shape[0]}x{ref.shape[1]}; protocol {self.protocol_name} does not resize "
                    f"(use --resize bicubic)"
                )
            gen = _resize_bicubic(gen, ref.shape[:2])
            self.resized += 1
        self.resolutions.add(ref.shape[:2])
        return item.path, gen, ref, self.annotations[item.target]
