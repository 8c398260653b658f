"""``posetransfer demo``: synthetic people → a small PATN trained on CPU → evaluated on unseen people → report.

What it shows in under ten minutes on two CPU cores, offline: the whole pipeline works and really learns.

1. Generate a synthetic Market-size dataset (128×64 people, identity-disjoint train/test splits).
2. Train the ``demo-synth`` preset (a narrow PATN with tiny discriminators; the paper's losses) on a fixed,
   seeded schedule of steps: the preset's ``optim.iterations`` (sized so that the model clearly beats
   copying the source on held-out people), or ``steps``; the learning rate decays linearly to 0 over the
   second half. The result does not depend on how busy the machine is, only the time does: the trainer
   logs an estimate measured on the first steps and the progress bar shows the ETA. ``minutes`` instead
   fits the schedule into a time budget (first half at the constant rate, the decay sized to the speed
   measured meanwhile) — on a busy machine that means fewer steps, and the report says so.
3. Evaluate on held-out identities (test pairs): the trained model, the same network untrained, and the
   "copy the source image" baseline, with PATN's SSIM and L1.
4. Write ``metrics.json`` (with a verdict per baseline and metric, and, when the model did not beat one,
   why and what to run), ``samples.png`` (source | target pose | untrained | trained | target),
   ``report.html``, ``generator.safetensors`` (with the input contract of the run: 128×64, Gaussian σ 6,
   the run and step) and the run folder (checkpoints, TensorBoard logs).

The evaluation loads the trained model the way every inference command does
(:func:`posetransfer.inference.load_model`), so its frame and pose maps are the file's input contract.
"""
from __future__ import annotations

import html
import logging
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .errors import DataError

log = logging.getLogger("posetransfer.demo")

PRESET = "demo-synth"
#: what the trained model is compared with, as the report names them
BASELINES = {"copy_source": "copying the source image", "untrained": "the untrained network"}
METRICS = {"ssim": ("SSIM", "higher"), "l1": ("L1", "lower")}


def default_steps() -> int:
    """The demo's schedule length: the demo-synth preset's ``optim.iterations`` (see its notes for how it was
    sized)."""
    from .config import load_config

    return int(load_config(PRESET)["optim"]["iterations"])


