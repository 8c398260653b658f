"""Person detectors for the detection score (DS), from torchvision COCO weights only.

The published DS used Caffe SSD300-VGG16 trained on VOC07+12, which has no maintained PyTorch release; we use a
torchvision COCO detector instead (class 1 = person), so absolute DS values differ from the papers'. Weights come
from an explicit path, ``$POSETRANSFER_DETECTOR_WEIGHTS`` or the torch hub cache (the files torchvision
downloads); nothing is shipped offline, so without them DS is unavailable — never a randomly initialised
network.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import WeightsUnavailable
from . import WeightsSource, announce, env_path, find_in_hub_cache, first_line, hub_checkpoint_dir


ENV_VAR = "POSETRANSFER_DETECTOR_WEIGHTS"
COCO_PERSON = 1

#: architecture → torchvision weight file name (hub cache), in order of preference (fast first).
DETECTOR_FILES: dict[str, str] = {
    "ssdlite320_mobilenet_v3_large": "ssdlite320_mobilenet_v3_large_coco-a79551df.pth",
    "ssd300_vgg16": "ssd300_vgg16_coco-b556d3b4.pth",
    "fasterrcnn_mobilenet_v3_large_fpn": "fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth",
    "fasterrcnn_resnet50_fpn": "fasterrcnn_resnet50_fpn_coco-258fb6c6.pth",
    "fasterrcnn_resnet50_fpn_v2": "fasterrcnn_resnet50_fpn_v2_coco-dd69338a.pth",
    "retinanet_resnet50_fpn": "retinanet_resnet50_fpn_coco-eeacb38b.pth",
}


def build_architecture(arch: str) -> torch.nn.Module:
    """An *uninitialised* torchvision detector (no download) that keeps low-score boxes for DS."""
    from torchvision.models import detection as d

    common = {"weights": None, "weights_backbone": None, "num_classes": 91}
    if arch == "ssdlite320_mobilenet_v3_large":
        return d.ssdlite320_mobilenet_v3_large(**common, score_thresh=0.001)
    if arch == "ssd300_vgg16":
        return d.ssd300_vgg16(**common, score_thresh=0.001)
    if arch == "fasterrcnn_mobilenet_v3_large_fpn":
        return d.fasterrcnn_mobilenet_v3_large_fpn(**common, box_score_thresh=0.001)
    if arch == "fasterrcnn_resnet50_fpn":
        return d.fasterrcnn_resnet50_fpn(**common, box_score_thresh=0.001)
    if arch == "fasterrcnn_resnet50_fpn_v2":
        return d.fasterrcnn_resnet50_fpn_v2(**common, box_score_thresh=0.001)
    if arch == "retinanet_resnet50_fpn":
        return d.retinanet_resnet50_fpn(**common, score_thresh=0.001)
    raise WeightsUnavailable(f"unknown detector architecture {arch!r} (one of {', '.join(DETECTOR_FILES)})")


def _arch_from_name(path: Path) -> str | None:
    for arch, filename in DETECTOR_FILES.items():
        if path.name == filename or path.name.startswith(filename.rsplit("-", 1)[0]):
            return arch
    return None


def _load_into(arch: str, path: Path) -> torch.nn.Module:
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise WeightsUnavailable(f"{path}: cannot read detector weights ({exc.__class__.__name__}: {first_line(exc)})") from None
    if not isinstance(state, dict):
        raise WeightsUnavailable(f"{path}: expected a state dict of a torchvision detector")
    model = build_architecture(arch)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsUnavailable(f"{path}: not {arch} weights ({str(exc).splitlines()[0]})") from None
    return model


def build_detector(path: str | os.PathLike | None = None, arch: str | None = None) -> tuple[torch.nn.Module, WeightsSource]:
    """A COCO person detector from ``path`` (architecture from ``arch`` or the file name), else
    ``$POSETRANSFER_DETECTOR_WEIGHTS``, else the first torchvision detector file in the hub cache.
    Raises :class:`WeightsUnavailable` with what to provide when none is found."""
    explicit = Path(path) if path is not None else env_path(ENV_VAR)
    if explicit is not None:
        if not explicit.is_file():
            raise WeightsUnavailable(f"{explicit}: detector weights file not found")
        chosen = arch or _arch_from_name(explicit)
        if chosen is None:
            raise WeightsUnavailable(
                f"{explicit}: cannot tell the detector architecture from the file name; pass one of "
                f"{', '.join(DETECTOR_FILES)}"
            )
        model, kind, file = _load_into(chosen, explicit), "path", explicit
    else:
        for candidate_arch, filename in DETECTOR_FILES.items():
            if arch is not None and candidate_arch != arch:
                continue
            cached = find_in_hub_cache(filename)
            if cached is not None:
                chosen = candidate_arch
                model, kind, file = _load_into(chosen, cached), "hub-cache", cached
                break
        else:
            raise WeightsUnavailable(
                f"no person-detector weights for DS: pass --detector-weights FILE (a torchvision COCO detector, "
                f"e.g. {DETECTOR_FILES['ssdlite320_mobilenet_v3_large']}) or put it in {hub_checkpoint_dir()}"
            )
    model.eval().requires_grad_(False)
    source = WeightsSource(f"torchvision {chosen} (COCO)", kind, str(file),
                           "not the papers' Caffe SSD300 VOC model: DS values differ from published ones")
    return model, announce(source)
