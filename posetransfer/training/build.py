"""Everything a training run is made of, built from its config before the loop starts: the data loader, the
generator and discriminators (seeded, identical on every process), the loss networks, the optimisers and
GradScalers, the image pools; resumed from a checkpoint when there is one; wrapped for DDP / torch.compile.

The build order is part of the contract: a seeded run draws its random numbers in exactly this order (G,
then the discriminators, then the VGG heads), so the same config gives the same weights and losses.

Speed settings (see :mod:`posetransfer.cpu` and the README's performance section): models without instance
norm run in channels_last layout on CPU (``train.channels_last``, auto); on CUDA float16 autocast with a
GradScaler (``train.amp``), ``cudnn.benchmark``, pinned host memory with non-blocking copies, and optionally
``torch.compile`` of the generator (``train.compile``: a backend name).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import checkpoint as ckpt
from .. import distributed as D
from ..errors import CheckpointError, ConfigError, ModelError
from ..losses import ImagePool, PerceptualLoss, StyleLoss
from ..modelfile import read_generator_file
from ..models.registry import build_discriminator, build_generator
from ..seeding import seed_everything
from .data import EpochLoader
from .step import Discriminators, GeneratorLoss, TrainStep

log = logging.getLogger("posetransfer.train")

#: VGG layers of the sampling-correctness loss (GFLA: relu3_1 for 1/4-scale flows, relu4_1 for 1/8)
FLOW_VGG_LAYERS = ("relu3_1", "relu4_1")
IMAGE_CHANNELS = 3


@dataclass(frozen=True)
class DeviceSettings:
    """How the loop uses its device (a pure function of the device and the config, so it can be tested
    without a GPU)."""

    amp: bool               # float16 autocast + GradScaler
    cudnn_benchmark: bool   # let cuDNN pick the fastest kernels for the (fixed) input size
    pin_memory: bool        # page-locked host batches ...
    non_blocking: bool      # ... copied asynchronously to the device
    compile: str | None     # torch.compile backend for the generator, None = eager
    channels_last: bool | None  # None = per model: on CPU when it has no instance norm


def device_settings(device: torch.device, train_cfg: dict[str, Any]) -> DeviceSettings:
    cuda = device.type == "cuda"
    return DeviceSettings(amp=bool(train_cfg["amp"]) and cuda, cudnn_benchmark=cuda, pin_memory=cuda,
                          non_blocking=cuda, compile=train_cfg.get("compile") or None,
                          channels_last=train_cfg.get("channels_last"))


def use_channels_last(module: nn.Module, device: torch.device, setting: bool | None) -> bool:
    """channels_last for ``module``? ``setting`` True/False decides; auto (None) = on CPU, unless the module
    has instance norm (in channels_last every instance norm costs two layout copies: PATN at 256x176 trained
    0.81-0.93x as fast, the batch-norm PATNs 1.06-1.2x faster)."""
    if setting is not None:
        return bool(setting)
    if device.type != "cpu":
        return False
    return not any(isinstance(m, nn.modules.instancenorm._InstanceNorm) for m in module.modules())


def _placed(module: nn.Module, info: D.DistInfo, settings: DeviceSettings, trained: bool = True) -> nn.Module:
    """``module`` on the device in its memory layout; a ``trained`` one with process-group batch norm."""
    module = (D.convert_batchnorm(module, info) if trained else module).to(info.device)
    if use_channels_last(module, info.device, settings.channels_last):
        return module.to(memory_format=torch.channels_last)
    return module


class FlowStage(nn.Module):
    """Adapter so stage 1 of the flow model (``G.predict_flows``) runs through ``forward`` (DDP hooks need it)."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, source_image, source_heatmaps, target_heatmaps, return_extras: bool = True):
        return self.generator.predict_flows(source_image, source_heatmaps, target_heatmaps)


@dataclass
class TrainingParts:
    """A built run: what the loop drives (``step``), what a checkpoint holds (the bare models, optimisers,
    scalers, pools, loader: :class:`posetransfer.checkpoint.Resumable`) and what the summary reports."""

    generator: nn.Module
    discriminators: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    scalers: dict[str, Any]
    pools: dict[str, ImagePool]
    loader: EpochLoader
    step: TrainStep
    settings: DeviceSettings
    weights_used: list[dict]     # where the VGG weights came from
    loss_needs_extras: bool      # the generator's extras are read by a loss (flows), not only by the image grid
    start_step: int = 0


