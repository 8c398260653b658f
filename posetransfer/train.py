"""The training loop for every posetransfer generator — meant to be read top to bottom.

One iteration (PATN ``models/PATN.py`` order): a generator step, then one step of all discriminators.

    G step   fake = G(P_c, S_c, S_t)
             L_G = λ1·L1(fake, P_t) + λ2·perceptual(fake, P_t) [+ style] + α·adversarial_G(D_i(fake ‖ cond_i))
                   [+ sampling correctness / flow regularisation for flow models]
    D step   L_D = α·adversarial_D(D_i(P_t ‖ cond_i), D_i(pool_i(fake ‖ cond_i)))

For the first stage of the flow models (``train.stage: flow``; the part-flow model and GFLA) only
``G.flow_parameters()`` are trained, with the sampling-correctness and affine-regularisation losses on
``G.predict_flows(...)``; there is no D step. ``train.init_flow`` starts the part-flow model's flow nets
from a GFLA generator's (e.g. converted released weights).

Everything a resumed run needs to continue *exactly* (weights, Adam moments, RNG states, the data order
position, the image pools; the learning rate is a function of the step) goes into each checkpoint, so on CPU
``2 × 5`` steps with a resume in between equal ``10`` steps bit for bit. A non-finite loss stops training
with a :class:`TrainingError` naming the step and the loss, before it can touch the weights or a checkpoint.

Multi-GPU: run under ``torchrun`` (see :mod:`posetransfer.distributed`); ``train.batch_size`` is global.
"""
from __future__ import annotations

import logging
import math
import random
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from . import checkpoint as ckpt
from . import distributed as D
from .config import apply_overrides, dump_config, validate
from .data.prepare import find_split_files
from .errors import CheckpointError, ConfigError, ModelError, PosetransferError, TrainingError
from .io import atomic_write_text, save_image, write_json
from .logging_utils import Board, Progress, RunLog, sample_grid
from .losses import ImagePool, PerceptualLoss, StyleLoss, discriminator_adversarial, generator_adversarial, l1
from .modelfile import InputContract, read_generator_file
from .models.registry import build_discriminator, build_generator
from .runlock import holds_run_folder

log = logging.getLogger("posetransfer.train")

#: VGG layers of the sampling-correctness loss (GFLA: relu3_1 for 1/4-scale flows, relu4_1 for 1/8)
FLOW_VGG_LAYERS = ("relu3_1", "relu4_1")
IMAGE_CHANNELS = 3
#: steps excluded from the steady-state speed in the summary (first-call allocations, oneDNN kernel choice)
WARMUP_STEPS = 2
#: ``steps`` meaning "until ``max_seconds`` runs out" (the demo's constant-rate first half): no progress total
UNBOUNDED_STEPS = 10 ** 7


# ================================================================================================
# The loop
# ================================================================================================
@holds_run_folder   # one trainer per run folder (posetransfer.runlock)
def train(config: dict[str, Any] | None, data: str | Path | None, out: str | Path, *, resume: bool = False,
          overrides: Sequence[str] = (), steps: int | None = None, vgg_weights: str | Path | None = None,
          dataset: torch.utils.data.Dataset | None = None, max_seconds: float | None = None,
          progress: bool = True) -> dict[str, Any]:
    """Train (or, with ``resume``, continue) a run in ``out``; returns the run summary (also ``summary.json``).

    ``config``: a validated config (:func:`posetransfer.config.load_config`); with ``resume`` and an existing
    checkpoint the stored config is used instead, with ``overrides`` applied on top. ``steps``: stop after this
    global step (default ``optim.iterations``; the LR schedule always follows ``optim``). ``dataset``: any
    dataset yielding PairDataset items (tests); default ``PairDataset(data, "train", ...)``.
    ``max_seconds``: stop (with a checkpoint) once this session has run that long.
    """
    run = Path(out)
    resume_from = _find_resume_checkpoint(run) if resume else None
    if resume_from is not None:
        stored = ckpt.load_checkpoint(resume_from)
        if config is not None and config.get("name") != stored.state["config"].get("name"):
            log.warning("resuming %s with its stored config %r, not %r", run, stored.state["config"].get("name"),
                        config.get("name"))
        config = validate(apply_overrides(stored.state["config"], overrides), where=str(resume_from / "state.json"))
        data = data if data is not None else stored.state.get("data_root")
        vgg_weights = vgg_weights if vgg_weights is not None else stored.state.get("vgg_weights")
    else:
        stored = None
        if config is None:   # one error, no "starting from scratch" warning before it: nothing will start
            raise ConfigError(f"{run}: no checkpoint to resume from; start the run with --preset NAME --data DIR")
        if resume:
            log.warning("%s: nothing to resume, starting from scratch", run)
        if not resume and ckpt.list_checkpoints(ckpt.checkpoints_root(run)):
            raise ConfigError(f"{run}: already holds checkpoints; pass --resume to continue it or choose another --out")
        config = validate(apply_overrides(config, overrides))
    if dataset is None and data is None:
        raise ConfigError("no dataset given (--data DIR)")
    if dataset is None:   # a wrong --data stops here, before config.yaml and train.log exist: no run folder left
        find_split_files(data, "train")

    info = D.setup(config["train"]["device"])
    runlog = RunLog(run, info.is_main)
    package_log = logging.getLogger("posetransfer")
    level = package_log.level
    if not info.is_main:
        package_log.setLevel(logging.ERROR)  # one voice: rank 0 logs for everyone
    try:
        return _train(config, data, run, info, stored, steps, vgg_weights, dataset, max_seconds, progress)
    finally:
        runlog.close()
        package_log.setLevel(level)
        D.cleanup(info)


