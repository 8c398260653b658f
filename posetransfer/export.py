"""Export a generator to a file that runs without posetransfer: ONNX (any ONNX runtime) or TorchScript.

    from posetransfer.export import export_generator, load_exported
    report = export_generator(G, "patn.onnx", "onnx", size=(128, 64), metadata={...})
    runner = load_exported("patn.onnx")            # ONNX Runtime (TorchScript: torch.jit.load)
    image = runner(source_image, source_heatmaps, target_heatmaps)   # B×3×H×W in [-1, 1]

The exported graph takes the three tensors of the generator call (``source_image`` B×3×H×W in [-1, 1],
``source_heatmaps`` and ``target_heatmaps`` B×18×H×W) and returns ``image``; the batch axis is dynamic, the
frame (H, W) is fixed at export (the generators' shape checks and pooling sizes depend on it). The file
carries what a caller needs to feed it (:func:`read_metadata`): the architecture, its config, the frame,
the heatmap kind and σ, the image normalisation — in the ONNX ``metadata_props`` / a ``posetransfer.json``
entry of the TorchScript archive.

Why a wrapper module (:class:`ExportModule`): the exporters see plain tensor code only, so two things the
eager models do are rewritten while tracing, with the same results:

* attention goes through :func:`posetransfer.models.fast.attention` ``"sdpa"``, which gives every
  ``scaled_dot_product_attention`` a head axis (the ONNX converter takes 4-D attention only; the part-flow
  model's pyramid non-local block calls it on 3-D tensors);
* ``adaptive_{max,avg}_pool2d`` to a size that does not divide the input (the pyramid non-local block pools
  32×16 features to 6×6) has no ONNX operator; with the frame fixed, the pooling cells are known, so it
  becomes one reduction per cell (exactly PyTorch's cell bounds: floor(i·n/s) to ceil((i+1)·n/s)).

Exporting is checked, not assumed: :func:`export_generator` runs the written file on a batch of another
size than the example and reports the largest difference from the PyTorch model.
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from .errors import CheckpointError, ConfigError, ModelError

log = logging.getLogger(__name__)

FORMATS = ("onnx", "torchscript")
INPUT_NAMES = ("source_image", "source_heatmaps", "target_heatmaps")
OUTPUT_NAME = "image"
#: the ONNX opset the dynamo exporter writes (its own default; onnxruntime 1.31 runs it)
OPSET = 18
#: the TorchScript archive entry that holds the metadata
TORCHSCRIPT_METADATA = "posetransfer.json"
#: largest difference tolerated between the exported file and the PyTorch model (tanh images in [-1, 1])
TOLERANCE = 1e-4


# --------------------------------------------------------------------------------------------------
# Rewrites applied while tracing
# --------------------------------------------------------------------------------------------------
def _cells(n: int, s: int) -> list[tuple[int, int]]:
    """PyTorch's adaptive-pooling cell bounds along one axis of length ``n`` pooled to ``s``."""
    return [(math.floor(i * n / s), math.ceil((i + 1) * n / s)) for i in range(s)]


