"""LPIPS networks (Zhang et al. 2018) with our weight resolution; one small module for both variants.

* **LPIPS v0.1, AlexNet** — what GFLA / the structure-aware paper report. Needs torchvision's ImageNet
  AlexNet (``alexnet-owt-7be5be79.pth``: explicit path, ``$POSETRANSFER_ALEXNET_WEIGHTS`` or the torch hub
  cache) plus the linear heads shipped inside the ``lpips`` wheel (``lpips/weights/v0.1/alex.pth``).
* **ST-LPIPS, shift-tolerant AlexNet** (Ghildyal & Liu 2022) — the offline fallback: the ``stlpips-pytorch``
  wheel ships the whole network (backbone + heads). It is a *different* metric (more tolerant to small
  shifts), so results computed with it are labelled and must not be compared with published LPIPS.

We do not import ``stlpips_pytorch.stlpips`` (it imports IPython and torchsummary at module level); the
shift-tolerant AlexNet is small and rebuilt here with the same parameter names, so its weight file loads
with ``strict=True``. torchvision's AlexNet ``features`` are rebuilt too (same layer indices, so its state dict
maps by name): importing torchvision costs seconds of start-up. Inputs are images in [-1, 1], N×3×H×W; the
output is one distance per image. Both images of a pair go through the backbone in one batch.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch
from torch import nn

from ..errors import WeightsUnavailable
from . import WeightsSource, announce, env_path, find_in_hub_cache, hub_checkpoint_dir, read_state_dict
from .vgg import BlurDownsample  # the same anti-aliased subsampling in stlpips' AlexNet and VGG


ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
STANDARD_NETWORK = "LPIPS v0.1 alex"
ST_NETWORK = "ST-LPIPS alex (shift-tolerant)"
ENV_VAR = "POSETRANSFER_ALEXNET_WEIGHTS"
CHANNELS = (64, 192, 384, 256, 256)


def package_file(package: str, relative: str) -> Path | None:
    """A data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    candidate = Path(list(spec.submodule_search_locations)[0]) / relative
    return candidate if candidate.is_file() else None


# --------------------------------------------------------------------------------------------------
# Backbones: both return the five ReLU feature maps LPIPS compares
# --------------------------------------------------------------------------------------------------
class _Slices(nn.Module):
    def __init__(self, layers: list[nn.Module], bounds: tuple[int, ...]) -> None:
        super().__init__()
        for k in range(len(bounds) - 1):
            block = nn.Sequential()
            for i in range(bounds[k], bounds[k + 1]):
                block.add_module(str(i), layers[i])
            setattr(self, f"slice{k + 1}", block)
        self.n = len(bounds) - 1

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for k in range(self.n):
            x = getattr(self, f"slice{k + 1}")(x)
            outs.append(x)
        return outs


def alexnet_backbone() -> _Slices:
    """torchvision's AlexNet ``features`` (indices 0-11) cut after each ReLU (lpips' ``pretrained_networks.alexnet``)."""
    layers: list[nn.Module] = [
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
    ]
    return _Slices(layers, (0, 2, 5, 8, 10, 12))


def shift_tolerant_alexnet_backbone() -> _Slices:
    """The ``shift_tolerant`` AlexNet of stlpips (stride-1 convs, blur-pool after, stride-1 max pools)."""
    layers: list[nn.Module] = [
        nn.Conv2d(3, 64, kernel_size=11, stride=1, padding=2), BlurDownsample(64), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=1), BlurDownsample(64),
        nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=1), BlurDownsample(192),
        nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
    ]
    return _Slices(layers, (0, 3, 7, 11, 13, 15))


class LPIPSNet(nn.Module):
    """LPIPS distance: unit-normalise each layer's features over channels, squared difference, learned
    1×1 weights, spatial mean, sum over layers (v0.1 input scaling)."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        self.net = backbone
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in CHANNELS)

    @staticmethod
    def _unit(x: torch.Tensor) -> torch.Tensor:
        return x / (torch.linalg.vector_norm(x, dim=1, keepdim=True) + 1e-10)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        n = a.shape[0]
        both = ((torch.cat([a, b]) - self.shift) / self.scale).contiguous(memory_format=torch.channels_last)
        total = 0.0
        for lin, feats in zip(self.lins, self.net(both)):
            xa, xb = feats[:n], feats[n:]
            total = total + lin((self._unit(xa) - self._unit(xb)) ** 2).mean(dim=(2, 3))
        return total.flatten()


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------
def _load(path: Path) -> dict[str, torch.Tensor]:
    return read_state_dict(path)


def _set_lins(model: LPIPSNet, lin_state: dict[str, torch.Tensor], where: Path) -> None:
    with torch.no_grad():
        for k, lin in enumerate(model.lins):
            key = f"lin{k}.model.1.weight"
            if key not in lin_state or lin_state[key].shape != lin.weight.shape:
                raise WeightsUnavailable(f"{where}: missing or misshaped LPIPS head {key}")
            lin.weight.copy_(lin_state[key])


def standard_lpips(alexnet_file: Path) -> LPIPSNet:
    """LPIPS v0.1 AlexNet from a torchvision AlexNet state dict + the lpips wheel's linear heads."""
    heads = package_file("lpips", "weights/v0.1/alex.pth")
    if heads is None:
        raise WeightsUnavailable("LPIPS v0.1 linear heads not found: install the 'lpips' package")
    model = LPIPSNet(alexnet_backbone())
    state = _load(alexnet_file)
    mapping = {}
    for k, module in enumerate(model.net.children()):
        for name, _ in module.named_parameters():
            index, leaf = name.split(".")
            mapping[f"features.{index}.{leaf}"] = (k, name)
    missing = [key for key in mapping if key not in state]
    if missing:
        raise WeightsUnavailable(f"{alexnet_file}: not a torchvision AlexNet state dict (no {missing[0]})")
    with torch.no_grad():
        slices = list(model.net.children())
        for key, (k, name) in mapping.items():
            param = slices[k].get_parameter(name)
            if param.shape != state[key].shape:
                raise WeightsUnavailable(f"{alexnet_file}: {key} has shape {tuple(state[key].shape)}")
            param.copy_(state[key])
    _set_lins(model, _load(heads), heads)
    return model