def run_demo(out: str | Path, minutes: float | None = None, steps: int | None = None, identities: int = 150,
             poses: int = 8, eval_pairs: int = 200, seed: int = 0, overrides: Sequence[str] = (),
             vgg_weights: str | Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Run the demo into ``out``; returns the metrics dict (also written to ``out/metrics.json``).

    ``steps`` (default :func:`default_steps`) is a fixed schedule; ``minutes`` a time budget instead.
    """
    from .config import load_config
    from .data.synth import generate_dataset
    from .inference import InferenceModel, load_model
    from .io import write_json
    from .modelfile import save_generator
    from .training.build import build_initial_generator

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()

    # 1. data (reused when a previous demo already made it)
    data = out / "data"
    if not (data / "dataset.json").is_file():
        log.info("generating %d synthetic identities x %d poses into %s", identities, poses, data)
        generate_dataset(data, size="market", identities=identities, poses=poses, seed=seed,
                         workers=max(1, min(2, torch.get_num_threads())))
    t_data = time.time() - t0

    # 2. training: a fixed number of steps, or a time budget. For the budget, the first half runs at the
    #    constant learning rate until half the time is spent (which also measures this machine's real speed),
    #    then the linear decay to 0 is stretched over the steps that fit in the other half, so the schedule
    #    ends on time whatever the CPU.
    config = load_config(PRESET, list(overrides) + [f"train.seed={seed}"])
    planned = default_steps()
    run = out / "run"
    from .checkpoint import checkpoints_root, list_checkpoints

    if list_checkpoints(checkpoints_root(run)):
        raise DataError(f"{run}: holds a previous demo run; choose another --out or delete it")
    summary = _train_schedule(config, data, run, minutes, planned if steps is None else steps, vgg_weights, progress)
    t_train = time.time() - t0 - t_data

    # 3. evaluation on held-out identities, in the frame and with the pose maps of the trained file's contract
    trained = load_model(run)
    # the demo network exactly as the trainer initialised it (same seed, same build)
    untrained = InferenceModel(build_initial_generator(config).eval(), trained.contract, name="untrained")
    pairs_ds = _test_pairs(data, trained, eval_pairs, seed)
    results, examples = evaluate_models(pairs_ds, {"model": trained, "untrained": untrained})
    t_eval = time.time() - t0 - t_data - t_train

    # 4. report
    beats = {base: beats_baseline(results["model"], results[base]) for base in BASELINES}
    metrics = {
        "model": results["model"],
        "copy_source": results["copy_source"],
        "untrained": results["untrained"],
        "pairs": len(pairs_ds),
        "protocol": "PATN SSIM (gaussian, sigma 1.5) and L1 in [-1, 1] units on 128x64 held-out identities",
        "training": {"steps": summary["steps"], "planned_steps": planned, "status": summary["status"],
                     "schedule": "time budget" if minutes is not None else "fixed steps",
                     "seconds": summary["time_seconds"], "final_losses": summary["final_losses"],
                     "weights": summary["weights"], "cpu_threads": summary.get("cpu_threads"),
                     "openmp_waiting": summary.get("openmp_waiting")},
        "seconds": {"data": round(t_data, 1), "train": round(t_train, 1), "eval": round(t_eval, 1),
                    "total": round(time.time() - t0, 1)},
        # per metric: better than every baseline; per baseline and metric: "beats"
        "beats_baselines": {metric: all(beats[base][metric] for base in BASELINES) for metric in METRICS},
        "beats": beats,
    }
    metrics.update(verdict(metrics, out))
    save_generator(trained.generator, out / "generator.safetensors", trained.contract)
    from .io import save_image

    save_image(out / "samples.png", examples)
    write_json(out / "metrics.json", metrics)
    _write_html(out / "report.html", metrics, config)
    return metrics


def _train_schedule(config: dict[str, Any], data: Path, run: Path, minutes: float | None, steps: int, vgg_weights,
                    progress: bool) -> dict[str, Any]:
    """Train ``steps`` (a fixed schedule), or fit the schedule into ``minutes``: the first half runs at the
    constant learning rate until half the time is spent (which also measures this machine's real speed), then
    the linear decay to 0 is stretched over the steps that fit in the other half, so it ends on time whatever
    the CPU. Returns the trainer's summary of the last session."""
    from .train import UNBOUNDED_STEPS, train

    if minutes is None:
        log.info("training %d steps (fixed, seeded schedule; the trainer estimates the time after its first "
                 "steps)", steps)
        schedule = [f"optim.iterations={steps}", f"optim.decay_start={steps // 2}"]
        return train(config, data, run, overrides=schedule, steps=steps, vgg_weights=vgg_weights,
                     progress=progress)
    budget = minutes * 60.0
    constant = [f"optim.iterations={UNBOUNDED_STEPS}", f"optim.decay_start={UNBOUNDED_STEPS}"]
    first = train(config, data, run, overrides=constant, steps=UNBOUNDED_STEPS, vgg_weights=vgg_weights,
                  max_seconds=budget / 2, progress=progress)
    done = first["steps"]
    rate = first["steady_iterations_per_second"] or first["iterations_per_second"]
    # the second session pays the same start-up (VGG, data, resume) as the first: time outside its steps
    startup = max(0.0, first["session_seconds"] - done / rate)
    remaining = budget - first["session_seconds"]
    total = done + max(1, int(rate * (remaining - startup) * 0.97))
    log.info("%.2f it/s after warm-up: %d steps at the constant rate, decay to 0 over %d more "
             "(%.1f-minute budget)", rate, done, total - done, minutes)
    schedule = [f"optim.iterations={total}", f"optim.decay_start={done}"]
    return train(None, data, run, resume=True, overrides=schedule, steps=total, vgg_weights=vgg_weights,
                 max_seconds=max(1.0, remaining), progress=progress)


def beats_baseline(model: dict[str, float], baseline: dict[str, float]) -> dict[str, bool]:
    """{metric: the model is strictly better} (SSIM higher, L1 lower)."""
    return {metric: bool(model[metric] > baseline[metric]) if direction == "higher"
            else bool(model[metric] < baseline[metric]) for metric, (_, direction) in METRICS.items()}


def verdict(metrics: dict[str, Any], out: Path) -> dict[str, Any]:
    """Plain sentences for the report: whether the model beat each baseline, and if not why and what to run.

    Returns ``{"verdict": [one line per baseline], "passed": bool, "advice": str | None}``.
    """
    training = metrics["training"]
    steps, planned = training["steps"], training["planned_steps"]
    lines = []
    for base, label in BASELINES.items():
        parts = []
        for metric, (name, direction) in METRICS.items():
            won = metrics["beats"][base][metric]
            sign = (">" if won else "<=") if direction == "higher" else ("<" if won else ">=")
            parts.append(f"{name} {metrics['model'][metric]:.4f} {sign} {metrics[base][metric]:.4f}")
        won_all = all(metrics["beats"][base].values())
        lost = [METRICS[m][0] for m, won in metrics["beats"][base].items() if not won]
        head = f"beats {label}" if won_all else f"does NOT beat {label} on {' and '.join(lost)}"
        lines.append(f"the trained PATN {head} ({', '.join(parts)})")
    passed = all(all(per.values()) for per in metrics["beats"].values())
    advice = None
    if not passed:
        fresh = f"{out}-{planned}" if steps < planned else f"{out}-seed1"
        if steps < planned:
            why = "the --minutes budget fit no more on this machine" if training["schedule"] == "time budget" \
                else "--steps asked for that"
            advice = (f"too few steps: the model trained {steps} steps ({why}); the demo is sized for {planned} "
                      f"steps, where it clearly beats both baselines. Run: posetransfer demo --out {fresh}")
        else:
            advice = (f"not expected after {steps} steps of the default schedule (changed --set, --identities or "
                      f"--seed?). Try more steps or another seed: posetransfer demo --out {fresh} "
                      f"--steps {2 * steps} --seed 1")
    return {"verdict": lines, "passed": passed, "advice": advice}


def _test_pairs(data: Path, model, limit: int, seed: int):
    """A seeded sample of the test pairs (held-out identities), with ``model``'s frame and pose maps."""
    from .data.dataset import PairDataset

    ds = PairDataset(data, "test", size=model.frame, heatmap_mode=model.heatmap, sigma=model.sigma)
    if len(ds.pairs) > limit:
        rng = np.random.default_rng(seed)
        keep = sorted(rng.choice(len(ds.pairs), size=limit, replace=False).tolist())
        ds.pairs = [ds.pairs[i] for i in keep]
    if not ds.pairs:
        raise DataError(f"{data}: no test pairs to evaluate on")
    return ds


@torch.no_grad()
def evaluate_models(dataset, models: dict[str, Any], batch_size: int = 16,
                    examples: int = 6) -> tuple[dict[str, dict[str, float]], np.ndarray]:
    """SSIM / L1 (PATN protocol, uint8 images; :class:`posetransfer.evaluation.Scorer`, as ``posetransfer
    eval`` scores files) of each model (:class:`posetransfer.inference.InferenceModel`) and of copying the
    source; plus an example grid."""
    from .evaluation import Scorer
    from .io import tensor_range_to_image
    from .logging_utils import pose_images

    scorers = {name: Scorer("patn", "market", metrics=list(METRICS)) for name in [*models, "copy_source"]}
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    grid_rows: list[np.ndarray] = []
    for batch in loader:
        outputs = {name: model.generate_tensors(batch["source_image"], batch["source_heatmaps"],
                                                batch["target_heatmaps"]).cpu()
                   for name, model in models.items()}
        outputs["copy_source"] = batch["source_image"]
        targets = [tensor_range_to_image(t.numpy()) for t in batch["target_image"]]
        for name, images in outputs.items():
            scorers[name].add([(i, tensor_range_to_image(image.float().numpy()), target, None)
                               for i, (image, target) in enumerate(zip(images, targets))])
        if len(grid_rows) < examples:
            n = min(examples - len(grid_rows), len(targets))
            poses = pose_images(batch, tuple(batch["target_image"].shape[2:]), n)
            for i in range(n):
                cells = [tensor_range_to_image(batch["source_image"][i].numpy()),
                         poses[i].permute(1, 2, 0).numpy(),
                         *[tensor_range_to_image(outputs[name][i].float().numpy()) for name in models
                           if name == "untrained"],
                         *[tensor_range_to_image(outputs[name][i].float().numpy()) for name in models
                           if name != "untrained"],
                         targets[i]]
                grid_rows.append(np.concatenate([np.pad(c, ((2, 2), (2, 2), (0, 0)), constant_values=255)
                                                 for c in cells], axis=1))
    results = {name: {metric: scorer.finish()[0][metric] for metric in METRICS} for name, scorer in scorers.items()}
    return results, np.concatenate(grid_rows, axis=0)


def _write_html(path: Path, metrics: dict[str, Any], config: dict[str, Any]) -> None:
    from .io import atomic_write_text

    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{metrics[key]['ssim']:.4f}</td><td>{metrics[key]['l1']:.4f}</td></tr>"
        for name, key in (("trained PATN", "model"), ("copy the source image", "copy_source"),
                          ("untrained PATN", "untrained")))
    training = metrics["training"]
    text = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>posetransfer demo</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3em .8em;text-align:right}}td:first-child{{text-align:left}}</style></head>
