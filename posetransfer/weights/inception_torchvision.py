"""torchvision's ImageNet Inception-v3 as GFLA's ``script/inception.py`` runs it: the network of GFLA's FID.

GFLA's ``script/metrics.py`` (the source of the FIDs in the GFLA and structure-aware papers) builds
``torchvision.models.inception_v3(pretrained=True)`` — the ImageNet classifier, *not* the TF
``inception-2015-12-05`` graph of TF-FID (:mod:`posetransfer.weights.inception`) — so the two FIDs are
different numbers and are kept apart as FID kinds ``gfla`` and ``tf``. GFLA's feature path, reproduced here:

* the input is a [0, 1] RGB image (``imread(...) / 255``), N×3×H×W;
* ``F.upsample(x, size=(299, 299), mode='bilinear')``: GFLA ran PyTorch 1.0, where that means
  ``align_corners=False``; applied at every size (an identity at 299×299);
* per channel ``x · std/0.5 + (mean − 0.5)/0.5`` with the ImageNet mean and std (torchvision's
  ``transform_input`` formula, which GFLA applies to the [0, 1] image rather than to a normalised one);
* torchvision's own blocks ``Conv2d_1a_3x3 … Mixed_7c`` (average pools that count the padding, an average-pooled
  ``Mixed_7c``: the ImageNet network unchanged), the two 3×3/2 max pools in between, then the global average
  pool: the 2048-d features GFLA asks for (``dims = 2048``, block index 3). No classifier is involved.

Weights: torchvision's ``inception_v3_google-0cc3c7bd.pth`` (torchvision before 0.10 downloaded the same
network as ``inception_v3_google-1a9a5a14.pth``; both names are looked for) from an explicit path,
``$POSETRANSFER_IMAGENET_INCEPTION_WEIGHTS`` or the torch hub cache. No package ships it and nothing is ever
downloaded, so without it this FID kind is unavailable with one line saying what to provide. torchvision is
imported only once a file exists (its import costs seconds of start-up).
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import WeightsUnavailable
from . import WeightsSource, announce, env_path, find_in_hub_cache, hub_checkpoint_dir, read_state_dict
from .inception import INPUT_SIZE, file_fingerprint
from .vgg import IMAGENET_MEAN, IMAGENET_STD

#: torchvision's file names for ``inception_v3(pretrained=True)``, current first.
IMAGENET_INCEPTION_FILES = ("inception_v3_google-0cc3c7bd.pth", "inception_v3_google-1a9a5a14.pth")
ENV_VAR = "POSETRANSFER_IMAGENET_INCEPTION_WEIGHTS"
NETWORK = "torchvision inception_v3 ImageNet (GFLA script/inception.py)"
PREPROCESS = "gfla"
PREPROCESS_DESCRIPTION = ("x/255 in [0,1]; bilinear resize to 299x299 (align_corners=False, as F.upsample in "
                          "PyTorch 1.0); x*std/0.5 + (mean-0.5)/0.5 per channel with ImageNet mean/std — "
                          "GFLA script/inception.py")


def resolve_imagenet_inception_file(path: str | os.PathLike | None = None) -> tuple[Path, str]:
    """``(file, kind)`` of torchvision's Inception-v3 weights: ``path`` → ``$POSETRANSFER_IMAGENET_INCEPTION_WEIGHTS``
    → hub cache. Raises :class:`WeightsUnavailable` (one line, what to provide) when there is none."""
    explicit = Path(path) if path is not None else env_path(ENV_VAR)
    if explicit is not None:
        if not explicit.is_file():
            where = "" if path is not None else f" (from ${ENV_VAR})"
            raise WeightsUnavailable(f"{explicit}: torchvision Inception-v3 weights file not found{where}")
        return explicit, "path"
    for name in IMAGENET_INCEPTION_FILES:
        cached = find_in_hub_cache(name)
        if cached is not None:
            return cached, "hub-cache"
    raise WeightsUnavailable(
        f"GFLA's FID needs torchvision's ImageNet Inception-v3 ({IMAGENET_INCEPTION_FILES[0]}), which no package "
        f"ships: pass --imagenet-inception-weights FILE or put it in {hub_checkpoint_dir()} "
        f"(or use --fid-kind tf for TF-FID)"
    )


def gfla_preprocess(x01: torch.Tensor) -> torch.Tensor:
    """GFLA's input path for N×3×H×W images in [0, 1]: resize to 299×299, then ``x·std/0.5 + (mean−0.5)/0.5``."""
    x = F.interpolate(x01, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return x * (std / 0.5) + (mean - 0.5) / 0.5


class GFLAInceptionFeatures(nn.Module):
    """The layers of a torchvision ``Inception3`` that GFLA's wrapper runs, ending in the 2048-d average pool."""

    def __init__(self, inception: nn.Module) -> None:
        super().__init__()
        self.blocks = nn.Sequential(
            inception.Conv2d_1a_3x3, inception.Conv2d_2a_3x3, inception.Conv2d_2b_3x3,
            nn.MaxPool2d(kernel_size=3, stride=2),
            inception.Conv2d_3b_1x1, inception.Conv2d_4a_3x3,
            nn.MaxPool2d(kernel_size=3, stride=2),
            inception.Mixed_5b, inception.Mixed_5c, inception.Mixed_5d, inception.Mixed_6a, inception.Mixed_6b,
            inception.Mixed_6c, inception.Mixed_6d, inception.Mixed_6e,
            inception.Mixed_7a, inception.Mixed_7b, inception.Mixed_7c,
            nn.AdaptiveAvgPool2d(output_size=(1, 1)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return torch.flatten(self.blocks(x), 1)


@functools.lru_cache(maxsize=1)
def _load(file_name: str, mtime_ns: int) -> nn.Module:
    """torchvision's ``inception_v3`` with the file's weights (strict), cut as GFLA does; built once per file."""
    del mtime_ns  # part of the cache key only
    file = Path(file_name)
    state = read_state_dict(file, "torchvision Inception-v3 weights")
    from torchvision.models import inception_v3  # only now: importing torchvision takes seconds

    model = inception_v3(weights=None, aux_logits=True, init_weights=False)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsUnavailable(
            f"{file}: not torchvision Inception-v3 weights ({str(exc).splitlines()[0]})") from None
    features = GFLAInceptionFeatures(model).eval().requires_grad_(False)
    return features.to(memory_format=torch.channels_last)


def build_imagenet_inception(path: str | os.PathLike | None = None) -> tuple[nn.Module, WeightsSource]:
    """GFLA's feature network with torchvision's ImageNet weights (see :func:`resolve_imagenet_inception_file`)."""
    file, kind = resolve_imagenet_inception_file(path)
    model = _load(str(file.resolve()), file.stat().st_mtime_ns)
    return model, announce(WeightsSource(NETWORK, kind, str(file), "ImageNet classifier weights, not the TF FID graph"))


class GFLAInceptionExtractor:
    """GFLA-FID features (N, 2048) of uint8 RGB images, batched; same interface as the TF extractor.

    ``network`` replaces the loaded torchvision network (tests use a tiny stand-in: the real weights are not
    available offline); it receives the preprocessed 299×299 batch and returns N×2048 (or N×C×1×1) features.
    """

    fid_kind = "gfla"
    has_logits = False

    def __init__(self, weights: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                 batch_size: int = 32, network: nn.Module | None = None) -> None:
        if network is None:
            self.model, self.source = build_imagenet_inception(weights)
        else:
            self.model = network
            self.source = WeightsSource(f"stand-in {network.__class__.__name__}", "random", "memory", "tests only")
        self.device = torch.device(device)
        self.model.to(self.device)
        self.batch_size = batch_size

    def identity(self) -> str:
        """What the features depend on (for FID cache keys)."""
        where = self.source.location
        return f"{file_fingerprint(where) if Path(where).is_file() else self.source.network}|{PREPROCESS}"

    def describe(self) -> dict[str, str]:
        return {"kind": self.fid_kind, "network": self.source.network, "preprocess": PREPROCESS,
                "preprocess_description": PREPROCESS_DESCRIPTION, "features": "final average pool, 2048-d"}

    @torch.inference_mode()
    def __call__(self, images: list | torch.Tensor) -> tuple[torch.Tensor, None]:
        """``images``: a list of H×W×3 uint8 arrays (one size) or an N×3×H×W float tensor in [0, 255]."""
        if not isinstance(images, torch.Tensor):
            images = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
        feats = []
        for start in range(0, images.shape[0], self.batch_size):
            batch = images[start:start + self.batch_size].to(self.device, torch.float32) / 255.0
            x = gfla_preprocess(batch).contiguous(memory_format=torch.channels_last)
            feats.append(self.model(x).reshape(x.shape[0], -1).double().cpu())
        return torch.cat(feats), None
