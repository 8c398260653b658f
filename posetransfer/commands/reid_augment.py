"""``posetransfer reid-augment``: re-ID training sets with generated images (the papers' Table 6 protocol)."""
from __future__ import annotations

import argparse

from .transfer import add_model_arguments, check_model_arguments, load_model_from_args

HELP = "build a Market-style re-ID training folder augmented with generated images"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--data", required=True, help="dataset root in the PATN layout (its train split is used)")
    parser.add_argument("--out", required=True, help="output folder (gets bounding_box_train/ and manifest.csv)")
    parser.add_argument("--portion", type=float, default=1.0,
                        help="portion p of the real training images kept (M_p^R, >= 1 per identity)")
    parser.add_argument("--mode", choices=("replace", "x2", "x3"), default="replace",
                        help="replace: dropped images become generated ones (M_p^A); x2/x3: add 1/2 generated "
                             "images per kept real image in random training poses")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--min-joints", type=int, default=4,
                        help="images with fewer annotated joints are never used as source or target pose")
    parser.add_argument("--overwrite", action="store_true", help="replace the images of an existing output")
    parser.add_argument("--link-eval", default=None, metavar="MARKET_ROOT",
                        help="symlink query/ and bounding_box_test/ of an original Market-1501 folder into --out")


def run(args: argparse.Namespace) -> int:
    from ..apps.reid_augment import link_evaluation_sets, reid_augment
    from ..errors import ConfigError

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    from ..config import check_seed

    check_seed(args.seed)
    check_model_arguments(args)
    model = load_model_from_args(args)
    summary = reid_augment(model, args.data, args.out, portion=args.portion, mode=args.mode, seed=args.seed,
                           batch_size=args.batch_size, min_joints=args.min_joints, overwrite=args.overwrite)
    if args.link_eval:
        link_evaluation_sets(args.link_eval, args.out)
    print(f"reid-augment: {summary['real']} real + {summary['generated']} generated images of "
          f"{summary['identities']} identities in {summary['folder']}")
    return 0