# ================================================================================================
# Models
# ================================================================================================
def build_initial_generator(cfg: dict[str, Any]) -> nn.Module:
    """The config's generator as a seeded run initialises it (the first draws of ``train.seed``)."""
    seed_everything(cfg["train"]["seed"])
    model_cfg = dict(cfg["model"])
    return build_generator(model_cfg.pop("name"), **model_cfg)


def build_discriminators(cfg: dict[str, Any], pose_channels: int) -> Discriminators:
    """The config's discriminators, each with the input channels of what it judges (``input``: ``image`` and
    the conditioning tensors)."""
    channels = {"image": IMAGE_CHANNELS, "source_image": IMAGE_CHANNELS,
                "source_heatmaps": pose_channels, "target_heatmaps": pose_channels}
    discs = Discriminators({}, {}, [])
    for name, spec in cfg["discriminators"].items():
        spec = dict(spec)
        arch, inputs = spec.pop("name"), spec.pop("input")
        discs.modules[name] = build_discriminator(arch, input_nc=sum(channels[t] for t in inputs), **spec)
        discs.inputs[name] = list(inputs)
        discs.logits.append(not spec.get("use_sigmoid", False))
    return discs


def _build_models(cfg: dict[str, Any], fresh: bool, flow_stage: bool) -> tuple[nn.Module, Discriminators]:
    loss_cfg, train_cfg = cfg["loss"], cfg["train"]
    G = build_initial_generator(cfg)
    if train_cfg["init"] and fresh:
        init_generator(G, train_cfg["init"])
    if train_cfg["init_flow"] and fresh:
        init_flow_nets(G, train_cfg["init_flow"])
    discs = Discriminators({}, {}, [])
    if not flow_stage and loss_cfg["gan"] > 0:
        discs = build_discriminators(cfg, G.pose_channels)
    if flow_stage:
        if not hasattr(G, "flow_parameters") or not hasattr(G, "predict_flows"):
            raise ConfigError(f"train.stage 'flow' needs a flow generator; {G.arch!r} has no flow_parameters()")
        if loss_cfg["correctness"] <= 0 and loss_cfg["regularization"] <= 0:
            raise ConfigError("train.stage 'flow' needs loss.correctness > 0 (nothing to train otherwise)")
        flow_ids = {id(p) for p in G.flow_parameters()}
        for p in G.parameters():
            p.requires_grad_(id(p) in flow_ids)
    return G, discs


def init_generator(G: nn.Module, path: str) -> None:
    """Start from another run's generator (e.g. the flow model's stage-1 checkpoint); same architecture."""
    arch, _, state, _, _ = read_generator_file(ckpt.resolve_generator_file(path))
    if arch != G.arch:
        raise CheckpointError(f"{path}: train.init holds a {arch!r} generator, not {G.arch!r}")
    try:
        G.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the configured model ({str(exc).splitlines()[0]})") from None
    log.info("generator initialised from %s", path)


def init_flow_nets(G: nn.Module, path: str) -> None:
    """Start the part-flow model's per-part flow nets from a GFLA generator's flow net (same layout)."""
    if not hasattr(G, "init_flow_nets_from_gfla"):
        raise ConfigError(f"train.init_flow initialises the part-flow model ('flow'), not {G.arch!r}")
    arch, _, state, _, _ = read_generator_file(ckpt.resolve_generator_file(path))
    if arch != "gfla":
        raise CheckpointError(f"{path}: train.init_flow needs a 'gfla' generator, this file holds {arch!r}")
    try:
        G.init_flow_nets_from_gfla(state, where=str(path))
    except ModelError as exc:
        raise CheckpointError(str(exc)) from None
    log.info("part flow nets initialised from the GFLA flow net of %s", path)


