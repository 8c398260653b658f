"""The README's model table: ``posetransfer bench`` with the full settings, raw figures kept.

    python benchmarks/bench_models.py                 # every model, Market + DeepFashion, batch 1 and 16
    python benchmarks/bench_models.py --models patn pona --sizes market

Writes ``benchmarks/results/bench_<device>.md`` and ``.json`` (the Markdown table is the one copied into the
README's Performance section).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from posetransfer.cli import main as cli_main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=None)
    parser.add_argument("--sizes", nargs="+", default=["market", "deepfashion"])
    parser.add_argument("--batch", nargs="+", default=["1", "16"])
    parser.add_argument("--tag", default=None, help="suffix of the output files (default: the device)")
    args, rest = parser.parse_known_args()
    out = Path(__file__).parent / "results" / f"bench_{args.tag or args.device.replace(':', '')}"
    argv = ["bench", "--device", args.device, "--threads", str(args.threads), "--repeats", str(args.repeats),
            "--sizes", *args.sizes, "--batch", *args.batch, "--out", f"{out}.md", "--json", f"{out}.json", *rest]
    if args.models:
        argv += ["--models", *args.models]
    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