def _train(cfg: dict[str, Any], data: str | Path | None, run: Path, info: D.DistInfo,
           stored: ckpt.Checkpoint | None, steps: int | None, vgg_weights, dataset, max_seconds, progress):
    opt_cfg, loss_cfg, train_cfg = cfg["optim"], cfg["loss"], cfg["train"]
    device, seed = info.device, train_cfg["seed"]
    flow_stage = train_cfg["stage"] == "flow"
    stop_step = steps if steps is not None else opt_cfg["iterations"]
    if info.is_main:
        run.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run / "config.yaml", dump_config(cfg))
        log.info("run %s: preset %s, device %s, %d process(es)", run, cfg["name"], device, info.world_size)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    use_amp = bool(train_cfg["amp"]) and device.type == "cuda"

    # ---- data: a fixed, seeded order per epoch (DistributedSampler), split over processes --------------
    if dataset is None:
        dataset = _build_dataset(cfg, data, seed)
    if train_cfg["batch_size"] % info.world_size:
        raise ConfigError(f"train.batch_size {train_cfg['batch_size']} is not divisible by the "
                          f"{info.world_size} processes")
    local_batch = train_cfg["batch_size"] // info.world_size
    loader = EpochLoader(dataset, local_batch, seed, info, train_cfg["workers"], pin=device.type == "cuda")

    # ---- models: built identically on every rank (same seed), then DDP ---------------------------------
    _seed_everything(seed)
    model_cfg = dict(cfg["model"])
    G = build_generator(model_cfg.pop("name"), **model_cfg)
    if train_cfg["init"] and stored is None:
        _init_generator(G, train_cfg["init"])
    if train_cfg["init_flow"] and stored is None:
        _init_flow_nets(G, train_cfg["init_flow"])
    discs: dict[str, nn.Module] = {}
    disc_inputs: dict[str, list[str]] = {}
    disc_logits: list[bool] = []
    if not flow_stage and loss_cfg["gan"] > 0:
        channels = {"image": IMAGE_CHANNELS, "source_image": IMAGE_CHANNELS,
                    "source_heatmaps": G.pose_channels, "target_heatmaps": G.pose_channels}
        for name, spec in cfg["discriminators"].items():
            spec = dict(spec)
            arch, inputs = spec.pop("name"), spec.pop("input")
            discs[name] = build_discriminator(arch, input_nc=sum(channels[t] for t in inputs), **spec)
            disc_inputs[name] = list(inputs)
            disc_logits.append(not spec.get("use_sigmoid", False))
    if flow_stage:
        if not hasattr(G, "flow_parameters") or not hasattr(G, "predict_flows"):
            raise ConfigError(f"train.stage 'flow' needs a flow generator; {G.arch!r} has no flow_parameters()")
        if loss_cfg["correctness"] <= 0 and loss_cfg["regularization"] <= 0:
            raise ConfigError("train.stage 'flow' needs loss.correctness > 0 (nothing to train otherwise)")
        flow_ids = {id(p) for p in G.flow_parameters()}
        for p in G.parameters():
            p.requires_grad_(id(p) in flow_ids)
    G = D.convert_batchnorm(G, info).to(device)
    discs = {name: D.convert_batchnorm(d, info).to(device) for name, d in discs.items()}
    G.train()
    for d in discs.values():
        d.train()

    # ---- losses ----------------------------------------------------------------------------------------
    vgg_layers = (loss_cfg["perceptual_layers"] if loss_cfg["perceptual"] > 0 else []) + \
                 (loss_cfg["style_layers"] if loss_cfg["style"] > 0 else [])
    weights_used: list[dict] = []
    vgg = perceptual = style = vgg_flow = None
    from .weights.vgg import VGGFeatures

    if vgg_layers and not flow_stage:
        vgg = VGGFeatures(vgg_layers, weights=vgg_weights).to(device)
        weights_used.append(vgg.source.as_dict())
        perceptual = PerceptualLoss(vgg, loss_cfg["perceptual_layers"]) if loss_cfg["perceptual"] > 0 else None
        style = StyleLoss(vgg, loss_cfg["style_layers"]) if loss_cfg["style"] > 0 else None
    flow_losses = None
    if loss_cfg["correctness"] > 0 or loss_cfg["regularization"] > 0:
        from .models import flow_losses
    if loss_cfg["correctness"] > 0:
        vgg_flow = VGGFeatures(FLOW_VGG_LAYERS, weights=vgg_weights).to(device)
        if not weights_used:
            weights_used.append(vgg_flow.source.as_dict())
    if stored is not None and stored.state.get("weights") and weights_used and \
            stored.state["weights"][0].get("location") != weights_used[0].get("location"):
        log.warning("the perceptual VGG differs from the one this run started with (%s, now %s)",
                    stored.state["weights"][0].get("location"), weights_used[0].get("location"))
    pools = {name: ImagePool(loss_cfg["pool_size"], seed=seed * 1000 + 10 * info.rank + i)
             for i, name in enumerate(discs)}
    gan_mode, gan_form = loss_cfg["gan_mode"], loss_cfg["gan_form"]
    if not flow_stage and not (loss_cfg["l1"] > 0 or vgg is not None or discs or loss_cfg["correctness"] > 0):
        raise ConfigError("every generator loss weight is 0: nothing to train")

    # ---- optimisers (Adam, lr linear to 0 after decay_start: a pure function of the step) ---------------
    betas = tuple(opt_cfg["betas"])
    g_params = [p for p in G.parameters() if p.requires_grad]
    optimizers = {"G": torch.optim.Adam(g_params, lr=opt_cfg["lr"], betas=betas)}
    for name, d in discs.items():
        optimizers[f"D.{name}"] = torch.optim.Adam(d.parameters(), lr=opt_cfg["lr"] * opt_cfg["d_lr_ratio"],
                                                   betas=betas)
    scalers = {name: torch.amp.GradScaler("cuda", enabled=use_amp) for name in ("G", "D")}

    # ---- resume ----------------------------------------------------------------------------------------
    start_step, elapsed_before = 0, 0.0
    _seed_everything(seed + 1 + info.rank)  # the training-time randomness (dropout) differs per rank
    if stored is not None:
        start_step = _restore(stored, G, discs, optimizers, scalers, pools, loader, info, seed)
        elapsed_before = float(stored.state.get("time_seconds", 0.0))
        if info.is_main:
            log.info("resumed from %s (step %d)", stored.folder, start_step)

    # ---- DDP wrappers (the G step calls the discriminators' modules directly: no gradient sync needed) --
    G_train: nn.Module = FlowStage(G) if flow_stage else G
    G_train = D.wrap(G_train, info, find_unused_parameters=flow_stage)
    D_train = {name: D.wrap(d, info) for name, d in discs.items()}

    board = Board(run, info.is_main)
    bar = Progress(None if stop_step >= UNBOUNDED_STEPS else stop_step, start_step, progress and info.is_main)
    batches = loader.batches()
    last_checkpoint = stored.folder if stored is not None else None
    losses_f: dict[str, float] = {}
    status, error, in_sync = "completed", None, None
    t_start = time.time()
    step = start_step
    t_warm: float | None = None  # end of the first WARMUP_STEPS steps (allocator, oneDNN and cache warm-up)
    try:
        while step < stop_step:
            batch = _to_device(_next_batch(batches), device)
            src, src_maps = batch["source_image"], batch["source_heatmaps"]
            tgt, tgt_maps = batch["target_image"], batch["target_heatmaps"]
            lr = learning_rate(step, opt_cfg)
            _set_lr(optimizers["G"], lr)
            for name in discs:
                _set_lr(optimizers[f"D.{name}"], lr * opt_cfg["d_lr_ratio"])
            autocast = torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp)

            # ---- generator step ----
            for d in discs.values():
                d.requires_grad_(False)
            with autocast:
                out = G_train(src, src_maps, tgt_maps, return_extras=True)
                fake = out.image
                g_losses: dict[str, torch.Tensor] = {}
                if flow_stage:
                    if loss_cfg["correctness"] > 0:
                        g_losses["correctness"] = loss_cfg["correctness"] * flow_losses.sampling_correctness_loss(
                            vgg_flow, src, tgt, out)
                    if loss_cfg["regularization"] > 0:
                        g_losses["regularization"] = loss_cfg["regularization"] * \
                            flow_losses.affine_regularization_loss(out)
                else:
                    if loss_cfg["l1"] > 0:
                        g_losses["l1"] = loss_cfg["l1"] * l1(fake, tgt)
                    if vgg is not None:
                        fake_features = vgg(fake)
                        with torch.no_grad():
                            real_features = vgg(tgt)
                        if perceptual is not None:
                            g_losses["perceptual"] = loss_cfg["perceptual"] * perceptual(
                                fake, tgt, real_features, fake_features)
                        if style is not None:
                            g_losses["style"] = loss_cfg["style"] * style(fake, tgt, real_features, fake_features)
                    if discs:
                        scores = [discs[name](_cat(disc_inputs[name], fake, batch)) for name in discs]
                        g_losses["gan"] = loss_cfg["gan"] * generator_adversarial(
                            scores, gan_mode, gan_form, disc_logits)
                    if loss_cfg["correctness"] > 0:
                        g_losses["correctness"] = loss_cfg["correctness"] * flow_losses.sampling_correctness_loss(
                            vgg_flow, src, tgt, out)
                    if loss_cfg["regularization"] > 0 and out.flows:
                        g_losses["regularization"] = loss_cfg["regularization"] * \
                            flow_losses.affine_regularization_loss(out)
                loss_g = sum(g_losses.values())
            _check_finite(g_losses, step + 1, info, last_checkpoint)
            optimizers["G"].zero_grad(set_to_none=True)
            scalers["G"].scale(loss_g).backward()
            norm = _clip(scalers["G"], optimizers["G"], g_params, opt_cfg["grad_clip"])
            _check_gradient(norm, "generator", step + 1, info, last_checkpoint)
            scalers["G"].step(optimizers["G"])
            scalers["G"].update()

            # ---- discriminator step (all discriminators at once; each gets only its own terms' gradient) ----
            d_losses: dict[str, torch.Tensor] = {}
            if discs:
                for d in discs.values():
                    d.requires_grad_(True)
                fake_d = fake.detach()
                with autocast:
                    real_scores, fake_scores = [], []
                    for name in discs:
                        real_scores.append(D_train[name](_cat(disc_inputs[name], tgt, batch)))
                        fake_in = pools[name].query(_cat(disc_inputs[name], fake_d, batch))
                        fake_scores.append(D_train[name](fake_in))
                    d_losses["D"] = loss_cfg["gan"] * discriminator_adversarial(
                        real_scores, fake_scores, gan_mode, gan_form, disc_logits)
                _check_finite(d_losses, step + 1, info, last_checkpoint)
                for name in discs:
                    optimizers[f"D.{name}"].zero_grad(set_to_none=True)
                scalers["D"].scale(d_losses["D"]).backward()
                for name, d in discs.items():
                    norm = _clip(scalers["D"], optimizers[f"D.{name}"], list(d.parameters()), opt_cfg["grad_clip"])
                    _check_gradient(norm, f"discriminator {name!r}", step + 1, info, last_checkpoint)
                for name in discs:
                    scalers["D"].step(optimizers[f"D.{name}"])
                scalers["D"].update()

            step += 1
            if step == start_step + WARMUP_STEPS:
                t_warm = time.time()

            # ---- logging, images, checkpoints ----
            is_last = step == stop_step
            out_of_time = max_seconds is not None and D.any_flag(time.time() - t_start > max_seconds, info)
            if step % train_cfg["log_every"] == 0 or is_last or out_of_time:
                losses_f = {k: float(v.detach()) for k, v in {**g_losses, **d_losses}.items()}
                losses_f = D.all_reduce_mean(losses_f, info)
                board.scalars(losses_f, step)
                board.scalars({"lr": lr}, step, prefix="")
                bar.update(losses_f)
            else:
                bar.update()
            if info.is_main and (step % train_cfg["image_every"] == 0 or is_last):
                grid = sample_grid(batch, fake, getattr(out, "attention", None))
                board.image("samples", grid, step)
                save_image(run / "samples" / f"step_{step:08d}.png", grid)
            if step % train_cfg["checkpoint_every"] == 0 or is_last or out_of_time:
                _check_weights([G, *discs.values()], optimizers, step, info, last_checkpoint)
                last_checkpoint = _save(run, step, G, discs, optimizers, scalers, pools, loader, cfg, data, info,
                                        elapsed_before + time.time() - t_start, losses_f, weights_used,
                                        vgg_weights)
            if out_of_time:
                status = "time-limit"
                break
        if info.distributed:
            loader.bad_samples |= set().union(*D.gather_objects(loader.bad_samples, info))
        # data parallel sanity check: every process must end with bit-identical weights
        in_sync = all(D.replicas_identical(m, info) for m in [G, *discs.values()])
        if not in_sync and info.is_main:
            log.error("the processes' weights differ at the end of training (this is a bug)")
    except BaseException as exc:  # the summary must never claim success for a run that stopped
        status, error = ("interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"), str(exc) or repr(exc)
        raise
    finally:
        bar.close()
        board.close()
        bad_samples = sorted(loader.bad_samples | set(getattr(dataset, "bad_samples", set())))
        summary = {
            "status": status,
            "error": error,
            "preset": cfg["name"],
            "steps": step,
            "start_step": start_step,
            "target_steps": stop_step,
            "time_seconds": round(elapsed_before + time.time() - t_start, 3),
            "session_seconds": round(time.time() - t_start, 3),
            "iterations_per_second": round((step - start_step) / max(1e-9, time.time() - t_start), 4),
            # the rate after warm-up: what sizes a time-budgeted schedule (posetransfer demo)
            "steady_iterations_per_second": _steady_rate(step - start_step, t_warm),
            "final_losses": losses_f,
            "bad_samples": bad_samples,
            "bad_samples_skipped": len(bad_samples),
            "weights": weights_used,
            "device": str(device),
            "world_size": info.world_size,
            "replicas_identical": in_sync,
            "batch_size": cfg["train"]["batch_size"],
            "checkpoint": str(last_checkpoint) if last_checkpoint else None,
            "resumed_from": str(stored.folder) if stored is not None else None,
        }
        if info.is_main:
            try:
                write_json(run / "summary.json", summary)
            except PosetransferError as exc:
                if error is None:
                    raise
                log.warning("%s", exc)   # e.g. the full disk that stopped a checkpoint: keep that error
    if info.is_main:
        log.info("%s after %d steps (%.1f s); last checkpoint %s", status, step, summary["session_seconds"],
                 last_checkpoint)
    return summary


