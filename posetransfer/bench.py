"""Benchmarks: parameters, FLOPs, inference speed, peak memory and training-step time of every generator.

``posetransfer bench`` and the scripts in ``benchmarks/`` are thin wrappers over this module.

How each figure is measured (and why this way):

* **Parameters**: ``sum(p.numel())`` of the generator alone (the papers' tables count G only).
* **FLOPs**: ``torch.utils.flop_counter.FlopCounterMode`` on one image, 2 FLOPs per multiply-add, counting
  convolutions, transposed convolutions and matrix products (not norms, activations or softmax). The
  forward runs with the explicit attention (:func:`posetransfer.models.fast.attention_impl`) because the
  counter sees nothing inside the fused SDPA kernels.
* **Speed**: ``torch.utils.benchmark.Timer.blocked_autorange`` after a warm-up call, repeated
  ``repeats`` times; the median of the repeat medians is reported (the machine is shared, single runs are
  noisy). On CUDA the Timer synchronises the device around every block. "plain" = the generator in eval
  mode under ``torch.no_grad`` (what the official test scripts do); "fast" =
  :func:`posetransfer.models.fast.optimize_for_inference` with its defaults (BN folding, channels_last,
  memory-efficient attention; no compile).
* **Peak memory** (CPU): ``tracemalloc`` cannot see torch's allocations, so each measurement runs in a fresh
  subprocess (``python -m posetransfer.bench``) that builds the model, runs one warm-up forward, resets the
  kernel's RSS high-water mark (``/proc/self/clear_refs``), runs one more forward and reports
  ``VmHWM − VmRSS(before)``: the extra resident memory of one forward (activations, attention matrices,
  kernel workspaces; the weights and inputs are already resident before). The child runs with
  ``MALLOC_MMAP_THRESHOLD_=65536`` so that glibc returns every large freed block to the OS at once and a
  block freed during the warm-up cannot hide the next forward's allocations. The whole process' peak
  (torch runtime + weights + forward) is reported too. CUDA: ``torch.cuda.max_memory_allocated`` minus the
  memory allocated before the forward.
* **Training step**: one step of the trainer's own G and D steps (:mod:`posetransfer.training.step`: G
  forward, discriminator forwards on the fake pairs, G backward + Adam step, discriminator forwards on real
  and pooled detached fake pairs, D backward + Adam step) in train mode, with the ``<arch>-<dataset>``
  preset's discriminators, L1 + adversarial losses (its GAN mode) and image pools. The VGG-based terms
  (perceptual, style, sampling correctness) are left out: the figure is the generator's and discriminators'
  cost (``benchmarks/bench_train_step.py`` times the whole trainer step with them).
* **Data pipeline**: samples/s of :class:`posetransfer.data.dataset.PairDataset` through a ``DataLoader``
  with 0 and 2 workers, after the first batch (worker start-up is reported separately).
"""
from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn

from .devices import resolve_device
from .errors import ModelError
from .kinds import FASHION, find_kind, parse_kind, parse_size
from .models.blocks import count_parameters

log = logging.getLogger(__name__)

#: the sizes of the table: the two datasets' frames (:mod:`posetransfer.kinds`), the scaling study's extra
#: size and GFLA's DeepFashion frame (any name :func:`posetransfer.kinds.parse_size` reads also works)
SIZE_NAMES: tuple[str, ...] = ("market", "deepfashion", "512x352", "256x256")

#: table labels and registry configs of the default rows (registry names not listed get a row of their own)
DEFAULT_SPECS: list[tuple[str, str, dict[str, Any]]] = [
    ("PATN (9 PATBs)", "patn", {}),
    ("APATN (5 APATBs)", "apatn", {}),
    ("PoNA (3 blocks)", "pona", {}),
    ("PoNA (2 blocks)", "pona", {"n_blocks": 2}),
    ("ResNet G (9 blocks)", "resnet", {}),
    ("Part-flow G", "flow", {}),
    ("GFLA", "gfla", {}),
]