# ================================================================================================
# Losses
# ================================================================================================
def build_loss(cfg: dict[str, Any], flow_stage: bool, discs: Discriminators, info: D.DistInfo,
               settings: DeviceSettings, vgg_weights: str | Path | None = None) -> tuple[GeneratorLoss, list[dict]]:
    """The generator loss with its VGG heads (only those a weighted term needs); also where their weights
    came from."""
    from ..weights.vgg import VGGFeatures

    loss_cfg = cfg["loss"]
    vgg_layers = (loss_cfg["perceptual_layers"] if loss_cfg["perceptual"] > 0 else []) + \
                 (loss_cfg["style_layers"] if loss_cfg["style"] > 0 else [])
    weights_used: list[dict] = []
    loss = GeneratorLoss(loss_cfg, image_terms=not flow_stage, discriminators=discs)
    if vgg_layers and not flow_stage:
        loss.vgg = _placed(VGGFeatures(vgg_layers, weights=vgg_weights), info, settings, trained=False)
        weights_used.append(loss.vgg.source.as_dict())
        loss.perceptual = PerceptualLoss(loss.vgg, loss_cfg["perceptual_layers"]) if loss_cfg["perceptual"] > 0 \
            else None
        loss.style = StyleLoss(loss.vgg, loss_cfg["style_layers"]) if loss_cfg["style"] > 0 else None
    if loss_cfg["correctness"] > 0:
        loss.vgg_flow = _placed(VGGFeatures(FLOW_VGG_LAYERS, weights=vgg_weights), info, settings,
                                 trained=False)
        if not weights_used:
            weights_used.append(loss.vgg_flow.source.as_dict())
    if not flow_stage and not (loss_cfg["l1"] > 0 or loss.vgg is not None or discs.modules
                               or loss_cfg["correctness"] > 0):
        raise ConfigError("every generator loss weight is 0: nothing to train")
    return loss, weights_used


# ================================================================================================
# The whole run
# ================================================================================================
def build_training(cfg: dict[str, Any], info: D.DistInfo, settings: DeviceSettings, loader: EpochLoader,
                   stored: ckpt.Checkpoint | None = None, vgg_weights: str | Path | None = None) -> TrainingParts:
    """Models, losses, optimisers, scalers and pools for ``cfg`` on ``info``'s device, resumed from ``stored``
    (then ``start_step`` is its step), wrapped for DDP (and torch.compile) as the loop calls them."""
    opt_cfg, loss_cfg, seed = cfg["optim"], cfg["loss"], cfg["train"]["seed"]
    flow_stage = cfg["train"]["stage"] == "flow"
    G, discs = _build_models(cfg, stored is None, flow_stage)
    G = _placed(G, info, settings)
    discs.modules = {name: _placed(d, info, settings) for name, d in discs.modules.items()}
    G.train()
    for d in discs.modules.values():
        d.train()
    loss, weights_used = build_loss(cfg, flow_stage, discs, info, settings, vgg_weights)
    if stored is not None and stored.state.get("weights") and weights_used and \
            stored.state["weights"][0].get("location") != weights_used[0].get("location"):
        log.warning("the perceptual VGG differs from the one this run started with (%s, now %s)",
                    stored.state["weights"][0].get("location"), weights_used[0].get("location"))
    pools = {name: ImagePool(loss_cfg["pool_size"], seed=seed * 1000 + 10 * info.rank + i)
             for i, name in enumerate(discs.modules)}
    # Adam; the learning rate (linear to 0 after decay_start) is set by the loop, a pure function of the step
    betas = tuple(opt_cfg["betas"])
    g_params = [p for p in G.parameters() if p.requires_grad]
    optimizers = {"G": torch.optim.Adam(g_params, lr=opt_cfg["lr"], betas=betas)}
    for name, d in discs.modules.items():
        optimizers[f"D.{name}"] = torch.optim.Adam(d.parameters(), lr=opt_cfg["lr"] * opt_cfg["d_lr_ratio"],
                                                   betas=betas)
    scalers = {name: torch.amp.GradScaler("cuda", enabled=settings.amp) for name in ("G", "D")}
    parts = TrainingParts(G, discs.modules, optimizers, scalers, pools, loader, step=None, settings=settings,
                          weights_used=weights_used, loss_needs_extras=flow_stage or loss_cfg["correctness"] > 0
                          or loss_cfg["regularization"] > 0)
    seed_everything(seed + 1 + info.rank)  # the training-time randomness (dropout) differs per rank
    if stored is not None:
        parts.start_step = ckpt.restore_training(stored, parts, info, seed)
        if info.is_main:
            log.info("resumed from %s (step %d)", stored.folder, parts.start_step)
    # DDP wrappers (the G step calls the discriminators' bare modules: no gradient sync needed there)
    G_train: nn.Module = D.wrap(FlowStage(G) if flow_stage else G, info, find_unused_parameters=flow_stage)
    if settings.compile:
        G_train = torch.compile(G_train, backend=settings.compile)
    parts.step = TrainStep(G_train, g_params, loss, discs, {name: D.wrap(d, info) for name, d in discs.modules.items()},
                           optimizers, scalers, pools, opt_cfg["grad_clip"], settings.amp, info)
    return parts