# ================================================================================================
# Pieces the loop uses
# ================================================================================================
def _steady_rate(steps_done: int, t_warm: float | None) -> float | None:
    """Steps per second after the first WARMUP_STEPS of a session (None when it ran no further)."""
    if t_warm is None or steps_done <= WARMUP_STEPS:
        return None
    return round((steps_done - WARMUP_STEPS) / max(1e-9, time.time() - t_warm), 4)


def learning_rate(step: int, optim: dict[str, Any]) -> float:
    """Constant, then linear to 0: lr · (1 − max(0, step − decay_start) / (iterations − decay_start))."""
    lr, start, total = optim["lr"], optim["decay_start"], optim["iterations"]
    if total <= start or step < start:
        return lr
    return lr * max(0.0, 1.0 - (step - start) / (total - start))


class FlowStage(nn.Module):
    """Adapter so stage 1 of the flow model (``G.predict_flows``) runs through ``forward`` (DDP hooks need it)."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, source_image, source_heatmaps, target_heatmaps, return_extras: bool = True):
        return self.generator.predict_flows(source_image, source_heatmaps, target_heatmaps)


class EpochLoader:
    """Batches in a seeded order per epoch (``DistributedSampler`` partition), resumable at any batch.

    ``position`` counts the batches of the current epoch already handed out; a resumed run restarts the
    same epoch's plan at that position, so it sees exactly the batches the uninterrupted run would.
    ``bad_samples`` collects the files the dataset skipped, also those found inside DataLoader workers
    (each batch carries its worker's list; the main dataset learns them before the next epoch's workers start,
    so those do not read — or warn about — a known bad file again).
    """

    def __init__(self, dataset, batch_size: int, seed: int, info: D.DistInfo, workers: int, pin: bool) -> None:
        self.dataset, self.batch_size, self.seed, self.info = dataset, batch_size, seed, info
        self.workers, self.pin = workers, pin
        self.epoch, self.position = 0, 0
        self.bad_samples: set[str] = set(getattr(dataset, "bad_samples", set()))
        if len(self.plan(0)) == 0:
            raise ConfigError(f"the dataset has {len(dataset)} pairs, fewer than one batch of "
                              f"{batch_size * info.world_size}")

    def plan(self, epoch: int) -> list[list[int]]:
        from torch.utils.data import DistributedSampler

        sampler = DistributedSampler(self.dataset, num_replicas=self.info.world_size, rank=self.info.rank,
                                     shuffle=True, seed=self.seed, drop_last=True)
        sampler.set_epoch(epoch)
        indices = list(sampler)
        n = len(indices) // self.batch_size
        return [indices[i * self.batch_size:(i + 1) * self.batch_size] for i in range(n)]

    def batches(self) -> Iterator[dict[str, Any]]:
        from torch.utils.data import DataLoader

        while True:
            plan = self.plan(self.epoch)
            if hasattr(self.dataset, "set_epoch"):
                self.dataset.set_epoch(self.epoch)
            # own generator: creating a loader must not consume the global RNG (resume would diverge)
            generator = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
            loader = DataLoader(_Tracked(self.dataset), batch_sampler=plan[self.position:],
                                num_workers=self.workers, pin_memory=self.pin, generator=generator,
                                collate_fn=_collate_tracked, persistent_workers=False)
            for batch in loader:
                self.position += 1
                self._learn(batch.pop("bad_samples"))
                yield batch
            self.epoch, self.position = self.epoch + 1, 0

    def _learn(self, names: set[str]) -> None:
        new = names - self.bad_samples
        if new:
            self.bad_samples |= new
            known = getattr(self.dataset, "bad_samples", None)
            if isinstance(known, set):
                known |= new

    def state(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "position": self.position, "batch_size": self.batch_size,
                "world_size": self.info.world_size, "pairs": len(self.dataset),
                "bad_samples": sorted(self.bad_samples)}

    def restore(self, state: dict[str, Any]) -> None:
        self._learn(set(state.get("bad_samples", [])))
        if (state.get("pairs"), state.get("batch_size"), state.get("world_size")) != (
                len(self.dataset), self.batch_size, self.info.world_size):
            log.warning("data order cannot be resumed exactly (dataset size, batch size or process count "
                        "changed); continuing at the start of epoch %d", state.get("epoch", 0) + 1)
            self.epoch, self.position = int(state.get("epoch", 0)) + 1, 0
            return
        self.epoch, self.position = int(state["epoch"]), int(state["position"])


class _Tracked(torch.utils.data.Dataset):
    """Returns (item, the dataset's bad files so far) so that discoveries in workers reach the trainer."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        item = self.dataset[index]
        return item, frozenset(getattr(self.dataset, "bad_samples", ()))


def _collate_tracked(samples):
    from torch.utils.data import default_collate

    batch = default_collate([item for item, _ in samples])
    batch["bad_samples"] = set().union(*(bad for _, bad in samples))
    return batch


def _build_dataset(cfg: dict[str, Any], data: str | Path, seed: int):
    from .data.dataset import PairDataset

    ds_cfg = cfg["dataset"]
    dataset = PairDataset(data, "train", size=tuple(ds_cfg["size"]), heatmap_mode=ds_cfg["heatmap"],
                          sigma=ds_cfg["sigma"], augment=ds_cfg["augment"], on_bad_sample=ds_cfg["on_bad_sample"],
                          seed=seed)
    kind = {"market": "market", "fashion": "fashion"}.get(str(getattr(dataset, "kind", "")), None)
    if kind is not None and kind != ds_cfg["kind"]:
        log.warning("dataset %s is %s but the preset %s is for %s", data, kind, cfg["name"], ds_cfg["kind"])
    return dataset


def _init_generator(G: nn.Module, path: str) -> None:
    """Start from another run's generator (e.g. the flow model's stage-1 checkpoint); same architecture."""
    arch, _, state, _, _ = read_generator_file(ckpt.resolve_generator_file(path))
    if arch != G.arch:
        raise CheckpointError(f"{path}: train.init holds a {arch!r} generator, not {G.arch!r}")
    try:
        G.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the configured model ({str(exc).splitlines()[0]})") from None
    log.info("generator initialised from %s", path)


def _init_flow_nets(G: nn.Module, path: str) -> None:
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


def _next_batch(batches: Iterator[dict[str, Any]]) -> dict[str, Any]:
    """The next batch; an error raised in a DataLoader worker comes back as one line naming the file."""
    try:
        return next(batches)
    except PosetransferError as exc:
        text = str(exc)
        if "Traceback" in text:  # DataLoader's re-raise: "Caught DataError in DataLoader worker ... Traceback"
            last = [line for line in text.strip().splitlines() if line.strip()][-1]
            text = last.split(": ", 1)[1] if last.startswith("posetransfer.errors.") else last
            raise type(exc)(text) from None
        raise


def _find_resume_checkpoint(run: Path) -> Path | None:
    root = ckpt.checkpoints_root(run)
    folder = ckpt.latest_valid(root)
    if folder is None and ckpt.list_checkpoints(root):
        raise CheckpointError(f"{root}: every checkpoint is corrupt or incomplete; cannot resume")
    return folder


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


def _cat(inputs: Sequence[str], image: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
    """A discriminator's input: the judged image concatenated with its conditioning tensors."""
    return torch.cat([image if name == "image" else batch[name].to(image.dtype) for name in inputs], 1)


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def _clip(scaler, optimizer, params: list[torch.Tensor], max_norm: float | None) -> torch.Tensor | None:
    """Clip to ``max_norm`` (if set); return the total gradient norm to check, or None under AMP, where the
    GradScaler itself skips the steps whose gradients overflowed."""
    if scaler.is_enabled():
        if max_norm:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, max_norm)
        return None
    if max_norm:
        return torch.nn.utils.clip_grad_norm_(params, max_norm)
    grads = [p.grad.detach() for p in params if p.grad is not None]
    if not grads:
        return None
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))


