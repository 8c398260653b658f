"""``posetransfer train``: train a generator from a preset (thin wrapper over :func:`posetransfer.train.train`)."""
from __future__ import annotations

import argparse

HELP = "train a model from a preset (PATN, APATN, PoNA, flow); multi-GPU with torchrun"

EPILOG = """examples:
  posetransfer train --preset patn-market --data data/market --out runs/patn-market
  posetransfer train --preset patn-market --data data/market --out runs/patn-market --set optim.lr=1e-4 --set train.batch_size=16
  posetransfer train --out runs/patn-market --resume                       # continue from the newest valid checkpoint
  torchrun --nproc_per_node=4 -m posetransfer train --preset patn-market --data data/market --out runs/patn-market
presets: posetransfer train --list-presets"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("--preset", help="preset name (see --list-presets) or a YAML config file")
    parser.add_argument("--data", help="dataset root in the PATN layout (train/, annotation and pairs CSVs)")
    parser.add_argument("--out", help="run folder: checkpoints/, tensorboard/, samples/, summary.json")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, value parsed as YAML (repeatable), e.g. optim.lr=1e-4")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest valid checkpoint in --out (its stored config is used)")
    parser.add_argument("--steps", type=int, default=None,
                        help="stop after this global step (default: optim.iterations; the lr schedule is unchanged)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None, help="overrides train.device")
    parser.add_argument("--on-bad-sample", choices=("fail", "skip"), default=None,
                        help="unreadable / missing image: stop naming it, or skip its pairs and list it in "
                             "summary.json (overrides dataset.on_bad_sample; presets: skip)")
    parser.add_argument("--vgg-weights", default=None, metavar="FILE",
                        help="torchvision vgg19-dcbb9e9d.pth for the perceptual loss (default: torch hub cache, "
                             "else the offline shift-tolerant VGG fallback, with a warning)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--list-presets", action="store_true", help="list the presets and exit")


def run(args: argparse.Namespace) -> int:
    from ..config import list_presets, load_config
    from ..errors import ConfigError
    from ..train import train

    if args.list_presets:
        for name in list_presets():
            print(name)
        return 0
    if not args.out:
        raise ConfigError("--out RUN is required")
    if args.steps is not None and args.steps < 0:
        raise ConfigError(f"--steps must be >= 0, got {args.steps}")
    overrides = list(args.overrides)
    if args.device:
        overrides.append(f"train.device={args.device}")
    if args.on_bad_sample:
        overrides.append(f"dataset.on_bad_sample={args.on_bad_sample}")
    if not args.preset and not args.resume:
        raise ConfigError("--preset is required (or --resume to continue a run)")
    # the overrides are applied once: to the preset of a new run here (a bad --set fails before anything is
    # written), or by the trainer to whichever config a --resume continues (the stored one, or this preset)
    config = load_config(args.preset, () if args.resume else overrides) if args.preset else None
    summary = train(config, args.data, args.out, resume=args.resume, overrides=overrides if args.resume else (),
                    steps=args.steps,
                    vgg_weights=args.vgg_weights, progress=not args.no_progress)
    if summary.get("checkpoint"):
        print(f"{summary['status']}: {summary['steps']} steps; checkpoint {summary['checkpoint']}")
    return 0