def shift_tolerant_lpips(file: Path) -> LPIPSNet:
    """ST-LPIPS (AlexNet) from stlpips-pytorch's ``alex_shift_tolerant.pth`` (strict load)."""
    model = LPIPSNet(shift_tolerant_alexnet_backbone())
    state = _load(file)
    converted = {}
    for key, value in state.items():
        if key.startswith("scaling_layer."):
            converted[key.replace("scaling_layer.", "")] = value.view(1, 3, 1, 1)
        elif key.startswith("lin"):
            k = int(key[3])
            converted[f"lins.{k}.weight"] = value
        else:
            converted[key] = value
    try:
        model.load_state_dict(converted, strict=True)
    except RuntimeError as exc:
        raise WeightsUnavailable(f"{file}: not the shift-tolerant AlexNet LPIPS ({str(exc).splitlines()[0]})") from None
    return model


def build_standard_lpips(path: str | os.PathLike | None = None) -> tuple[LPIPSNet, WeightsSource]:
    """LPIPS v0.1 AlexNet with torchvision's AlexNet weights from ``path`` → ``$POSETRANSFER_ALEXNET_WEIGHTS`` →
    hub cache; :class:`WeightsUnavailable` (one line, what to provide) when there is none."""
    explicit = Path(path) if path is not None else env_path(ENV_VAR)
    if explicit is not None:
        if not explicit.is_file():
            raise WeightsUnavailable(f"{explicit}: AlexNet weights file not found")
        model, kind, file = standard_lpips(explicit), "path", explicit
    elif (cached := find_in_hub_cache(ALEXNET_FILE)) is not None:
        model, kind, file = standard_lpips(cached), "hub-cache", cached
    else:
        raise WeightsUnavailable(
            f"LPIPS v0.1 needs torchvision's AlexNet ({ALEXNET_FILE}): pass --lpips-weights FILE or put it in "
            f"{hub_checkpoint_dir()}"
        )
    source = WeightsSource(STANDARD_NETWORK, kind, str(file), "torchvision AlexNet + lpips v0.1 linear heads")
    return _ready(model), announce(source)


def build_st_lpips() -> tuple[LPIPSNet, WeightsSource]:
    """ST-LPIPS (shift-tolerant AlexNet) shipped by stlpips-pytorch — a different metric from LPIPS."""
    file = package_file("stlpips_pytorch", "weights/vST0.0/alex_shift_tolerant.pth")
    if file is None:
        raise WeightsUnavailable("ST-LPIPS needs the stlpips-pytorch package (it ships the network)")
    source = WeightsSource(ST_NETWORK, "package", str(file),
                           "stlpips-pytorch vST0.0 — NOT the published LPIPS; values are not comparable")
    return _ready(shift_tolerant_lpips(file)), announce(source, warning=True)


def build_lpips(path: str | os.PathLike | None = None) -> tuple[LPIPSNet, WeightsSource]:
    """LPIPS v0.1 (:func:`build_standard_lpips`); when no AlexNet weights are found automatically, the
    shift-tolerant LPIPS shipped by stlpips-pytorch (a logged warning, labelled in results)."""
    try:
        return build_standard_lpips(path)
    except WeightsUnavailable as exc:
        if path is not None or env_path(ENV_VAR) is not None:
            raise  # a file the user named must work
        try:
            return build_st_lpips()
        except WeightsUnavailable:
            raise WeightsUnavailable(f"no LPIPS weights: {exc}, or install stlpips-pytorch for the "
                                     f"shift-tolerant variant") from None


def _ready(model: LPIPSNet) -> LPIPSNet:
    return model.eval().requires_grad_(False).to(memory_format=torch.channels_last)