def _check_gradient(norm: torch.Tensor | None, which: str, step: int, info: D.DistInfo, last_checkpoint) -> None:
    """A finite loss can still have a NaN/inf gradient; stop before the optimizer writes it into the weights
    (under AMP the GradScaler skips such steps instead)."""
    if norm is None:
        return
    bad_here = not bool(torch.isfinite(norm))
    if not D.any_flag(bad_here, info):
        return
    where = "last good checkpoint: " + (str(last_checkpoint) if last_checkpoint else "none (no checkpoint yet)")
    raise TrainingError(f"step {step}: non-finite gradient in the {which} update (loss was finite); "
                        f"training stopped, {where}")


def _check_weights(models: Sequence[nn.Module], optimizers: dict[str, torch.optim.Optimizer], step: int,
                   info: D.DistInfo, last_checkpoint) -> None:
    """Before a checkpoint is committed: every weight, buffer and optimizer moment is finite. A finite loss and
    gradient can still give a non-finite update (an extreme learning rate); such a checkpoint would be cited
    as the last good one."""
    bad = None
    for model in models:
        for name, value in [*model.named_parameters(), *model.named_buffers()]:
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                bad = f"{getattr(model, 'arch', type(model).__name__)} {name}"
                break
        if bad:
            break
    for opt_name, optimizer in optimizers.items():
        for state in ([] if bad else optimizer.state.values()):
            if any(torch.is_tensor(v) and v.is_floating_point() and not bool(torch.isfinite(v).all())
                   for v in state.values()):
                bad = f"optimizer {opt_name} state"
                break
    if not D.any_flag(bad is not None, info):
        return
    where = "last good checkpoint: " + (str(last_checkpoint) if last_checkpoint else "none (no checkpoint yet)")
    what = f"{bad} holds non-finite values" if bad else "non-finite weights on another process"
    raise TrainingError(f"step {step}: {what} after the update; no checkpoint written, training stopped, {where}")


