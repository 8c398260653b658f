"""``posetransfer bench``: parameters, FLOPs, speed, peak memory and training-step time of every generator.

Writes a Markdown table in the layout of PATN Table 2 / PoNA Table II (published figures beside ours); see
:mod:`posetransfer.bench` for how each figure is measured.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

HELP = "benchmark every generator (params, FLOPs, img/s, peak memory, train step) as a Markdown table"

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", nargs="+", default=None, metavar="NAME",
                        help="registry names to benchmark (default: every registered generator)")
    parser.add_argument("--sizes", nargs="+", default=None, choices=("market", "deepfashion", "512x352", "256x256"),
                        help="input sizes (default: market deepfashion; --quick: market)")
    parser.add_argument("--batch", nargs="+", type=int, default=None, metavar="B",
                        help="inference batch sizes (default: 1 16; --quick: 1 2)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's; --quick: 1)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timing runs per figure, the median is reported (default 3; --quick 1)")
    parser.add_argument("--min-run-time", type=float, default=None,
                        help="seconds per timing run (torch.utils.benchmark blocked_autorange; default 1)")
    parser.add_argument("--memory", choices=("subprocess", "inprocess", "none"), default=None,
                        help="peak-memory measurement: a fresh subprocess per figure (default), in this "
                             "process (--quick), or none")
    parser.add_argument("--no-train", action="store_true", help="skip the training-step timing")
    parser.add_argument("--train-batch", type=int, default=None, help="batch of the training step (default 4)")
    parser.add_argument("--no-fast", action="store_true", help="skip the optimize_for_inference() columns")
    parser.add_argument("--quick", action="store_true",
                        help="tiny widths, Market size, one short run: a smoke test, not a measurement")
    parser.add_argument("--out", type=Path, default=None, help="write the Markdown table here (default: stdout)")
    parser.add_argument("--json", type=Path, default=None, help="also write every raw figure as JSON")


def run(args: argparse.Namespace) -> int:
    from .. import bench
    from ..errors import ConfigError
    from ..io import atomic_write_text, write_json

    options = bench.BenchOptions.quick_options() if args.quick else bench.BenchOptions()
    overrides = {
        "sizes": tuple(args.sizes) if args.sizes else None,
        "batches": tuple(args.batch) if args.batch else None,
        "device": args.device,
        "threads": args.threads,
        "repeats": args.repeats,
        "min_run_time": args.min_run_time,
        "memory": args.memory,
        "train_batch": args.train_batch,
    }
    for key, value in overrides.items():
        if value is not None:
            setattr(options, key, value)
    if args.no_train:
        options.train = False
    if args.no_fast:
        options.fast = False
    if any(b < 1 for b in options.batches) or options.repeats < 1 or options.train_batch < 1:
        raise ConfigError("--batch, --repeats and --train-batch must be positive")
    if options.threads is not None and options.threads < 1:
        raise ConfigError("--threads must be positive")
    specs = bench.default_specs(quick=args.quick, names=args.models)
    result = bench.run_bench(specs, options, progress=lambda msg: log.info("bench: %s", msg))
    table = bench.format_table(result)
    if args.out:
        atomic_write_text(args.out, table)
        log.info("wrote %s", args.out)
    else:
        print(table, end="")
    if args.json:
        write_json(args.json, result)
    return 0