def adaptive_pool2d(x: torch.Tensor, output_size, reduce: str) -> torch.Tensor:
    """``adaptive_max_pool2d`` / ``adaptive_avg_pool2d`` from fixed-size reductions (ONNX has no adaptive
    pooling to a size that does not divide the input)."""
    out_h, out_w = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    h, w = int(x.shape[-2]), int(x.shape[-1])
    out_h, out_w = h if out_h is None else int(out_h), w if out_w is None else int(out_w)
    if h % out_h == 0 and w % out_w == 0:              # whole cells: an ordinary pooling
        kernel = (h // out_h, w // out_w)
        return F.max_pool2d(x, kernel, kernel) if reduce == "max" else F.avg_pool2d(x, kernel, kernel)
    rows = []
    for h0, h1 in _cells(h, out_h):
        row = []
        for w0, w1 in _cells(w, out_w):
            cell = x[..., h0:h1, w0:w1]
            row.append(cell.amax(dim=(-2, -1)) if reduce == "max" else cell.mean(dim=(-2, -1)))
        rows.append(torch.stack(row, dim=-1))
    return torch.stack(rows, dim=-2)


class _ExportableOps(TorchFunctionMode):
    """Routes the calls the exporters cannot take to :func:`adaptive_pool2d` (see the module docstring)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (F.adaptive_max_pool2d, F.adaptive_avg_pool2d) and not kwargs.get("return_indices"):
            size = args[1] if len(args) > 1 else kwargs["output_size"]
            return adaptive_pool2d(args[0], size, "max" if func is F.adaptive_max_pool2d else "avg")
        return func(*args, **kwargs)


class ExportModule(nn.Module):
    """``(source_image, source_heatmaps, target_heatmaps) -> image`` of a generator, in traceable form."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator.eval()

    def forward(self, source_image: torch.Tensor, source_heatmaps: torch.Tensor,
                target_heatmaps: torch.Tensor) -> torch.Tensor:
        from .models.fast import attention_impl

        with attention_impl("sdpa"), _ExportableOps():
            return self.generator(source_image, source_heatmaps, target_heatmaps)


# --------------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------------
@dataclass
class ExportReport:
    """What :func:`export_generator` wrote and how closely the file reproduces the PyTorch model."""

    path: Path
    format: str
    size: tuple[int, int]
    seconds: float
    max_abs_diff: float | None = None
    checked_batch: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        check = (f", checked at batch {self.checked_batch}: max |difference| {self.max_abs_diff:.1e} from the "
                 f"PyTorch model" if self.max_abs_diff is not None else "")
        return (f"export: {self.format} {self.metadata.get('arch', 'generator')} {self.size[0]}x{self.size[1]} "
                f"written to {self.path} in {self.seconds:.1f} s{check}")


def example_inputs(size: tuple[int, int], batch: int, pose_channels: int = 18,
                   seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random inputs of the generator call (image in [-1, 1], maps in [0, 1]) at ``size``."""
    gen = torch.Generator().manual_seed(seed)
    h, w = size
    return (torch.rand(batch, 3, h, w, generator=gen) * 2 - 1,
            torch.rand(batch, pose_channels, h, w, generator=gen),
            torch.rand(batch, pose_channels, h, w, generator=gen))


def generator_metadata(generator: nn.Module, size: tuple[int, int], **extra: Any) -> dict[str, Any]:
    """The metadata an exported file carries: arch, config, frame, inputs; ``extra`` adds to it (the
    heatmap kind and σ, where the weights came from, the input contract)."""
    from . import __version__

    meta: dict[str, Any] = {
        "producer": f"posetransfer {__version__}",
        "arch": getattr(generator, "arch", "") or "generator",
        "config": dict(getattr(generator, "config", {}) or {}),
        "size": [int(size[0]), int(size[1])],
        "pose_channels": int(getattr(generator, "pose_channels", 18)),
        "inputs": list(INPUT_NAMES),
        "output": OUTPUT_NAME,
        "image_range": [-1.0, 1.0],
        "normalisation": "image / 127.5 - 1 (uint8 RGB to [-1, 1]); output back with (x + 1) * 127.5",
    }
    meta.update({k: v for k, v in extra.items() if v is not None})
    return meta


def _check_size(generator: nn.Module, size: tuple[int, int]) -> tuple[int, int]:
    h, w = (int(v) for v in size)
    if h < 8 or w < 8 or h % 4 or w % 4:
        raise ConfigError(f"export size {h}x{w}: height and width must be multiples of 4, at least 8")
    return h, w


def _export_onnx(module: ExportModule, inputs: tuple[torch.Tensor, ...], path: Path, opset: int) -> None:
    from .extras import require_extra

    for package in ("onnx", "onnxscript"):  # the dynamo exporter needs both: say so instead of a deep ImportError
        require_extra(package, "export", "ONNX export")
    batch = torch.export.Dim("batch", min=1)
    torch.onnx.export(module, inputs, str(path), dynamo=True, opset_version=opset,
                      input_names=list(INPUT_NAMES), output_names=[OUTPUT_NAME],
                      dynamic_shapes=tuple({0: batch} for _ in INPUT_NAMES), verbose=False)


def _write_onnx_metadata(path: Path, metadata: dict[str, Any]) -> None:
    import onnx

    from .io import atomic_path

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value if isinstance(value, str) else json.dumps(value)
    model.producer_name = "posetransfer"
    with atomic_path(path) as tmp:
        onnx.save(model, str(tmp))


def _export_torchscript(module: ExportModule, inputs: tuple[torch.Tensor, ...], path: Path,
                        metadata: dict[str, Any]) -> Callable[..., torch.Tensor]:
    """Trace and save; returns the traced module (the check runs it: this package reads no TorchScript
    files besides the shipped Inception network, see tests/robustness)."""
    from .io import atomic_path

    with torch.no_grad():
        traced = torch.jit.trace(module, inputs, check_trace=False)
    with atomic_path(path) as tmp:
        torch.jit.save(traced, str(tmp), _extra_files={TORCHSCRIPT_METADATA: json.dumps(metadata)})

    def run(*tensors: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return traced(*tensors)

    return run


def export_generator(generator: nn.Module, out: str | os.PathLike, fmt: str, size: tuple[int, int], *,
                     metadata: dict[str, Any] | None = None, example_batch: int = 2, check_batch: int | None = 3,
                     opset: int = OPSET, tolerance: float = TOLERANCE) -> ExportReport:
    """Write ``generator`` as ``fmt`` (``onnx`` | ``torchscript``) to ``out`` for frames of ``size`` (H, W).

    ``metadata`` (see :func:`generator_metadata`) is stored in the file. With ``check_batch``, the written
    file is run on a batch of that size (another size than the example, so the dynamic batch axis is
    tested too) and compared with the PyTorch model: a difference above ``tolerance`` is a
    :class:`ModelError` and the file is removed (never a silently wrong export).
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
    size = _check_size(generator, size)
    path = Path(out)
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder; give the output file name (e.g. model.{'onnx' if fmt == 'onnx' else 'pt'})")
    path.parent.mkdir(parents=True, exist_ok=True)
    generator = generator.eval()
    module = ExportModule(generator).eval()   # eval on the wrapper too: the exporter warns on a training module
    pose_channels = int(getattr(generator, "pose_channels", 18))
    inputs = example_inputs(size, example_batch, pose_channels)
    meta = dict(metadata) if metadata is not None else generator_metadata(generator, size)
    start = time.perf_counter()
    if fmt == "onnx":
        from .io import atomic_path

        with atomic_path(path) as tmp:          # the exporter writes a partial file when it fails
            _export_onnx(module, inputs, tmp, opset)
        _write_onnx_metadata(path, meta)
        exported = None
    else:
        exported = _export_torchscript(module, inputs, path, meta)
    report = ExportReport(path=path, format=fmt, size=size, seconds=time.perf_counter() - start, metadata=meta)
    if check_batch:
        check = example_inputs(size, check_batch, pose_channels, seed=1)
        with torch.inference_mode():
            reference = generator(*check)
        got = (exported or load_exported(path))(*check)
        report.max_abs_diff = float((got - reference).abs().max())
        report.checked_batch = check_batch
        if not report.max_abs_diff <= tolerance:
            path.unlink(missing_ok=True)
            raise ModelError(f"{path}: the exported {fmt} model differs from the PyTorch model by "
                             f"{report.max_abs_diff:.2e} (> {tolerance:.0e}); file removed")
    return report


# --------------------------------------------------------------------------------------------------
# Loading exported files
# --------------------------------------------------------------------------------------------------
def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The posetransfer metadata of an exported ``.onnx`` or TorchScript file (values JSON-decoded)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: exported model not found")
    if _is_torchscript(path):
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith(f"extra/{TORCHSCRIPT_METADATA}")]
            if not names:
                raise CheckpointError(f"{path}: TorchScript file without posetransfer metadata")
            return json.loads(archive.read(names[0]).decode("utf-8"))
    try:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:    # protobuf decode errors have no common base class
        raise CheckpointError(f"{path}: not a readable ONNX or TorchScript file ({type(exc).__name__})") from None
    meta: dict[str, Any] = {}
    for entry in model.metadata_props:
        try:
            meta[entry.key] = json.loads(entry.value)
        except ValueError:
            meta[entry.key] = entry.value
    return meta


def _is_torchscript(path: Path) -> bool:
    return zipfile.is_zipfile(path)


class OnnxGenerator:
    """An exported ONNX generator run by ONNX Runtime with the generator call: tensors in, tensor out.

    ``threads`` sets ONNX Runtime's intra-op pool (default: the cores this process may use); the pool
    does not spin (``session.intra_op.allow_spinning = 0``) for the reason the PyTorch side waits
    passively (see :mod:`posetransfer.runtime`): on a busy machine, spinning threads take the cores the
    preempted ones need.
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None, spin: bool = False) -> None:
        from .extras import require_extra

        ort = require_extra("onnxruntime", "export", "running an ONNX model")
        from .cpu import available_cpus

        self.path = Path(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads or available_cpus())
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:   # onnxruntime raises its own exception types per failure
            raise CheckpointError(f"{self.path}: ONNX Runtime cannot load it ({str(exc).splitlines()[0][:200]})"
                                  ) from None
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.metadata = read_metadata(self.path)

    def __call__(self, source_image: torch.Tensor, source_heatmaps: torch.Tensor,
                 target_heatmaps: torch.Tensor) -> torch.Tensor:
        feeds = {name: t.detach().cpu().float().contiguous().numpy()
                 for name, t in zip(self.input_names, (source_image, source_heatmaps, target_heatmaps))}
        return torch.from_numpy(self.session.run(None, feeds)[0])


def load_exported(path: str | os.PathLike, threads: int | None = None) -> OnnxGenerator:
    """An exported ONNX file as a callable ``(source_image, source_heatmaps, target_heatmaps) -> image``
    (ONNX Runtime). TorchScript files are run with ``torch.jit.load(path)``: this package itself reads no
    TorchScript besides its shipped Inception network."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: exported model not found")
    if _is_torchscript(path):
        raise ConfigError(f"{path}: a TorchScript file; run it with torch.jit.load({str(path)!r})")
    return OnnxGenerator(path, threads=threads)


