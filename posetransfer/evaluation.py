"""``posetransfer eval``: score a folder of generated images against a PATN-layout dataset.

    results = evaluate("runs/patn/test_images", "data/market", protocol="patn", out="results.json")

Generated images are matched to test pairs by name (:mod:`posetransfer.metrics.matching`), metrics are
selected by a protocol (:mod:`posetransfer.metrics.protocols`) and computed in one streaming pass over the
images (batches; nothing holds the whole test set in memory). Everything a number depends on — protocol,
resolution, resize method, reference images, weights of every network, cache use, missing/extra files — is
written next to the numbers, atomically. A metric whose pretrained network is unavailable offline is reported
as ``null`` with the reason under ``"unavailable"``; a random network is never used.
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
from .data.prepare import default_size, detect_kind, find_split_files, read_dataset_json
from .errors import DataError, PoseError, WeightsUnavailable
from .io import read_image, write_json
from .metrics import pixel, ssim as ssim_mod
from .metrics.matching import STRIP_PANELS, GeneratedFile, Matching, load_generated, match_generated
from .metrics.protocols import MASK_METRICS, Protocol, get_protocol

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
EXAMPLES = 20  # names of missing/extra files listed in the results (all are counted)
INCEPTION_METRICS = frozenset({"fid", "is", "mask_is"})


def _resize_bicubic(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.BICUBIC))


def _finite(value: Any) -> Any:
    """JSON has no NaN/inf: non-finite floats become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class _Engines:
    """The pretrained networks a run needs, each built once; unavailable ones carry the reason."""

    def __init__(self, wanted: set[str], protocol: Protocol, *, inception_weights, lpips_weights,
                 detector_weights, detector_arch, device, batch_size) -> None:
        self.unavailable: dict[str, str] = {}
        self.weights: dict[str, dict] = {}
        self.inception = self.lpips = self.detector = None
        self.pose_ok = False
        if wanted & INCEPTION_METRICS:
            from .weights.inception import InceptionExtractor

            try:
                self.inception = InceptionExtractor(inception_weights, protocol.inception_preprocess, device,
                                                    batch_size)
            except WeightsUnavailable as exc:
                if inception_weights is not None:
                    raise  # a file the user named must work; only the automatic lookup may come up empty
                for m in wanted & INCEPTION_METRICS:
                    self.unavailable[m] = str(exc)
            else:
                for m in wanted & INCEPTION_METRICS:
                    self.weights[m] = self.inception.source.as_dict()
                if not self.inception.has_logits:
                    from .weights.inception import PYTORCH_FID_FILE
                    from .weights import hub_checkpoint_dir

                    name = Path(self.inception.source.location).name
                    reason = (f"IS needs the Inception classifier (logits), which {name} does not contain; pass "
                              f"--inception-weights {PYTORCH_FID_FILE} or put that file in {hub_checkpoint_dir()}")
                    for m in wanted & {"is", "mask_is"}:
                        self.unavailable[m] = reason
                        self.weights.pop(m, None)
        if wanted & {"lpips", "mask_lpips"}:
            from .metrics.lpips import LPIPSMetric

            try:
                self.lpips = LPIPSMetric(lpips_weights, device)
            except WeightsUnavailable as exc:
                if lpips_weights is not None:
                    raise
                for m in wanted & {"lpips", "mask_lpips"}:
                    self.unavailable[m] = str(exc)
            else:
                for m in wanted & {"lpips", "mask_lpips"}:
                    self.weights[m] = self.lpips.source.as_dict()
        if "ds" in wanted:
            from .metrics.detection import DetectionScore

            try:
                self.detector = DetectionScore(detector_weights, detector_arch, device)
            except WeightsUnavailable as exc:
                if detector_weights is not None:
                    raise
                self.unavailable["ds"] = str(exc)
            else:
                self.weights["ds"] = self.detector.source.as_dict()
        if "pckh" in wanted:
            try:
                import mediapipe  # noqa: F401
            except ImportError as exc:
                self.unavailable["pckh"] = f"pose estimation needs mediapipe==0.10.21 ({exc})"
            else:
                from .pose import estimator_description

                self.pose_ok = True
                self.weights["pckh"] = estimator_description()
        for metric, reason in self.unavailable.items():
            log.warning("%s unavailable: %s", metric, reason)


