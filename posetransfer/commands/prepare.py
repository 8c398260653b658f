"""``posetransfer prepare {deepfashion,market,pairs}``: raw downloads → the PATN dataset layout."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..kinds import KIND_NAMES

HELP = "prepare DeepFashion / Market-1501 in the PATN layout, build pairs CSVs (keypoints of new images: posetransfer keypoints)"

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="prepare_command", metavar="DATASET", required=True)

    p = sub.add_parser("deepfashion", help="In-shop img/ (or img_highres/) + train.lst/test.lst → OUT/{train,test} "
                                           "(256x176 crops, flat names)")
    p.add_argument("src", type=Path, help="folder with img/ or img_highres/, train.lst, test.lst "
                                          "(and optionally fasion-resize-annotation/pairs CSVs)")
    p.add_argument("out", type=Path, help="output dataset folder")
    p.add_argument("--images", type=Path, default=None, help="image tree (default: SRC/img, else SRC/img_highres)")
    p.add_argument("--train-list", type=Path, default=None, help="default SRC/train.lst")
    p.add_argument("--test-list", type=Path, default=None, help="default SRC/test.lst")
    _csv_arguments(p, raw=True)
    p.add_argument("--quality", type=int, default=75, help="JPEG quality of re-encoded crops (75 = official)")
    p.add_argument("--overwrite", action="store_true", help="re-create images that already exist in OUT")
    p.set_defaults(_prepare=_run_deepfashion)

    p = sub.add_parser("market", help="Market-1501 bounding_box_{train,test} → OUT/{train,test} (128x64)")
    p.add_argument("src", type=Path, help="the Market-1501-v15.09.15 folder (and optionally market-*.csv)")
    p.add_argument("out", type=Path, help="output dataset folder")
    _csv_arguments(p, raw=False)
    p.add_argument("--test-sample", type=int, default=12000,
                   help="test pairs kept when pairs are built (official 12000; 0 = all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="re-copy images that already exist in OUT")
    p.set_defaults(_prepare=_run_market)

    p = sub.add_parser("pairs", help="pairs CSV from an annotation CSV (same person, both hips and shoulders)")
    p.add_argument("annotation", type=Path, help="annotation CSV (name:keypoints_y:keypoints_x)")
    p.add_argument("out", type=Path, help="pairs CSV to write (from,to)")
    p.add_argument("--kind", choices=KIND_NAMES, default=None,
                   help="how identities are read from names (default: from the CSV file name)")
    p.add_argument("--test-sample", type=int, default=None, help="keep this many seeded random pairs")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(_prepare=_run_pairs)


def _csv_arguments(p: argparse.ArgumentParser, raw: bool) -> None:
    for split in ("train", "test"):
        p.add_argument(f"--annotation-{split}", type=Path, default=None,
                       help=f"{split} annotation CSV in the output image frame (default: found in SRC)")
        if raw:
            p.add_argument(f"--raw-annotation-{split}", type=Path, default=None,
                           help=f"{split} annotation CSV of the 256x256 images, converted (x - 40)")
        p.add_argument(f"--pairs-{split}", type=Path, default=None,
                       help=f"{split} pairs CSV (default: found in SRC, else built from the annotations)")


def _per_split(args: argparse.Namespace, stem: str) -> dict[str, Path] | None:
    values = {split: getattr(args, f"{stem}_{split}", None) for split in ("train", "test")}
    values = {k: v for k, v in values.items() if v is not None}
    return values or None


def _run_deepfashion(args: argparse.Namespace):
    from ..data.prepare import prepare_deepfashion

    return prepare_deepfashion(
        args.src, args.out, image_folder=args.images, train_list=args.train_list, test_list=args.test_list,
        annotations=_per_split(args, "annotation"), raw_annotations=_per_split(args, "raw_annotation"),
        pairs=_per_split(args, "pairs"), quality=args.quality, overwrite=args.overwrite,
    ).summary()


def _run_market(args: argparse.Namespace):
    from ..data.prepare import prepare_market

    return prepare_market(
        args.src, args.out, annotations=_per_split(args, "annotation"), pairs=_per_split(args, "pairs"),
        test_sample=args.test_sample or None, seed=args.seed, overwrite=args.overwrite,
    ).summary()


def _run_pairs(args: argparse.Namespace):
    from ..data.prepare import make_pairs

    n = make_pairs(args.annotation, args.kind, args.out, test_sample=args.test_sample, seed=args.seed)
    return f"{args.out}: {n} pairs"


def run(args: argparse.Namespace) -> int:
    if getattr(args, "seed", None) is not None:
        from ..config import check_seed

        check_seed(args.seed)
    print(args._prepare(args))
    return 0
