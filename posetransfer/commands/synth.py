"""``posetransfer synth``: write a procedural synthetic-people dataset in the PATN layout."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..kinds import KIND_NAMES

HELP = "generate a synthetic-people dataset (Market or DeepFashion layout) with exact keypoints"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="output dataset folder")
    parser.add_argument("--size", choices=KIND_NAMES, default="market",
                        help="market: 128x64 images, market-* CSVs, Market-1501 names; "
                             "fashion: 256x176 images, fasion-resize-* CSVs, DeepFashion names (default market)")
    parser.add_argument("--identities", type=int, default=20, help="number of people (at least 2; default 20)")
    parser.add_argument("--poses", type=int, default=8, help="images per person (at least 2; default 8)")
    parser.add_argument("--test-identities", type=int, default=None,
                        help="people in the test split (default 20%%, at least 1); the splits share nobody")
    parser.add_argument("--test-pairs", type=int, default=None,
                        help="keep a seeded random sample of this many test pairs (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same bytes (default 0)")
    parser.add_argument("--workers", type=int, default=1, help="processes rendering in parallel (default 1)")
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality (default 95)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace OUT even if it is a non-empty folder that is not a synthetic dataset "
                             "(its content is deleted); an earlier synthetic dataset is always replaced")


def run(args: argparse.Namespace) -> int:
    from ..data.layout import read_dataset_json
    from ..data.synth import generate_dataset

    start = time.perf_counter()
    root = generate_dataset(args.out, size=args.size, identities=args.identities, poses=args.poses,
                            test_identities=args.test_identities, seed=args.seed, workers=args.workers,
                            overwrite=args.overwrite, test_pairs=args.test_pairs, quality=args.quality)
    meta = read_dataset_json(root)
    images, pairs = meta.get("images", {}), meta.get("pairs", {})
    seconds = time.perf_counter() - start
    print(f"wrote {root}: {images.get('train', 0)} train + {images.get('test', 0)} test images "
          f"({meta.get('train_identities')} + {meta.get('test_identities')} identities), "
          f"{pairs.get('train', 0)} train + {pairs.get('test', 0)} test pairs in {seconds:.1f}s")
    return 0