def _check_finite(losses: dict[str, torch.Tensor], step: int, info: D.DistInfo, last_checkpoint) -> None:
    """Stop on NaN/inf before the backward pass: the weights and the last checkpoint stay good."""
    values = torch.stack([v.detach().float() for v in losses.values()])
    bad_here = not bool(torch.isfinite(values).all())
    if not D.any_flag(bad_here, info):
        return
    where = "last good checkpoint: " + (str(last_checkpoint) if last_checkpoint else "none (no checkpoint yet)")
    if bad_here:
        name, value = next((k, float(v.detach())) for k, v in losses.items() if not math.isfinite(float(v.detach())))
        raise TrainingError(f"step {step}: loss {name!r} is {value} (non-finite); training stopped, {where}")
    raise TrainingError(f"step {step}: a non-finite loss on another process; training stopped, {where}")


# ================================================================================================
# Checkpoint state
# ================================================================================================
def _numpy_state_to_json(state: tuple) -> list:
    name, keys, pos, has_gauss, cached = state
    return [name, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)]


def _numpy_state_from_json(state: list) -> tuple:
    name, keys, pos, has_gauss, cached = state
    return (name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached)


def _rank_state(pools: dict[str, ImagePool], info: D.DistInfo) -> dict[str, Any]:
    """This process's random state and image pools (each rank has its own)."""
    state = {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if info.device.type == "cuda" else [],
        "numpy": _numpy_state_to_json(np.random.get_state()),
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
        "pools": {},
    }
    for name, pool in pools.items():
        scalars, images = pool.state_dict()
        state["pools"][name] = (scalars, images)
    return state