#: tiny widths for ``--quick`` (fast smoke runs and tests)
QUICK_OVERRIDES: dict[str, dict[str, Any]] = {
    "patn": {"ngf": 8, "n_blocks": 1},
    "apatn": {"ngf": 8, "n_blocks": 1},
    "pona": {"ngf": 8, "n_blocks": 1},
    "resnet": {"ngf": 8, "n_blocks": 1},
    "flow": {"ngf": 8, "flow_ngf": 8, "max_channels": 32, "flow_max_channels": 32},
    "gfla": {"ngf": 8, "flow_ngf": 8, "max_channels": 32, "flow_max_channels": 32},
}
QUICK_DISCRIMINATOR = {"ndf": 8, "n_blocks": 1}
QUICK_SPECTRAL_DISCRIMINATOR = {"ndf": 8, "max_channels": 16}

#: Published model size and speed on DeepFashion (GPU figures; the tables give no CPU numbers):
#: PATN/APATN TPAMI Table 2 (Zhu et al., "Progressive and Aligned Pose Attention Transfer ...") and PoNA TIP
#: Table II (Li et al., "PoNA: Pose-Guided Non-Local Attention ...", IEEE TIP 2020; Titan Xp); GFLA's 14.04 M as the
#: later papers' tables give it (e.g. PIDM CVPR'23 Table 1), no speed.
PUBLISHED: dict[tuple[str, int | None], dict[str, Any]] = {
    ("patn", 9): {"params_m": 41.36, "speed": "60.61 fps [PATN T2]; 97.37 fps [PoNA T-II]"},
    ("apatn", 5): {"params_m": 16.93, "speed": "58.82 fps [PATN T2]"},
    ("pona", 3): {"params_m": 34.33, "speed": "105.18 fps [PoNA T-II]"},
    ("pona", 2): {"params_m": 23.31, "speed": "179.32 fps [PoNA T-II]"},
    ("gfla", None): {"params_m": 14.04},
}


@dataclass
class ModelSpec:
    label: str
    name: str                       # registry name
    config: dict[str, Any] = field(default_factory=dict)

    def build(self, dataset: str | None) -> nn.Module:
        from .models.registry import build_generator

        return build_generator(self.name, dataset=dataset, **self.config)


def default_specs(quick: bool = False, names: Sequence[str] | None = None) -> list[ModelSpec]:
    """The rows of the table: every registered generator (PoNA also with 2 blocks, as in its Table II)."""
    from .models.registry import generator_names

    registered = generator_names()
    if names:
        unknown = [n for n in names if n not in registered]
        if unknown:
            raise ModelError(f"unknown generator(s) {', '.join(unknown)}; known: {', '.join(registered)}")
    wanted = list(names) if names else registered
    specs = [ModelSpec(label, name, dict(cfg)) for label, name, cfg in DEFAULT_SPECS if name in wanted]
    specs += [ModelSpec(name, name, {}) for name in wanted if name not in {s.name for s in specs}]
    if quick:
        specs = [s for s in specs if not (s.name == "pona" and s.config.get("n_blocks") == 2)]
        for s in specs:
            s.config = {**s.config, **QUICK_OVERRIDES.get(s.name, {"ngf": 8})}
            s.label = f"{s.name} (quick: tiny widths)"
    return specs


def block_count(model: nn.Module) -> int | None:
    att = getattr(model, "att", None)
    return len(att) if att is not None else None


def published_for(model: nn.Module) -> dict[str, Any]:
    """The published figures of this model — none when its size is not the published one (another width,
    or GFLA's Market model beside the DeepFashion figure)."""
    published = PUBLISHED.get((getattr(model, "arch", ""), block_count(model)), {})
    if published and abs(count_parameters(model) / 1e6 - published["params_m"]) > 0.02 * published["params_m"]:
        return {}
    return published