def _real_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"{folder}: FID real image folder not found")
    files = sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    if len(files) < 2:
        raise DataError(f"{folder}: FID needs at least 2 real images, found {len(files)}")
    return files


def evaluate(generated_dir: str | os.PathLike, data_root: str | os.PathLike, protocol: str = "patn", *,
             metrics: list[str] | None = None, out: str | os.PathLike | None = None, label: str | None = None,
             resize: str | None = None, reference: str = "dataset", strip_panels: int = STRIP_PANELS,
             inception_preprocess: str | None = None, fid_real_dir: str | os.PathLike | None = None,
             cache_dir: str | os.PathLike | None = None, use_cache: bool = True,
             inception_weights: str | os.PathLike | None = None, lpips_weights: str | os.PathLike | None = None,
             detector_weights: str | os.PathLike | None = None, detector_arch: str | None = None,
             batch_size: int = 32, device: str = "cpu", progress: bool = True, require_all: bool = False,
             limit: int | None = None) -> dict:
    """Evaluate ``generated_dir`` against the test split of ``data_root``; return (and write) the results.

    ``reference``: ``"dataset"`` (the test images, default) or ``"strip"`` (the target panel of each
    official ``_vis`` strip, as PATN's scripts did). ``limit``: only the first N matched pairs.
    """
    started = time.perf_counter()
    prot = get_protocol(protocol, metrics, resize, inception_preprocess)
    if reference not in ("dataset", "strip"):
        raise DataError(f"unknown reference {reference!r} (dataset or strip)")
    if not Path(generated_dir).is_dir():
        raise DataError(f"{generated_dir}: generated image folder not found")
    root = Path(data_root)
    images_dir, annotation_csv, pairs_csv = find_split_files(root, "test")
    kind = detect_kind(root)
    meta = read_dataset_json(root)
    size = tuple(meta.get("size") or default_size(kind))
    annotations = K.read_annotations(annotation_csv)
    pairs = K.read_pairs(pairs_csv, known_names=annotations.keys())
    matching = match_generated(generated_dir, pairs)
    _check_matching(matching, Path(generated_dir), pairs_csv, require_all)
    items = matching.matched[:limit] if limit else matching.matched
    if reference == "strip" and any(it.layout != "strip" for it in items):
        bad = next(it for it in items if it.layout != "strip")
        raise DataError(f"{bad.path}: --reference strip needs '<from>___<to>_vis.jpg' strips, this is a single image")

    wanted = set(prot.metrics_for(kind))
    engines = _Engines(wanted, prot, inception_weights=inception_weights, lpips_weights=lpips_weights,
                       detector_weights=detector_weights, detector_arch=detector_arch, device=device,
                       batch_size=batch_size)
    active = [m for m in prot.metrics_for(kind) if m not in engines.unavailable]
    pad = prot.fashion_pad if kind == "fashion" else 0
    run = _Run(prot, active, engines, pad)

    loader = _PairLoader(images_dir, annotations, prot.resize, prot.name, reference, strip_panels)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(items), desc="eval", unit="img", disable=None)  # off when not a terminal
    try:
        for start in range(0, len(items), batch_size):
            batch = [loader(item) for item in items[start:start + batch_size]]
            run.add_batch(batch)
            if bar is not None:
                bar.update(len(batch))
    finally:
        if bar is not None:
            bar.close()
    resolutions, resized = loader.resolutions, loader.resized

    values, details = run.finish()
    if "fid" in active:
        fid_started = time.perf_counter()
        from .metrics.fid import fid_from_stats, real_set_statistics

        real_dir = Path(fid_real_dir) if fid_real_dir else root / "train"
        eval_size = next(iter(resolutions)) if len(resolutions) == 1 else size
        real = real_set_statistics(
            _real_files(real_dir), engines.inception, eval_size, cache_dir=cache_dir, use_cache=use_cache,
            batch_size=batch_size, progress=_tqdm_factory() if progress else None,
        )
        values["fid"] = fid_from_stats((real.mu, real.sigma), run.fid_stats)
        details["fid"] = {"real_dir": str(real_dir), "real_images": real.n, "real_resized": real.resized,
                          "generated_images": run.fid_stats.n, "cache": real.cache, "cache_file": real.cache_file,
                          "real_stats_seconds": round(time.perf_counter() - fid_started, 2)}

    elapsed = time.perf_counter() - started
    results = {
        "posetransfer_eval": 1,
        "label": label,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "protocol": prot.as_dict(),
        "dataset": {"root": str(root), "kind": kind,
                    "resolution": list(sorted(resolutions)[0] if resolutions else size),
                    "ground_truth_sizes": [list(r) for r in sorted(resolutions)], "dataset_size": list(size), "test_pairs": len(pairs), "annotation": str(annotation_csv),
                    "pairs": str(pairs_csv)},
        "generated": {
            "dir": str(Path(generated_dir)), **matching.counts(), "evaluated": len(items),
            "missing_examples": [f"{a}___{b}" for a, b in matching.missing[:EXAMPLES]],
            "extra_examples": matching.extra[:EXAMPLES], "strip_panels": strip_panels,
            "resize_policy": prot.resize, "resized": resized,
            "resize_method": "PIL bicubic to the ground-truth size" if prot.resize == "bicubic" else None,
            "reference": "test images of the dataset" if reference == "dataset" else "target panel of each strip",
        },
        "metrics": {m: _finite(values.get(m)) for m in prot.metrics_for(kind)},
        "details": details,
        "settings": {
            "ssim": "skimage structural_similarity, gaussian sigma 1.5, population covariance, "
                    "data_range = generated max-min, uint8 RGB",
            "ssim_white_pad": pad, "ssim_win51": "uniform window 51, data_range 1, [0,1] floats",
            "mask": "PATN produce_ma_mask of the target keypoints (radius 4, 5x5 closing); SSIM/IS/PSNR: "
                    "uint8 x mask (black background); LPIPS: [-1,1] x mask (grey background, GFLA)",
            "psnr": f"data_range 1, per image, capped at {pixel.PSNR_CAP_DB} dB, mean",
            "inception_preprocess": prot.inception_preprocess, "is_splits": prot.is_splits,
            "pckh_alpha": prot.pckh_alpha, "pose_visibility": prot.pose_visibility,
            "batch_size": batch_size, "device": device, "limit": limit,
        },
        "weights": engines.weights,
        "unavailable": {m: r for m, r in engines.unavailable.items() if m in wanted},
        "versions": _versions(),
        "timing": {"seconds": round(elapsed, 2), "images_per_second": round(len(items) / elapsed, 2) if elapsed else None},
    }
    if "fid" in results["metrics"] or "is" in results["metrics"]:
        from .weights.inception import PREPROCESS_DESCRIPTION

        results["settings"]["inception_preprocess_description"] = PREPROCESS_DESCRIPTION[prot.inception_preprocess]
    if out is not None:
        write_json(out, results)
    return results


