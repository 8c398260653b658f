"""Frozen VGG features for the perceptual, style and sampling-correctness losses.

The papers use VGG-19 pretrained on ImageNet (PATN/PoNA: the output of ``relu1_2``, i.e. torchvision's
``vgg19().features[:4]``; GFLA-style flow models: relu1_1..relu5_1 and Gram matrices of relu2_2..relu5_2).

Where the weights come from (first that exists wins, logged once, see :mod:`posetransfer.weights`):

1. an explicit file (``weights=`` / ``--vgg-weights``): torchvision's ``vgg19-*.pth`` (or a ``.safetensors``
   with the same ``features.N.*`` keys);
2. the environment variable ``POSETRANSFER_VGG19``;
3. the torch hub cache, where torchvision stores ``vgg19-dcbb9e9d.pth`` after one online ``vgg19(weights=...)``;
4. offline fallback (a logged WARNING): the shift-tolerant VGG-16 shipped inside the ``stlpips-pytorch``
   package (``stlpips_pytorch/weights/vST0.0/vgg_shift_tolerant.pth``). It is a *trained* perceptual network
   (ST-LPIPS, Ghildyal & Liu, ECCV'22: VGG-16 with blur-pooled downsampling), not ImageNet VGG-19, but its
   ``relu1_2`` has the same 64 channels at full resolution, so perceptual training still works offline.
   VGG-19 layer names map to the nearest VGG-16 layer (``relu3_4`` → ``relu3_3`` etc.); deeper layers are
   spatially a pixel larger than VGG-19's (blur pooling pads), which losses comparing two images do not mind.

Never a silently random network: if nothing is found, :class:`WeightsUnavailable` is raised.
Files are read with ``torch.load(weights_only=True)`` or safetensors — no pickled code is ever run.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import WeightsUnavailable
from . import WeightsSource, announce, env_path, find_in_hub_cache

VGG19_FILE = "vgg19-dcbb9e9d.pth"
ENV_VARIABLE = "POSETRANSFER_VGG19"
FALLBACK_RELATIVE = ("weights", "vST0.0", "vgg_shift_tolerant.pth")

# torchvision's VGG-19 ``features``: index of every ReLU output, by the usual name.
VGG19_LAYERS: dict[str, int] = {
    "relu1_1": 1, "relu1_2": 3,
    "relu2_1": 6, "relu2_2": 8,
    "relu3_1": 11, "relu3_2": 13, "relu3_3": 15, "relu3_4": 17,
    "relu4_1": 20, "relu4_2": 22, "relu4_3": 24, "relu4_4": 26,
    "relu5_1": 29, "relu5_2": 31, "relu5_3": 33, "relu5_4": 35,
}
_VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")

# The shift-tolerant VGG-16 of stlpips: every max-pool is MaxPool(2, stride 1) + a blur-and-subsample layer, so a
# block boundary takes two slots. ReLU output indices, with VGG-19 names mapped to their VGG-16 counterpart.
_ST_VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
ST_VGG16_LAYERS: dict[str, int] = {
    "relu1_1": 1, "relu1_2": 3,
    "relu2_1": 7, "relu2_2": 9,
    "relu3_1": 13, "relu3_2": 15, "relu3_3": 17, "relu3_4": 17,
    "relu4_1": 21, "relu4_2": 23, "relu4_3": 25, "relu4_4": 25,
    "relu5_1": 29, "relu5_2": 31, "relu5_3": 33, "relu5_4": 33,
}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class BlurDownsample(nn.Module):
    """Anti-aliased stride-2 subsampling (Zhang 2019; reflect-pad 2, depthwise [1,2,1]ᵀ[1,2,1]/16 filter) as in
    stlpips' shift-tolerant VGG and AlexNet.

    The filter is a buffer named ``filt`` so the package's state dict loads into it unchanged.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        taps = torch.tensor([1.0, 2.0, 1.0])
        kernel = taps[:, None] * taps[None, :]
        self.register_buffer("filt", (kernel / kernel.sum())[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), self.filt, stride=2, groups=x.shape[1])


def _vgg19_features(depth: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = 3
    for value in _VGG19_CFG:
        if value == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, value, 3, padding=1), nn.ReLU(inplace=False)]
            channels = value
    return nn.Sequential(*layers[: depth + 1])