# --------------------------------------------------------------------------------------------------
# Inputs, devices
# --------------------------------------------------------------------------------------------------
def make_inputs(size: tuple[int, int], batch: int, pose_channels: int = 18, device: torch.device | str = "cpu",
                seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random (source image in [-1, 1], source heatmaps, target heatmaps); speed does not depend on content."""
    h, w = size
    gen = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 3, h, w, generator=gen) * 2 - 1
    src = torch.rand(batch, pose_channels, h, w, generator=gen)
    tgt = torch.rand(batch, pose_channels, h, w, generator=gen)
    return image.to(device), src.to(device), tgt.to(device)


def synchronize(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def machine_info() -> dict[str, Any]:
    """What the figures were measured on: load average, cores, threads, torch build."""
    info: dict[str, Any] = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    with contextlib.suppress(OSError):
        info["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    return info


# --------------------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------------------
def count_flops(model: nn.Module, inputs: Sequence[torch.Tensor]) -> int:
    """FLOPs of one forward (2 per multiply-add; convs and matmuls), with the explicit attention."""
    from torch.utils.flop_counter import FlopCounterMode

    from .models.fast import attention_impl

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), attention_impl("explicit"), FlopCounterMode(display=False) as counter:
            model(*inputs)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def time_call(fn: Callable[[], Any], *, min_run_time: float = 1.0, repeats: int = 3, warmup: int = 1,
              device: torch.device | str = "cpu", single_call: bool | None = None) -> dict[str, Any]:
    """Seconds per call of ``fn``: median over ``repeats`` ``blocked_autorange`` runs (after ``warmup`` calls).

    When one warm-up call already takes longer than ``max(min_run_time, 1 s)`` a single call is a stable
    measurement, and ``blocked_autorange`` (which spends one extra untimed call estimating its block size)
    would double the cost: then each repeat is one synchronised ``perf_counter`` timing of one call.
    ``single_call`` forces (True) or forbids (False) that mode.
    """
    from torch.utils.benchmark import Timer

    synchronize(device)
    start = time.perf_counter()
    for _ in range(warmup):
        fn()
    synchronize(device)
    per_call = (time.perf_counter() - start) / warmup if warmup else 0.0
    medians = []
    slow = (warmup > 0 and per_call >= max(min_run_time, 1.0)) if single_call is None else single_call
    for _ in range(max(1, repeats)):
        if slow:
            start = time.perf_counter()
            fn()
            synchronize(device)
            medians.append(time.perf_counter() - start)
        else:
            # num_threads: Timer defaults to ONE thread while timing; keep the process' setting
            measurement = Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads()
                                ).blocked_autorange(min_run_time=min_run_time)
            medians.append(measurement.median)
    return {"median_s": statistics.median(medians), "runs_s": medians,
            "method": "perf_counter, one call per run" if slow else "blocked_autorange"}


def time_interleaved(fns: dict[str, Callable[[], Any]], *, min_run_time: float = 1.0, repeats: int = 3,
                     warmup: int = 1, device: torch.device | str = "cpu") -> dict[str, dict[str, Any]]:
    """:func:`time_call` for several variants, one run of each per round: slow load drifts on a shared
    machine then hit every variant alike instead of biasing whichever ran during a busy minute."""
    runs: dict[str, list[float]] = {name: [] for name in fns}
    methods: dict[str, str] = {}
    for r in range(max(1, repeats)):
        for name, fn in fns.items():
            single = None if r == 0 else methods[name].startswith("perf_counter")
            t = time_call(fn, min_run_time=min_run_time, repeats=1, warmup=warmup if r == 0 else 0, device=device,
                          single_call=single)
            methods.setdefault(name, t["method"])
            runs[name].extend(t["runs_s"])
    return {name: {"median_s": statistics.median(v), "runs_s": v, "method": methods[name]} for name, v in runs.items()}


# ---- memory ---------------------------------------------------------------------------------------
_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}


def _status_kib(field_name: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def peak_memory_of(fn: Callable[[], Any], device: torch.device | str = "cpu", warmup: int = 1) -> dict[str, Any]:
    """Extra memory (MiB) one call of ``fn`` needs at its peak, measured in *this* process (see module doc).

    For a clean figure call it in a fresh process (:func:`measure_memory` does); in a long-lived process
    glibc may reuse memory it kept from earlier work and the figure is a lower bound.
    """
    device = torch.device(device)
    for _ in range(warmup):
        fn()
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        synchronize(device)
        peak = torch.cuda.max_memory_allocated(device)
        return {"method": "cuda max_memory_allocated", "peak_mib": (peak - before) / 2 ** 20,
                "process_peak_mib": peak / 2 ** 20}
    import gc

    gc.collect()
    if _reset_peak_rss():
        before = _status_kib("VmRSS") or 0
        fn()
        peak = _status_kib("VmHWM") or 0
        return {"method": "RSS high-water mark (clear_refs)", "peak_mib": max(0, peak - before) / 1024,
                "process_peak_mib": peak / 1024}
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fn()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is bytes on macOS, KiB on Linux
    return {"method": "ru_maxrss delta (lower bound)", "peak_mib": (after - before) * scale / 2 ** 20,
            "process_peak_mib": after * scale / 2 ** 20}


@dataclass
class MemorySpec:
    """One memory measurement, runnable in a subprocess (plain data so it travels as JSON)."""

    name: str
    config: dict[str, Any]
    dataset: str | None             # the models' dataset settings (market | deepfashion)
    size: tuple[int, int]
    batch: int = 1
    mode: str = "plain"             # "plain" | "fast" | "train"
    attention: str | None = None    # plain mode: force an attention implementation ("explicit", "chunked", ...)
    fast_options: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    threads: int | None = None
    seed: int = 0


def _memory_here(spec: MemorySpec) -> dict[str, Any]:
    from .models.fast import attention_impl, optimize_for_inference

    if spec.threads:
        torch.set_num_threads(spec.threads)
    torch.manual_seed(spec.seed)
    device = resolve_device(spec.device)
    model = ModelSpec(spec.name, spec.name, spec.config).build(spec.dataset).to(device)
    inputs = make_inputs(tuple(spec.size), spec.batch, getattr(model, "pose_channels", 18), device)
    weights_mib = sum(p.numel() * p.element_size() for p in model.parameters()) / 2 ** 20
    if spec.mode == "train":
        step = make_train_step(model, spec.dataset, tuple(spec.size), spec.batch, device, spec.config)
        fn = step
    elif spec.mode == "fast":
        fast = optimize_for_inference(model.eval(), **spec.fast_options)
        del model

        def fn():
            fast(*inputs)
    else:
        model.eval()

        def fn():
            ctx = attention_impl(spec.attention) if spec.attention else contextlib.nullcontext()
            with torch.no_grad(), ctx:
                model(*inputs)
    result = peak_memory_of(fn, device)
    result["weights_mib"] = weights_mib
    return result


def measure_memory(spec: MemorySpec, subprocess_: bool = True, timeout: float = 3600) -> dict[str, Any]:
    """Peak memory of one forward (or training step) described by ``spec``, in a fresh subprocess."""
    if not subprocess_:
        return _memory_here(spec)
    env = {**os.environ, **MALLOC_ENV}
    payload = json.dumps(asdict(spec))
    proc = subprocess.run([sys.executable, "-m", "posetransfer.bench", "--memory-worker", payload],
                          capture_output=True, text=True, env=env, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ModelError(f"memory measurement of {spec.name} {spec.size} failed: {tail}")
    return json.loads(lines[-1])


# ---- training step --------------------------------------------------------------------------------
def train_config(arch: str, dataset: str | None, config: dict[str, Any]) -> dict[str, Any]:
    """The training config the step is measured with: the ``<arch>-<dataset>`` preset (``patn-<dataset>`` for
    an architecture without one) with its VGG-based terms off (see module doc) and, for tiny generators
    (``ngf`` <= 16, ``--quick``), tiny discriminators."""
    from .config import list_presets, load_config

    dataset = parse_kind(dataset or "market").dataset
    name = f"{arch}-{dataset}" if f"{arch}-{dataset}" in list_presets() else f"patn-{dataset}"
    overrides = ["loss.perceptual=0", "loss.style=0", "loss.correctness=0", "loss.regularization=0"]
    cfg = load_config(name, overrides)
    if config.get("ngf", 64) <= 16:
        for disc, spec in cfg["discriminators"].items():
            tiny = QUICK_SPECTRAL_DISCRIMINATOR if spec["name"] == "spectral_resnet" else QUICK_DISCRIMINATOR
            overrides += [f"discriminators.{disc}.{key}={value}" for key, value in tiny.items()]
        cfg = load_config(name, overrides)
    return cfg


def make_train_step(generator: nn.Module, dataset: str | None, size: tuple[int, int], batch: int,
                    device: torch.device | str = "cpu", config: dict[str, Any] | None = None,
                    ) -> Callable[[], float]:
    """A closure doing one training step exactly as the trainer does (:func:`posetransfer.training.step.
    generator_step`, then :func:`~posetransfer.training.step.discriminator_step`) with the preset's
    discriminators, losses and image pools (:func:`train_config`); returns the G loss."""
    from . import distributed as D
    from .losses import ImagePool
    from .training.build import build_discriminators
    from .training.step import GeneratorLoss, TrainStep, discriminator_step, generator_step

    device = torch.device(device)
    cfg = train_config(generator.arch, dataset, config or getattr(generator, "config", {}))
    opt_cfg = cfg["optim"]
    pose_channels = getattr(generator, "pose_channels", 18)
    discs = build_discriminators(cfg, pose_channels)
    for d in discs.modules.values():
        d.to(device).train()
    generator.to(device).train()
    params = list(generator.parameters())
    betas = tuple(opt_cfg["betas"])
    optimizers = {"G": torch.optim.Adam(params, lr=opt_cfg["lr"], betas=betas)}
    for name, d in discs.modules.items():
        optimizers[f"D.{name}"] = torch.optim.Adam(d.parameters(), lr=opt_cfg["lr"] * opt_cfg["d_lr_ratio"],
                                                   betas=betas)
    scalers = {name: torch.amp.GradScaler("cuda", enabled=False) for name in ("G", "D")}
    pools = {name: ImagePool(cfg["loss"]["pool_size"], seed=i) for i, name in enumerate(discs.modules)}
    ts = TrainStep(generator, params, GeneratorLoss(cfg["loss"], image_terms=True, discriminators=discs), discs,
                   discs.modules, optimizers, scalers, pools, opt_cfg["grad_clip"], False, D.DistInfo(device=device))
    source, source_maps, target_maps = make_inputs(size, batch, pose_channels, device)
    target = make_inputs(size, batch, 18, device, seed=1)[0]
    batch_ = {"source_image": source, "source_heatmaps": source_maps, "target_heatmaps": target_maps,
              "target_image": target}

    def step() -> float:
        out, losses = generator_step(ts, batch_, 1, extras=False)
        discriminator_step(ts, batch_, out.image, 1)
        return float(sum(losses.values()).detach())

    return step


# ---- data pipeline --------------------------------------------------------------------------------
def data_throughput(root: str | os.PathLike, workers: int, batch_size: int = 16, batches: int = 10,
                    split: str = "train") -> dict[str, Any]:
    """Samples/s of PairDataset through a DataLoader (steady state, after the first batch)."""
    from torch.utils.data import DataLoader

    from .data.dataset import PairDataset

    dataset = PairDataset(root, split=split)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                        persistent_workers=False, generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    it = iter(loader)
    next(it)
    first = time.perf_counter() - start
    seen, start = 0, time.perf_counter()
    for _ in range(batches):
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            batch = next(it)
        seen += batch["source_image"].shape[0]
    elapsed = time.perf_counter() - start
    del it
    return {"workers": workers, "batch_size": batch_size, "samples": seen, "first_batch_s": first,
            "samples_per_s": seen / elapsed, "dataset_size": len(dataset)}


# --------------------------------------------------------------------------------------------------
# The model table
# --------------------------------------------------------------------------------------------------
@dataclass
class BenchOptions:
    sizes: Sequence[str] = ("market", "deepfashion")
    batches: Sequence[int] = (1, 16)
    device: str = "cpu"
    repeats: int = 3
    min_run_time: float = 1.0
    warmup: int = 1
    memory: str = "subprocess"       # "subprocess" | "inprocess" | "none"
    train: bool = True
    train_batch: int = 4
    fast: bool = True
    threads: int | None = None
    quick: bool = False

    @classmethod
    def quick_options(cls, **overrides) -> "BenchOptions":
        """Smoke-test settings: Market size only, batches 1 and 2, one timing run, memory in-process, 1 thread
        (on a shared, oversubscribed machine 2 OpenMP threads spin-wait and run ~4× slower than 1)."""
        base = dict(sizes=("market",), batches=(1, 2), repeats=1, min_run_time=0.0, warmup=0, memory="inprocess",
                    train_batch=2, quick=True, threads=1)
        base.update(overrides)
        return cls(**base)


def bench_model(spec: ModelSpec, size_name: str, options: BenchOptions) -> dict[str, Any]:
    """One row of the table: ``spec`` at ``size_name`` (one of :data:`SIZE_NAMES`, or ``HxW``)."""
    from .models.fast import optimize_for_inference

    size = parse_size(size_name, where=f"bench size (known: {', '.join(SIZE_NAMES)})", error=ModelError)
    preset = (find_kind(size_name) or FASHION).dataset     # the dataset settings; other sizes: DeepFashion's
    device = resolve_device(options.device)
    torch.manual_seed(0)
    model = spec.build(preset).to(device).eval()
    pose_channels = getattr(model, "pose_channels", 18)
    row: dict[str, Any] = {
        "label": spec.label, "arch": spec.name, "config": spec.config, "size_name": size_name, "size": list(size),
        "device": str(device), "params": count_parameters(model), "blocks": block_count(model),
        "published": published_for(model), "norm": _norm_kind(model), "loadavg_start": machine_info().get("loadavg"),
    }
    row["flops_per_image"] = count_flops(model, make_inputs(size, 1, pose_channels, device))
    fast = optimize_for_inference(model) if options.fast else None
    row["throughput"], row["throughput_fast"], row["time_runs"] = {}, {}, {}
    for batch in options.batches:
        inputs = make_inputs(size, batch, pose_channels, device)

        def plain():
            with torch.no_grad():
                model(*inputs)

        variants = {"plain": plain}
        if fast is not None:
            variants["fast"] = lambda: fast(*inputs)
        timings = time_interleaved(variants, min_run_time=options.min_run_time, repeats=options.repeats,
                                   warmup=options.warmup, device=device)
        row["throughput"][batch] = batch / timings["plain"]["median_s"]
        row["time_runs"][f"plain_b{batch}"] = timings["plain"]["runs_s"]
        if fast is not None:
            row["throughput_fast"][batch] = batch / timings["fast"]["median_s"]
            row["time_runs"][f"fast_b{batch}"] = timings["fast"]["runs_s"]
        inputs = ()  # free this batch's tensors before the next is built (the closures above are done)
    if options.memory != "none":
        in_sub = options.memory == "subprocess"
        common = dict(name=spec.name, config=spec.config, dataset=preset, size=size, batch=1, device=str(device),
                      threads=options.threads or torch.get_num_threads())
        row["memory"] = measure_memory(MemorySpec(mode="plain", **common), subprocess_=in_sub)
        if options.fast:
            row["memory_fast"] = measure_memory(MemorySpec(mode="fast", **common), subprocess_=in_sub)
    if options.train:
        step = make_train_step(copy.deepcopy(model), preset, size, options.train_batch, device, spec.config)
        t = time_call(step, min_run_time=options.min_run_time, repeats=options.repeats, warmup=max(1, options.warmup),
                      device=device)
        row["train_step_s"] = t["median_s"]
        row["train_batch"] = options.train_batch
        row["time_runs"]["train"] = t["runs_s"]
    row["loadavg_end"] = machine_info().get("loadavg")
    return row


def _norm_kind(model: nn.Module) -> str:
    kinds = {type(m).__name__ for m in model.modules() if isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d))}
    return "+".join(sorted(k.replace("Norm2d", "") for k in kinds)) or "none"


def run_bench(specs: Iterable[ModelSpec], options: BenchOptions,
              progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Every spec at every size; returns {"machine": ..., "options": ..., "rows": [...]}."""
    previous_threads = torch.get_num_threads()
    if options.threads:
        torch.set_num_threads(options.threads)
    try:
        start_info = machine_info()
        rows = []
        for size_name in options.sizes:
            for spec in specs:
                if progress:
                    progress(f"{spec.label} @ {size_name}")
                rows.append(bench_model(spec, size_name, options))
        end_info = machine_info()
    finally:
        torch.set_num_threads(previous_threads)
    return {"machine": start_info, "loadavg_end": end_info.get("loadavg"), "options": asdict(options), "rows": rows}


# --------------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------------
def _fmt(x: float | None, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.{digits}f}"


def _pair(a: float | None, b: float | None, digits: int = 2) -> str:
    if b is None:
        return _fmt(a, digits)
    return f"{_fmt(a, digits)} / {_fmt(b, digits)}"


def format_table(result: dict[str, Any]) -> str:
    """The results as a Markdown table in the layout of PATN Table 2 / PoNA Table II, plus our columns."""
    opts = result["options"]
    batches = list(opts["batches"])
    device = result["rows"][0]["device"] if result["rows"] else opts["device"]
    head = ["Method", "Input", "Norm", "Params (M)", "Paper params (M)", "GFLOP / img"]
    head += [f"img/s b{b} plain / fast" for b in batches]
    if opts["memory"] != "none":
        head.append("Peak mem b1 (MiB) plain / fast")
    if opts["train"]:
        head.append(f"Train step G+D (s, b{opts['train_batch']})")
    head.append("Paper speed, DeepFashion, GPU")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for row in result["rows"]:
        pub = row.get("published") or {}
        cells = [row["label"], "×".join(str(s) for s in row["size"]), row["norm"], f"{row['params'] / 1e6:.2f}",
                 f"{pub['params_m']:.2f}" if pub.get("params_m") else "–",
                 _fmt(row["flops_per_image"] / 1e9, 2)]
        for b in batches:
            cells.append(_pair(_get(row["throughput"], b), _get(row.get("throughput_fast") or {}, b)
                               if row.get("throughput_fast") else None))
        if opts["memory"] != "none":
            mem, memf = row.get("memory") or {}, row.get("memory_fast") or {}
            cells.append(_pair(mem.get("peak_mib"), memf.get("peak_mib") if memf else None, 0))
        if opts["train"]:
            cells.append(_fmt(row.get("train_step_s"), 3))
        cells.append(pub.get("speed", "–") if row["size_name"] == "deepfashion" else "–")
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    m = result["machine"]
    load = f"load average {m.get('loadavg')} at start, {result.get('loadavg_end')} at end"
    lines.append("")
    memory = {"subprocess": "Peak memory = extra RSS of one forward of one image, in a fresh process. ",
              "inprocess": "Peak memory = extra RSS of one forward of one image, in the benchmark process "
                           "(a lower bound: memory freed earlier is reused). ",
              "none": ""}[opts["memory"]]
    if device.startswith("cuda") and memory:
        memory = "Peak memory = torch.cuda.max_memory_allocated increase during one forward of one image. "
    lines.append(f"Measured on {device} ({m.get('cpu', '?')}, {m.get('cpu_count')} cores, {m.get('threads')} "
                 f"threads, torch {m.get('torch')}); {load}. img/s = images per second, median of "
                 f"{opts['repeats']} timing runs; \"fast\" = optimize_for_inference() defaults. {memory}"
                 f"Paper speeds are GPU fps on DeepFashion, for context only.")
    return "\n".join(lines) + "\n"


def _get(mapping: dict, batch: int):
    return mapping.get(batch, mapping.get(str(batch)))


# --------------------------------------------------------------------------------------------------
# Subprocess entry point
# --------------------------------------------------------------------------------------------------
def _worker_main(argv: Sequence[str]) -> int:
    if len(argv) != 2 or argv[0] != "--memory-worker":
        print("usage: python -m posetransfer.bench --memory-worker '<json MemorySpec>'", file=sys.stderr)
        return 2
    spec = MemorySpec(**json.loads(argv[1]))
    print(json.dumps(_memory_here(spec)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