def _tqdm_factory():
    from functools import partial

    from tqdm import tqdm

    return partial(tqdm, disable=None)


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
    """Reads one matched file and its ground truth, cutting strips and applying the resize policy."""

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

    def __call__(self, item: GeneratedFile) -> tuple[GeneratedFile, np.ndarray, np.ndarray, np.ndarray]:
        gen, panel = load_generated(item, self.panels)
        ref = panel if self.reference == "strip" else read_image(self.images_dir / item.target)
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
        return item, gen, ref, self.annotations[item.target]


class _Run:
    """Accumulates every active metric over batches of (item, generated, reference, target keypoints)."""

    def __init__(self, protocol: Protocol, active: list[str], engines: _Engines, pad: int) -> None:
        from .metrics.fid import FeatureStats
        from .metrics.pckh import PCKhAccumulator

        self.protocol = protocol
        self.active = set(active)
        self.engines = engines
        self.pad = pad
        self.per_image: dict[str, list[float]] = {m: [] for m in active if m in {
            "ssim", "ssim_win51", "mask_ssim", "l1", "psnr", "mask_psnr", "lpips", "mask_lpips", "ds"}}
        self.probs: dict[str, list[np.ndarray]] = {"is": [], "mask_is": []}
        self.fid_stats = FeatureStats(keep=True)
        self.pckh = PCKhAccumulator(protocol.pckh_alpha)

    def add_batch(self, batch: list[tuple[GeneratedFile, np.ndarray, np.ndarray, np.ndarray]]) -> None:
        a = self.active
        need_mask = bool(a & MASK_METRICS)
        gens, refs, masks = [], [], []
        for item, gen, ref, kp in batch:
            mask = K.pose_mask(kp, ref.shape[:2]) if need_mask else None
            gens.append(gen)
            refs.append(ref)
            masks.append(mask)
            if "ssim" in a:
                self.per_image["ssim"].append(ssim_mod.ssim_patn(gen, ref, pad_white=self.pad))
            if "ssim_win51" in a:
                self.per_image["ssim_win51"].append(ssim_mod.ssim_gfla(gen, ref))
            if "mask_ssim" in a:
                self.per_image["mask_ssim"].append(ssim_mod.ssim_patn(gen, ref, mask=mask))
            if "l1" in a:
                self.per_image["l1"].append(pixel.l1(gen, ref))
            if "psnr" in a:
                self.per_image["psnr"].append(pixel.psnr(gen, ref))
            if "mask_psnr" in a:
                self.per_image["mask_psnr"].append(pixel.psnr(gen, ref, mask=mask))
            if "pckh" in a:
                try:
                    from .pose.blazepose import estimate

                    predicted = estimate(gen, self.protocol.pose_visibility, where=str(item.path))
                except PoseError:
                    predicted = None
                self.pckh.add(predicted, kp)
        if "lpips" in a:
            self.per_image["lpips"].extend(self.engines.lpips(gens, refs).tolist())
        if "mask_lpips" in a:
            self.per_image["mask_lpips"].extend(self.engines.lpips(gens, refs, masks).tolist())
        if "ds" in a:
            padded = [ssim_mod.add_white_border(g, self.pad) for g in gens]
            self.per_image["ds"].extend(self.engines.detector(padded).tolist())
        self._inception(gens, masks)

    def _inception(self, gens: list[np.ndarray], masks: list[np.ndarray | None]) -> None:
        a = self.active
        if not a & INCEPTION_METRICS:
            return
        from .metrics.inception_score import softmax

        extractor = self.engines.inception
        if "fid" in a or ("is" in a and self.pad == 0):
            feats, logits = extractor(gens)
            if "fid" in a:
                self.fid_stats.update(feats.numpy())
            if "is" in a and self.pad == 0:
                self.probs["is"].append(softmax(logits.numpy()))
        if "is" in a and self.pad > 0:
            _, logits = extractor([ssim_mod.add_white_border(g, self.pad) for g in gens])
            self.probs["is"].append(softmax(logits.numpy()))
        if "mask_is" in a:
            _, logits = extractor([ssim_mod.apply_mask(g, m) for g, m in zip(gens, masks)])
            self.probs["mask_is"].append(softmax(logits.numpy()))

    def finish(self) -> tuple[dict[str, float | None], dict[str, Any]]:
        from .metrics.inception_score import inception_score

        values: dict[str, float | None] = {}
        details: dict[str, Any] = {}
        for metric, scores in self.per_image.items():
            if scores:
                values[metric] = float(np.mean(scores))
                details[metric] = {"std": float(np.std(scores)), "n": len(scores)}
        for metric in ("is", "mask_is"):
            if metric in self.active and self.probs[metric]:
                mean, std, splits = inception_score(np.concatenate(self.probs[metric]), self.protocol.is_splits)
                values[metric] = mean
                details[metric] = {"std": std, "splits": splits, "logits": "unbiased (pool3 @ W, as TF)"}
        if "pckh" in self.active:
            values["pckh"] = self.pckh.value
            details["pckh"] = {**self.pckh.as_dict(),
                               "estimator": "BlazePose (mediapipe) on generated images; papers used OpenPose"}
        return values, details
