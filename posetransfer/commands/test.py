"""``posetransfer test``: generate a dataset's test pairs as ``<from>___<to>.png`` for ``posetransfer eval``."""
from __future__ import annotations

import argparse

from .transfer import add_model_arguments, add_runtime_argument, check_model_arguments, load_model_from_args

HELP = "generate the test pairs of a dataset (<from>___<to>.png, ready for eval)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    add_runtime_argument(parser)
    parser.add_argument("--data", required=True, help="dataset root in the PATN layout")
    parser.add_argument("--split", default="test", choices=("train", "test"))
    parser.add_argument("--out", default=None, help="output folder (default: <data>/generated/<split>)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N pairs")
    parser.add_argument("--strip", action="store_true",
                        help="also write the 5-panel <from>___<to>_vis.jpg strips")
    parser.add_argument("--save-flows", action="store_true", help="flow generators: write flow-field figures")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")


class Forecast:
    """What ``test`` says before it starts and after its first batch: how many pairs, about how long, and
    that ``--limit`` exists (a whole DeepFashion or Market test split is thousands of images)."""

    def __init__(self, out, split: str, limit: int | None) -> None:
        self.out, self.split, self.limit = out, split, limit
        self.said_time = False

    def __call__(self, done: int, total: int, seconds: float) -> None:
        if done == 0:
            hint = "" if self.limit is not None else " (--limit N generates only the first N)"
            self._say(f"test: {total} pair(s) of the {self.split} split to generate into {self.out}{hint}")
        elif not self.said_time and done < total:
            self.said_time = True
            rest = seconds / done * (total - done)
            self._say(f"test: the first {done} pair(s) took {seconds:.1f} s: about {_duration(rest)} for the "
                      f"other {total - done}")

    @staticmethod
    def _say(line: str) -> None:
        import sys

        from tqdm import tqdm

        tqdm.write(line, file=sys.stderr)   # above the progress bar, not through it


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..apps.testset import generate_test_set
    from ..errors import ConfigError

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.workers < 0:
        raise ConfigError(f"--workers must be >= 0, got {args.workers}")
    check_model_arguments(args, figures=("--save-flows",))
    model = load_model_from_args(args)
    out = Path(args.out) if args.out else Path(args.data) / "generated" / args.split
    summary = generate_test_set(model, args.data, out, split=args.split, limit=args.limit, strip=args.strip,
                                save_flows=args.save_flows, batch_size=args.batch_size, workers=args.workers,
                                on_batch=Forecast(out, args.split, args.limit))
    bad = len(summary["bad_samples"])
    print(f"test: {summary['written']} image(s) written to {out}" + (f", {bad} unreadable image(s) skipped" if bad else ""))
    return 0
