"""Every active metric accumulated over batches of (generated, reference, target keypoints), streamed.

Per-image metrics are computed image by image (skimage / numpy); the networks see whole batches: one
Inception pass per batch shared by FID and IS where their inputs agree, one LPIPS pass for LPIPS and
mask-LPIPS together. Nothing but per-image numbers, features and class probabilities is kept.

Exact-reproduction switches of the protocol are applied here: GFLA's dropped last batch (only the images in
``keep["fid"]`` / ``keep["lpips"]`` enter FID / LPIPS) and the order of the IS splits.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..data import keypoints as K
from ..errors import PoseError
from . import pixel, ssim as ssim_mod
from .engines import Engines
from .protocols import MASK_METRICS, Protocol

PER_IMAGE = ("ssim", "ssim_win51", "mask_ssim", "l1", "psnr", "mask_psnr", "lpips", "mask_lpips", "st_lpips",
             "mask_st_lpips", "ds")
#: (plain key, masked key, Engines attribute) of the two LPIPS variants.
LPIPS_PASSES = (("lpips", "mask_lpips", "lpips"), ("st_lpips", "mask_st_lpips", "st_lpips"))


class MetricRun:
    """``add_batch(batch)`` then ``finish() -> (values, details)``.

    ``batch``: a list of ``(key, generated, reference, target keypoints)``; ``key`` identifies the image for
    ``keep`` (the images FID / LPIPS may use; ``None``: all) and ``is_rank`` (the image's position in the IS
    split order; ``None``: the order of the batches).
    """

    def __init__(self, protocol: Protocol, active: Sequence[str], engines: Engines, pad: int,
                 keep: dict[str, set | None] | None = None, is_rank: dict | None = None) -> None:
        from .fid import FeatureStats
        from .pckh import PCKhAccumulator

        self.protocol = protocol
        self.active = set(active)
        self.engines = engines
        self.pad = pad
        self.keep = keep or {}
        self.is_rank = is_rank
        self.per_image: dict[str, list[float]] = {m: [] for m in active if m in PER_IMAGE}
        self.probs: dict[str, list[np.ndarray]] = {"is": [], "mask_is": []}
        self.is_keys: list = []
        self.fid_stats = FeatureStats(keep=True)
        self.fid_seen = 0
        self.lpips_seen = 0
        self.pckh = PCKhAccumulator(protocol.pckh_alpha)

    def add_batch(self, batch: list[tuple[Any, np.ndarray, np.ndarray, np.ndarray]]) -> None:
        a = self.active
        p = self.protocol
        need_mask = bool(a & MASK_METRICS)
        keys, gens, refs, masks = [], [], [], []
        for key, gen, ref, kp in batch:
            mask = K.pose_mask(kp, ref.shape[:2]) if need_mask else None
            keys.append(key)
            gens.append(gen)
            refs.append(ref)
            masks.append(mask)
            scores = self.per_image
            if "ssim" in a:
                scores["ssim"].append(ssim_mod.ssim_patn(gen, ref, pad_white=self.pad))
            if "ssim_win51" in a:
                scores["ssim_win51"].append(ssim_mod.ssim_gfla(gen, ref))
            if "mask_ssim" in a:
                scores["mask_ssim"].append(ssim_mod.ssim_patn(gen, ref, mask=mask))
            if "l1" in a:
                scores["l1"].append(pixel.l1(gen, ref, value_range=p.l1_range))
            if "psnr" in a:
                scores["psnr"].append(pixel.psnr_of_kind(gen, ref, p.psnr_kind))
            if "mask_psnr" in a:
                scores["mask_psnr"].append(pixel.psnr_of_kind(gen, ref, p.psnr_kind, mask=mask))
            if "pckh" in a:
                self._pckh(key, gen, kp)
        self._lpips(keys, gens, refs, masks)
        if "ds" in a:
            padded = [ssim_mod.add_white_border(g, self.pad) for g in gens]
            self.per_image["ds"].extend(self.engines.detector(padded).tolist())
        self._inception(keys, gens, masks)

    def _pckh(self, key, gen: np.ndarray, kp: np.ndarray) -> None:
        from ..pose.blazepose import estimate

        try:
            predicted = estimate(gen, self.protocol.pose_visibility, where=str(key))
        except PoseError:
            predicted = None
        self.pckh.add(predicted, kp)

    def _kept(self, name: str, keys: list) -> list[int]:
        allowed = self.keep.get(name)
        return [i for i, k in enumerate(keys) if allowed is None or k in allowed]

    def _lpips(self, keys: list, gens: list, refs: list, masks: list) -> None:
        if not self.active & {m for names in LPIPS_PASSES for m in names[:2]}:
            return
        self.lpips_seen += len(keys)
        rows = self._kept("lpips", keys)
        if not rows:
            return
        for plain, masked, attribute in LPIPS_PASSES:
            want_plain, want_masked = plain in self.active, masked in self.active
            if not (want_plain or want_masked):
                continue
            metric = getattr(self.engines, attribute)
            g = [gens[i] for i in rows]
            r = [refs[i] for i in rows]
            if want_plain and want_masked:
                values, masked_values = metric.plain_and_masked(g, r, [masks[i] for i in rows])
                self.per_image[plain].extend(values.tolist())
                self.per_image[masked].extend(masked_values.tolist())
            elif want_plain:
                self.per_image[plain].extend(metric(g, r).tolist())
            else:
                self.per_image[masked].extend(metric(g, r, [masks[i] for i in rows]).tolist())

    def _inception(self, keys: list, gens: list, masks: list) -> None:
        a = self.active
        want_is = "is" in a
        if not (a & {"fid", "is", "mask_is"}):
            return
        from .inception_score import softmax

        tf = self.engines.inception
        shared = "fid" in a and want_is and self.engines.fid is tf and self.pad == 0  # one pass for both
        if "fid" in a:
            self.fid_seen += len(keys)
            rows = self._kept("fid", keys)
            if shared:
                feats, logits = tf(gens)
                self.fid_stats.update(feats.numpy()[rows])
                self.probs["is"].append(softmax(logits.numpy()))
            elif rows:
                self.fid_stats.update(self.engines.fid([gens[i] for i in rows])[0].numpy())
        if want_is and not shared:
            images = [ssim_mod.add_white_border(g, self.pad) for g in gens] if self.pad else gens
            self.probs["is"].append(softmax(tf(images)[1].numpy()))
        if "mask_is" in a:
            _, logits = tf([ssim_mod.apply_mask(g, m) for g, m in zip(gens, masks)])
            self.probs["mask_is"].append(softmax(logits.numpy()))
        if want_is or "mask_is" in a:
            self.is_keys.extend(keys)

    def _is_probabilities(self, metric: str) -> np.ndarray:
        probs = np.concatenate(self.probs[metric])
        if self.is_rank is None:
            return probs
        order = sorted(range(len(self.is_keys)), key=lambda i: self.is_rank[self.is_keys[i]])
        return probs[order]

    def finish(self) -> tuple[dict[str, float | None], dict[str, Any]]:
        from .inception_score import inception_score

        values: dict[str, float | None] = {}
        details: dict[str, Any] = {}
        for metric, scores in self.per_image.items():
            if scores:
                values[metric] = float(np.mean(scores))
                details[metric] = {"std": float(np.std(scores)), "n": len(scores)}
                if metric in ("lpips", "mask_lpips", "st_lpips", "mask_st_lpips"):
                    details[metric]["dropped"] = self.lpips_seen - len(scores)
        for metric in ("is", "mask_is"):
            if metric in self.active and self.probs[metric]:
                mean, std, splits = inception_score(self._is_probabilities(metric), self.protocol.is_splits)
                values[metric] = mean
                details[metric] = {"std": std, "splits": splits, "order": self.protocol.is_order,
                                   "logits": "unbiased (pool3 @ W, as TF)"}
        if "pckh" in self.active:
            values["pckh"] = self.pckh.value
            details["pckh"] = {**self.pckh.as_dict(),
                               "estimator": "BlazePose (mediapipe) on generated images; papers used OpenPose"}
        return values, details
