"""The training loop for every posetransfer generator — meant to be read top to bottom.

One iteration: a generator step, then one step of all discriminators (:mod:`posetransfer.training.step`,
which also writes down the losses); for the first stage of the flow models (``train.stage: flow``; the
part-flow model and GFLA) only ``G.flow_parameters()`` are trained, on the flow losses, with no D step.
``train.init_flow`` starts the part-flow model's flow nets from a GFLA generator's.

Everything the loop drives is built first (:func:`posetransfer.training.build.build_training`: data,
models, losses, optimisers, the resume); each checkpoint carries the full training state
(:func:`posetransfer.checkpoint.save_training`), so on CPU ``2 × 5`` steps with a resume in between equal
``10`` steps bit for bit. A non-finite loss stops training with a :class:`TrainingError` naming the step and
the loss, before it can touch the weights or a checkpoint.

Multi-GPU: run under ``torchrun`` (see :mod:`posetransfer.distributed`); ``train.batch_size`` is global.
Speed: the generator's extras (attention maps kept for the image grid) are asked for only on steps that
write an image, unless a loss needs them (flows); the CPU flushes denormal numbers to zero during training;
the device settings are in :mod:`posetransfer.training.build`.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch

from . import checkpoint as ckpt
from . import cpu
from . import distributed as D
from .config import apply_overrides, dump_config, validate
from .errors import CheckpointError, ConfigError, PosetransferError
from .io import atomic_write_text, save_image, write_json
from .logging_utils import Board, Progress, RunLog, sample_grid
from .runlock import holds_run_folder
from .training.build import TrainingParts, build_training, device_settings
from .training.data import EpochLoader, build_dataset
from .training.step import check_weights, discriminator_step, generator_step, learning_rate

log = logging.getLogger("posetransfer.train")

#: steps excluded from the steady-state speed in the summary (first-call allocations, oneDNN kernel choice)
WARMUP_STEPS = 2
#: ``steps`` meaning "until ``max_seconds`` runs out" (the demo's constant-rate first half): no progress total
UNBOUNDED_STEPS = 10 ** 7
#: steps after the warm-up that the up-front time estimate of a run is measured on
ESTIMATE_STEPS = 3


@holds_run_folder   # one trainer per run folder (posetransfer.runlock)
def train(config: dict[str, Any] | None, data: str | Path | None, out: str | Path, *, resume: bool = False,
          overrides: Sequence[str] = (), steps: int | None = None, vgg_weights: str | Path | None = None,
          dataset: torch.utils.data.Dataset | None = None, max_seconds: float | None = None,
          progress: bool = True) -> dict[str, Any]:
    """Train (or, with ``resume``, continue) a run in ``out``; returns the run summary (also ``summary.json``).

    ``config``: a validated config (:func:`posetransfer.config.load_config`, which applies the command
    line's overrides); ``overrides``: applied once, to ``config`` or, with ``resume`` and an existing
    checkpoint, to the stored config used instead. ``steps``: stop after this global step (default
    ``optim.iterations``; the LR schedule always follows ``optim``). ``dataset``: any dataset yielding
    PairDataset items (tests); default ``PairDataset(data, "train", ...)``.
    ``max_seconds``: stop (with a checkpoint) once this session has run that long.
    """
    run = Path(out)
    stored = _find_resume_checkpoint(run) if resume else None
    if stored is not None:
        stored = ckpt.load_checkpoint(stored)
        if config is not None and config.get("name") != stored.state["config"].get("name"):
            log.warning("resuming %s with its stored config %r, not %r", run, stored.state["config"].get("name"),
                        config.get("name"))
        config = validate(apply_overrides(stored.state["config"], overrides), where=str(stored.folder / "state.json"))
        data = data if data is not None else stored.state.get("data_root")
        vgg_weights = vgg_weights if vgg_weights is not None else stored.state.get("vgg_weights")
    else:
        if config is None:
            raise ConfigError(f"{run}: no checkpoint to resume from and no preset given")
        if not resume and ckpt.list_checkpoints(ckpt.checkpoints_root(run)):
            raise ConfigError(f"{run}: already holds checkpoints; pass --resume to continue it or choose another --out")
        config = validate(apply_overrides(config, overrides))
    if dataset is None and data is None:
        raise ConfigError("no dataset given (--data DIR)")

    info = D.setup(config["train"]["device"])
    runlog = RunLog(run, info.is_main)
    package_log = logging.getLogger("posetransfer")
    level = package_log.level
    if not info.is_main:
        package_log.setLevel(logging.ERROR)  # one voice: rank 0 logs for everyone
    try:
        with cpu.flush_denormals():
            return _train(config, data, run, info, stored, steps, vgg_weights, dataset, max_seconds, progress)
    finally:
        runlog.close()
        package_log.setLevel(level)
        D.cleanup(info)


def _train(cfg: dict[str, Any], data: str | Path | None, run: Path, info: D.DistInfo,
           stored: ckpt.Checkpoint | None, steps: int | None, vgg_weights, dataset, max_seconds, progress):
    train_cfg = cfg["train"]
    stop_step = steps if steps is not None else cfg["optim"]["iterations"]
    parts, dataset = _build(cfg, data, run, info, stored, vgg_weights, dataset)
    G, ts, start_step = parts.generator, parts.step, parts.start_step
    board = Board(run, info.is_main)
    bar = Progress(None if stop_step >= UNBOUNDED_STEPS else stop_step, start_step, progress and info.is_main)
    batches = parts.loader.batches()
    last_checkpoint = stored.folder if stored is not None else None
    losses_f: dict[str, float] = {}
    status, error, in_sync = "completed", None, None
    t_start = time.time()
    step = start_step
    t_warm: float | None = None  # end of the first WARMUP_STEPS steps (allocator, oneDNN and cache warm-up)
    try:
        while step < stop_step:
            image_step = (step + 1) % train_cfg["image_every"] == 0 or step + 1 == stop_step
            batch = _to_device(_next_batch(batches), info.device, parts.settings.non_blocking)
            lr = learning_rate(step, cfg["optim"])
            ts.set_lr(lr, cfg["optim"]["d_lr_ratio"])
            out, g_losses = generator_step(ts, batch, step + 1, parts.loss_needs_extras or image_step,
                                           last_checkpoint)
            d_losses = discriminator_step(ts, batch, out.image, step + 1, last_checkpoint)
            step += 1
            if step == start_step + WARMUP_STEPS:
                t_warm = time.time()
            elif t_warm is not None and step == start_step + WARMUP_STEPS + ESTIMATE_STEPS and info.is_main:
                _log_estimate(step, stop_step, (time.time() - t_warm) / ESTIMATE_STEPS, max_seconds,
                              time.time() - t_start)

            # ---- logging, images, checkpoints ----
            is_last = step == stop_step
            out_of_time = max_seconds is not None and D.any_flag(time.time() - t_start > max_seconds, info)
            if step % train_cfg["log_every"] == 0 or is_last or out_of_time:
                losses_f = D.all_reduce_mean({k: float(v.detach()) for k, v in {**g_losses, **d_losses}.items()},
                                             info)
                board.scalars(losses_f, step)
                board.scalars({"lr": lr}, step, prefix="")
                bar.update(losses_f)
            else:
                bar.update()
            if info.is_main and image_step:
                grid = sample_grid(batch, out.image, getattr(out, "attention", None))
                board.image("samples", grid, step)
                save_image(run / "samples" / f"step_{step:08d}.png", grid)
            if step % train_cfg["checkpoint_every"] == 0 or is_last or out_of_time:
                check_weights([G, *parts.discriminators.values()], parts.optimizers, step, info, last_checkpoint)
                last_checkpoint = ckpt.save_training(
                    run, step, parts, cfg, info, data_root=data, losses=losses_f, weights=parts.weights_used,
                    elapsed=_elapsed(stored) + time.time() - t_start, vgg_weights=vgg_weights)
            if out_of_time:
                status = "time-limit"
                break
        in_sync = _finish(parts, info)
    except BaseException as exc:  # the summary must never claim success for a run that stopped
        status, error = ("interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"), str(exc) or repr(exc)
        raise
    finally:
        bar.close()
        board.close()
        summary = _summary(cfg, run, info, parts, dataset, stored, status=status, error=error, step=step,
                           stop_step=stop_step, t_start=t_start, t_warm=t_warm, losses=losses_f, in_sync=in_sync,
                           last_checkpoint=last_checkpoint)
    if info.is_main:
        log.info("%s after %d steps (%.1f s); last checkpoint %s", status, step, summary["session_seconds"],
                 last_checkpoint)
    return summary


# ================================================================================================
# Before and after the loop
# ================================================================================================
def _build(cfg: dict[str, Any], data, run: Path, info: D.DistInfo, stored: ckpt.Checkpoint | None, vgg_weights,
           dataset) -> tuple[TrainingParts, Any]:
    """Write the run's config, choose the device settings and loader workers, build the data and every part."""
    train_cfg = cfg["train"]
    if info.is_main:
        run.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run / "config.yaml", dump_config(cfg))
        log.info("run %s: preset %s, device %s, %d process(es)", run, cfg["name"], info.device, info.world_size)
    settings = device_settings(info.device, train_cfg)
    if settings.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True
    threads = torch.get_num_threads()
    workers = cpu.loader_workers(train_cfg["workers"], info.device.type, threads)
    if info.is_main:
        log.info("CPU: %d intra-op thread(s), OpenMP waiting %s, %d DataLoader worker(s)%s", threads,
                 cpu.wait_policy_effective(), workers,
                 f" (train.workers {train_cfg['workers']}: the model's threads use the other CPUs)"
                 if workers != train_cfg["workers"] else "")
    # data: a fixed, seeded order per epoch (DistributedSampler), split over processes
    if dataset is None:
        dataset = build_dataset(cfg, data, train_cfg["seed"])
    if train_cfg["batch_size"] % info.world_size:
        raise ConfigError(f"train.batch_size {train_cfg['batch_size']} is not divisible by the "
                          f"{info.world_size} processes")
    loader = EpochLoader(dataset, train_cfg["batch_size"] // info.world_size, train_cfg["seed"], info, workers,
                         pin=settings.pin_memory)
    return build_training(cfg, info, settings, loader, stored, vgg_weights), dataset


