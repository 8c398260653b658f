"""``posetransfer demo``: synthetic data → small PATN trained on CPU → evaluation report (posetransfer.demo)."""
from __future__ import annotations

import argparse

HELP = "generate synthetic people, train a small PATN on CPU (a fixed schedule of steps), evaluate, write a report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder (data/, run/, report.html, metrics.json)")
    parser.add_argument("--steps", type=int, default=None,
                        help="training steps (default: the demo-synth preset's schedule, sized to beat both "
                             "baselines; the time it takes is estimated after the first steps)")
    parser.add_argument("--minutes", type=float, default=None,
                        help="fit the schedule into this training time budget instead of a step count "
                             "(fewer steps on a slow or busy machine)")
    parser.add_argument("--identities", type=int, default=150, help="synthetic people to generate (default 150)")
    parser.add_argument("--eval-pairs", type=int, default=200, help="held-out test pairs to evaluate (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of the demo-synth preset (repeatable)")
    parser.add_argument("--vgg-weights", default=None, metavar="FILE", help="torchvision VGG-19 weights file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..apps.expectations import REAL_PHOTO_ADVICE
    from ..errors import ConfigError

    if args.minutes is not None and args.minutes <= 0:
        raise ConfigError(f"--minutes must be > 0, got {args.minutes}")
    if args.minutes is not None and args.steps is not None:
        raise ConfigError("--steps and --minutes exclude each other: give a step count or a time budget")
    if args.steps is not None and args.steps < 1:
        raise ConfigError(f"--steps must be >= 1, got {args.steps}")
    if args.identities < 4:
        raise ConfigError(f"--identities must be >= 4, got {args.identities}")
    from ..config import check_seed

    check_seed(args.seed)
    from ..demo import run_demo   # torch and the trainer (2 s): after the checks

    metrics = run_demo(args.out, minutes=args.minutes, steps=args.steps, identities=args.identities,
                       eval_pairs=args.eval_pairs, seed=args.seed, overrides=args.overrides,
                       vgg_weights=args.vgg_weights, progress=not args.no_progress)
    out = Path(args.out)
    training, seconds = metrics["training"], metrics["seconds"]
    print(f"trained {training['steps']} steps in {seconds['train']:.0f} s (demo total {seconds['total']:.0f} s); "
          f"held-out identities, {metrics['pairs']} pairs (SSIM higher is better, L1 lower is better):")
    for label, key in (("trained PATN", "model"), ("copy the source", "copy_source"), ("untrained PATN", "untrained")):
        print(f"  {label:16s} SSIM {metrics[key]['ssim']:.4f}  L1 {metrics[key]['l1']:.4f}")
    for line in metrics["verdict"]:
        print(line)
    if metrics["advice"]:
        print(metrics["advice"])
    print(f"report: {out / 'report.html'}")
    print(f"metrics: {out / 'metrics.json'}; samples: {out / 'samples.png'}; model: {out / 'generator.safetensors'}")
    print(f"note: this model was {REAL_PHOTO_ADVICE}")
    return 0