<body><h1>posetransfer demo: PATN on synthetic people</h1>
<p>A small PATN (preset <code>{html.escape(config['name'])}</code>) trained for {training['steps']} steps
of a {html.escape(training['schedule'])} schedule ({training['seconds']:.0f} s on
{html.escape(str(training.get('cpu_threads') or torch.get_num_threads()))} CPU threads), evaluated on
{metrics['pairs']} pairs of <b>identities never seen in training</b>.</p>
<table><tr><th>method</th><th>SSIM &uarr;</th><th>L1 &darr;</th></tr>{rows}</table>
<h2 style="color:{'#070' if metrics['passed'] else '#a00'}">{'The model learned: it beats both baselines'
 if metrics['passed'] else 'The model did not beat every baseline'}</h2>
<ul>{''.join(f"<li>{html.escape(line)}</li>" for line in metrics['verdict'])}</ul>
{f"<p><b>Why and what to run:</b> {html.escape(metrics['advice'])}</p>" if metrics['advice'] else ""}
<p>Rows below: source | target pose | untrained | trained | target.</p>
<p><img src="samples.png" alt="examples" style="image-rendering:pixelated;width:100%"></p>
<p>Files: <code>metrics.json</code>, <code>generator.safetensors</code> (load with
<code>posetransfer.load_model</code> or <code>posetransfer.load_generator</code>; it carries its input contract),
<code>run/</code> (checkpoints, TensorBoard logs).</p>
</body></html>
"""
    atomic_write_text(path, text)