def _finish(parts: TrainingParts, info: D.DistInfo) -> bool:
    """Collect every process's bad samples; data parallel sanity check: the weights are bit-identical."""
    if info.distributed:
        parts.loader.bad_samples |= set().union(*D.gather_objects(parts.loader.bad_samples, info))
    in_sync = all(D.replicas_identical(m, info) for m in [parts.generator, *parts.discriminators.values()])
    if not in_sync and info.is_main:
        log.error("the processes' weights differ at the end of training (this is a bug)")
    return in_sync


def _elapsed(stored: ckpt.Checkpoint | None) -> float:
    """Training seconds of the sessions before this one."""
    return float(stored.state.get("time_seconds", 0.0)) if stored is not None else 0.0


def _summary(cfg, run: Path, info: D.DistInfo, parts: TrainingParts, dataset, stored, *, status, error, step,
             stop_step, t_start, t_warm, losses, in_sync, last_checkpoint) -> dict[str, Any]:
    """The run summary, written to ``summary.json`` (also for a run that failed: it says so)."""
    start_step = parts.start_step
    bad_samples = sorted(parts.loader.bad_samples | set(getattr(dataset, "bad_samples", set())))
    summary = {
        "status": status,
        "error": error,
        "preset": cfg["name"],
        "steps": step,
        "start_step": start_step,
        "target_steps": stop_step,
        "time_seconds": round(_elapsed(stored) + time.time() - t_start, 3),
        "session_seconds": round(time.time() - t_start, 3),
        "iterations_per_second": round((step - start_step) / max(1e-9, time.time() - t_start), 4),
        # the rate after warm-up: what sizes a time-budgeted schedule (posetransfer demo)
        "steady_iterations_per_second": _steady_rate(step - start_step, t_warm),
        "final_losses": losses,
        "bad_samples": bad_samples,
        "bad_samples_skipped": len(bad_samples),
        "weights": parts.weights_used,
        "device": str(info.device),
        "cpu_threads": torch.get_num_threads(),
        "openmp_waiting": cpu.wait_policy_effective(),
        "loader_workers": parts.loader.workers,
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
    return summary


def _log_estimate(step: int, stop_step: int, seconds_per_step: float, max_seconds: float | None,
                  elapsed: float) -> None:
    """The up-front estimate: the time the remaining steps take at the speed of the steps just after warm-up."""
    if stop_step >= UNBOUNDED_STEPS:
        if max_seconds is not None:
            log.info("%.2f s per step after warm-up: about %d steps in the %.0f s budget", seconds_per_step,
                     step + max(0.0, max_seconds - elapsed) / seconds_per_step, max_seconds)
        return
    left = (stop_step - step) * seconds_per_step
    if max_seconds is not None:
        left = min(left, max(0.0, max_seconds - elapsed))
    log.info("%.2f s per step after warm-up (steps %d-%d): %d steps to go, about %s", seconds_per_step,
             step - ESTIMATE_STEPS + 1, step, stop_step - step, format_duration(left))


def format_duration(seconds: float) -> str:
    """``"4 min 05 s"`` / ``"38 s"``."""
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def _steady_rate(steps_done: int, t_warm: float | None) -> float | None:
    """Steps per second after the first WARMUP_STEPS of a session (None when it ran no further)."""
    if t_warm is None or steps_done <= WARMUP_STEPS:
        return None
    return round((steps_done - WARMUP_STEPS) / max(1e-9, time.time() - t_warm), 4)


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
    if folder is None:
        log.warning("%s: nothing to resume, starting from scratch", run)
    return folder


def _to_device(batch: dict[str, Any], device: torch.device, non_blocking: bool = False) -> dict[str, Any]:
    """Tensors of ``batch`` on ``device``; ``non_blocking`` (from pinned memory) lets the copy overlap."""
    return {k: (v.to(device, non_blocking=non_blocking) if isinstance(v, torch.Tensor) else v)
            for k, v in batch.items()}