def _save(run, step, G, discs, optimizers, scalers, pools, loader, cfg, data, info, elapsed, losses, weights_used,
          vgg_weights=None):
    ranks = D.gather_objects(_rank_state(pools, info), info)   # every rank takes part; rank 0 writes
    if not info.is_main:
        return None
    tensors: dict[str, torch.Tensor] = {}
    optim_json = {}
    for name, optimizer in optimizers.items():
        optim_json[name], optim_tensors = ckpt.optimizer_to_parts(optimizer, f"optim/{name}")
        tensors.update(optim_tensors)
    rank_json = []
    for r, state in enumerate(ranks):
        tensors[f"rng/torch/{r}"] = state["torch"]
        for i, cuda_state in enumerate(state["cuda"]):
            tensors[f"rng/cuda/{r}/{i}"] = cuda_state
        pools_json = {}
        for name, (scalars, images) in state["pools"].items():
            pools_json[name] = scalars
            if images is not None:
                tensors[f"pool/{name}/{r}"] = images
        rank_json.append({"numpy": state["numpy"], "python": state["python"], "pools": pools_json,
                          "cuda_devices": len(state["cuda"])})
    state = {
        "config": cfg,
        "data_root": str(data) if data is not None else None,
        "data": loader.state(),
        "optimizers": optim_json,
        "scalers": {name: scaler.state_dict() for name, scaler in scalers.items()},
        "ranks": rank_json,
        "time_seconds": round(elapsed, 3),
        "losses": losses,
        "weights": weights_used,
        "vgg_weights": str(vgg_weights) if vgg_weights is not None else None,   # a resumed run uses the same
    }
    # the generator file says what it was trained on: the dataset's frame and pose maps, this run and step, and
    # whether the people were synthetic (the applications then say what to expect of it on real photos)
    provenance = {"trained": str(Path(run).resolve()), "step": int(step)}
    if data is not None and _synthetic_dataset(data):
        provenance["synthetic"] = True
    contract = InputContract.for_dataset(cfg["dataset"], provenance)
    folder = ckpt.save_checkpoint(run, step, G, discs, tensors, state, keep_last=cfg["train"]["keep_last"],
                                  contract=contract)
    return folder