def _st_vgg16_features(depth: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = 3
    for value in _ST_VGG16_CFG:
        if value == "M":
            layers += [nn.MaxPool2d(2, 1), BlurDownsample(channels)]
        else:
            layers += [nn.Conv2d(channels, value, 3, padding=1), nn.ReLU(inplace=False)]
            channels = value
    return nn.Sequential(*layers[: depth + 1])


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a ``.pth`` read with ``weights_only=True``."""
    if not path.is_file():
        raise WeightsUnavailable(f"{path}: VGG weights file not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt zip, pickle with code, ...: never let it through as a traceback
        if exc.__class__.__name__ == "UnpicklingError":
            raise WeightsUnavailable(f"{path}: refused, the file holds pickled objects other than tensors "
                                     "(loaded with weights_only=True)") from None
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise WeightsUnavailable(f"{path}: not a readable weights file ({exc.__class__.__name__}: {first})") from None
    if not isinstance(state, dict):
        raise WeightsUnavailable(f"{path}: expected a state dict, found {type(state).__name__}")
    return state


@functools.lru_cache(maxsize=4)
def _cached_state(path: str, mtime: float) -> dict[str, torch.Tensor]:
    return _read_state(Path(path))


def load_state(path: Path) -> dict[str, torch.Tensor]:
    """Read (and cache per process) a weights file: several losses / tests share one VGG."""
    return _cached_state(str(path), os.path.getmtime(path) if path.exists() else 0.0)


def fallback_file() -> Path | None:
    """The shift-tolerant VGG-16 shipped in stlpips-pytorch, or None if that package is absent."""
    try:
        import importlib.util

        spec = importlib.util.find_spec("stlpips_pytorch")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    candidate = Path(list(spec.submodule_search_locations)[0]).joinpath(*FALLBACK_RELATIVE)
    return candidate if candidate.is_file() else None


def resolve_vgg19(weights: str | os.PathLike | None = None) -> tuple[str, Path, WeightsSource]:
    """Decide where VGG weights come from: ('vgg19' | 'st-vgg16', file, source). Nothing is downloaded."""
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise WeightsUnavailable(f"{path}: VGG-19 weights file not found (given with --vgg-weights)")
        return "vgg19", path, WeightsSource("vgg19", "path", str(path))
    env = env_path(ENV_VARIABLE)
    if env is not None:
        if not env.is_file():
            raise WeightsUnavailable(f"{env}: VGG-19 weights file not found (from ${ENV_VARIABLE})")
        return "vgg19", env, WeightsSource("vgg19", "path", str(env), note=f"${ENV_VARIABLE}")
    cached = find_in_hub_cache(VGG19_FILE)
    if cached is not None:
        return "vgg19", cached, WeightsSource("vgg19", "hub-cache", str(cached))
    fallback = fallback_file()
    if fallback is not None:
        return "st-vgg16", fallback, WeightsSource(
            "vgg19", "package", str(fallback),
            note=f"torchvision VGG-19 ({VGG19_FILE}) is not in {find_hub_dir_hint()}; using the pretrained "
                 "shift-tolerant VGG-16 of stlpips-pytorch instead (pass --vgg-weights for the paper setting)",
        )
    raise WeightsUnavailable(
        f"VGG-19 weights not found: give --vgg-weights FILE, set ${ENV_VARIABLE}, put {VGG19_FILE} in "
        f"{find_hub_dir_hint()}, or install stlpips-pytorch for the offline fallback"
    )


def find_hub_dir_hint() -> str:
    from . import hub_checkpoint_dir

    return str(hub_checkpoint_dir())


class VGGFeatures(nn.Module):
    """``VGGFeatures(layers=("relu1_2",))(x in [-1, 1]) -> {"relu1_2": B×64×H×W}``; frozen, eval mode.

    Only the layers up to the deepest one asked for are built. ``.source`` says which weights were used,
    ``.kind`` is ``"vgg19"`` or ``"st-vgg16"``.
    """

    def __init__(self, layers: Iterable[str] = ("relu1_2",), weights: str | os.PathLike | None = None) -> None:
        super().__init__()
        self.layers = tuple(dict.fromkeys(layers))
        if not self.layers:
            raise ValueError("VGGFeatures needs at least one layer")
        unknown = [name for name in self.layers if name not in VGG19_LAYERS]
        if unknown:
            raise WeightsUnavailable(
                f"unknown VGG layer(s) {', '.join(unknown)}; known: {', '.join(VGG19_LAYERS)}")
        self.kind, path, source = resolve_vgg19(weights)
        self.source = announce(source, warning=self.kind != "vgg19")
        state = load_state(path)
        if self.kind == "vgg19":
            self.index = {name: VGG19_LAYERS[name] for name in self.layers}
            self.features = _vgg19_features(max(self.index.values()))
            wanted = {key[len("features."):]: value for key, value in state.items() if key.startswith("features.")}
            mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
            std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
            # [-1, 1] → [0, 1] → ImageNet normalisation, folded into one affine map: (x - shift) / scale
            shift, scale = 2 * mean - 1, 2 * std
        else:
            self.index = {name: ST_VGG16_LAYERS[name] for name in self.layers}
            self.features = _st_vgg16_features(max(self.index.values()))
            wanted = {}
            for key, value in state.items():  # "net.slice2.6.weight" → "6.weight" (the slice index is global)
                parts = key.split(".")
                if parts[0] == "net" and len(parts) == 4:
                    wanted[f"{parts[2]}.{parts[3]}"] = value
            # the LPIPS scaling layer the network was trained behind (inputs in [-1, 1])
            shift = state.get("scaling_layer.shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
            scale = state.get("scaling_layer.scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        own = self.features.state_dict()
        missing = [key for key in own if key not in wanted]
        if missing:
            raise WeightsUnavailable(f"{path}: VGG weights lack {', '.join(missing[:3])} (not a VGG state dict?)")
        self.features.load_state_dict({key: wanted[key] for key in own}, strict=True)
        self.register_buffer("shift", shift.reshape(1, 3, 1, 1).float().clone())
        self.register_buffer("scale", scale.reshape(1, 3, 1, 1).float().clone())
        self._names_at: dict[int, list[str]] = {}
        for name, index in self.index.items():
            self._names_at.setdefault(index, []).append(name)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "VGGFeatures":
        return super().train(False)  # always frozen; no dropout/BN inside anyway

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = (x - self.shift) / self.scale
        out: dict[str, torch.Tensor] = {}
        for i, layer in enumerate(self.features):
            h = layer(h)
            for name in self._names_at.get(i, ()):
                out[name] = h
        return out