# --------------------------------------------------------------------------------------------------
# ONNX Runtime as the commands' runtime (--runtime onnx)
# --------------------------------------------------------------------------------------------------
class OnnxRunner:
    """An :class:`OnnxGenerator` called the way :class:`posetransfer.inference.InferenceModel` calls its
    runner. The exported graph returns the image only: ``return_extras`` gives a
    :class:`~posetransfer.models.base.GeneratorOutput` without attention masks or flows (the commands refuse
    ``--save-attention`` / ``--save-flows`` with this runtime instead of writing empty figures)."""

    def __init__(self, session: OnnxGenerator) -> None:
        self.session = session

    def __call__(self, source_image: torch.Tensor, source_heatmaps: torch.Tensor, target_heatmaps: torch.Tensor,
                 return_extras: bool = False):
        from .models.base import GeneratorOutput

        image = self.session(source_image, source_heatmaps, target_heatmaps)
        return GeneratorOutput(image=image) if return_extras else image


def cached_onnx_file(source_file: str | os.PathLike, arch: str, size: tuple[int, int],
                     cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the ONNX export of ``source_file`` at ``size`` is kept: ``<cache>/onnx/<arch>-<sha256 of the
    file, 16 hex>-<H>x<W>-opset<N>-<version>.onnx`` (the cache is ``$POSETRANSFER_CACHE_DIR`` or
    ``~/.cache/posetransfer``). Why a cache: exporting takes longer than generating a test set of a few
    hundred images; the key changes with the weights, the frame and the package version."""
    from . import __version__
    from .io import sha256_file
    from .metrics.fid import default_cache_dir

    digest = sha256_file(source_file)[:16]
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / "onnx" / f"{arch or 'generator'}-{digest}-{size[0]}x{size[1]}-opset{OPSET}-{__version__}.onnx"


def onnx_runner(generator: nn.Module, size: tuple[int, int], source_file: str | os.PathLike, *,
                metadata: dict[str, Any] | None = None, threads: int | None = None,
                cache_dir: str | os.PathLike | None = None) -> tuple[OnnxRunner, dict]:
    """ONNX Runtime for ``generator`` (loaded from ``source_file``): exported once into the cache (and checked
    within :data:`TOLERANCE` of PyTorch, see :func:`export_generator`), then loaded from there. Returns the
    runner and the description results files record."""
    from .runtime import thread_settings

    path = cached_onnx_file(source_file, getattr(generator, "arch", ""), size, cache_dir)
    exported = not path.is_file()
    if exported:
        log.info("%s: exporting to ONNX for --runtime onnx (once; kept in %s)", source_file, path)
        export_generator(generator, path, "onnx", size, metadata=metadata, check_batch=2)
    session = OnnxGenerator(path, threads=threads)
    options = session.session.get_session_options()
    description = {"fast": False, "optimized": False, "onnx_file": str(path), "exported_now": exported,
                   **thread_settings(), "threads": int(options.intra_op_num_threads)}
    return OnnxRunner(session), description