def _synthetic_dataset(data: str | Path) -> bool:
    from .data.prepare import read_dataset_json

    return read_dataset_json(data).get("synthetic") is True


def _restore(stored: ckpt.Checkpoint, G, discs, optimizers, scalers, pools, loader, info, seed) -> int:
    """Load weights, optimiser moments, RNG, pools and data position; returns the step to continue from."""
    where = stored.folder
    if stored.generator_arch != G.arch:
        raise CheckpointError(f"{where}: holds a {stored.generator_arch!r} generator, the config asks for {G.arch!r}")
    try:
        G.load_state_dict(stored.generator_state, strict=True)
        for name, d in discs.items():
            if name not in stored.discriminators:
                raise CheckpointError(f"{where}: no weights for discriminator {name!r}")
            d.load_state_dict(stored.discriminators[name]["state"], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{where}: weights do not fit the configured models ({str(exc).splitlines()[0]})") from None
    state, tensors = stored.state, stored.tensors
    for name, optimizer in optimizers.items():
        if name in state.get("optimizers", {}):
            ckpt.optimizer_from_parts(optimizer, f"optim/{name}", state["optimizers"][name], tensors)
        else:
            log.warning("%s: no optimizer state for %s; it starts fresh", where, name)
    for name, scaler in scalers.items():
        if name in state.get("scalers", {}) and scaler.is_enabled():
            scaler.load_state_dict(state["scalers"][name])
    loader.restore(state.get("data", {}))
    ranks = state.get("ranks", [])
    if len(ranks) == info.world_size:
        mine = ranks[info.rank]
        torch.set_rng_state(tensors[f"rng/torch/{info.rank}"])
        if info.device.type == "cuda" and mine.get("cuda_devices"):
            cuda_states = [tensors[f"rng/cuda/{info.rank}/{i}"] for i in range(mine["cuda_devices"])]
            if len(cuda_states) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(cuda_states)
        np.random.set_state(_numpy_state_from_json(mine["numpy"]))
        version, internal, gauss = mine["python"]
        random.setstate((version, tuple(internal), gauss))
        for name, pool in pools.items():
            if name in mine.get("pools", {}):
                pool.load_state_dict(mine["pools"][name], tensors.get(f"pool/{name}/{info.rank}"), info.device)
    else:
        log.warning("%s was saved by %d process(es), now %d: random state re-seeded (not bit-exact)",
                    where, len(ranks), info.world_size)
        _seed_everything(seed + 7919 * stored.step + info.rank)
    return stored.step
