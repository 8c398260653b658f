"""``posetransfer animate``: drive one person photo with a pose sequence (JSON folder or video) → mp4/GIF."""
from __future__ import annotations

import argparse

from .transfer import add_model_arguments, check_model_arguments, load_model_from_args

HELP = "animate a person photo with a pose sequence (folder of keypoints JSON or a driving video)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--source", required=True, help="person photo")
    parser.add_argument("--source-pose", default=None, help="keypoints JSON of the source (default: estimated)")
    parser.add_argument("--poses", required=True,
                        help="folder of keypoints JSON files (sorted by name) or a driving video")
    parser.add_argument("--out", required=True, help="output video (.mp4 or .gif)")
    parser.add_argument("--gif", action="store_true", help="also write a GIF next to the mp4")
    parser.add_argument("--fps", type=float, default=None, help="frame rate (default: the video's, or 10)")
    parser.add_argument("--every", type=int, default=1, help="use every N-th frame / pose")
    parser.add_argument("--max-frames", type=int, default=None, help="stop after N frames")
    parser.add_argument("--with-pose", action="store_true", help="show the driving skeleton beside each frame")
    parser.add_argument("--scale", type=int, default=1, help="enlarge frames by this integer factor")
    parser.add_argument("--crop", choices=("auto", "keypoints", "none"), default="auto")
    parser.add_argument("--pad", choices=("edge", "grey"), default="edge")
    parser.add_argument("--batch-size", type=int, default=8)


def run(args: argparse.Namespace) -> int:
    from ..apps.animate import animate
    from ..apps.expectations import synthetic_note

    check_model_arguments(args)
    model = load_model_from_args(args)
    summary = animate(model, args.source, args.poses, args.out, source_pose=args.source_pose, gif=args.gif,
                      fps=args.fps, every=args.every, max_frames=args.max_frames, with_pose=args.with_pose,
                      scale=args.scale, crop=args.crop, pad=args.pad, batch_size=args.batch_size)
    extra = f" ({summary['repeated_poses']} frame(s) without a person reused the previous pose)" \
        if summary["repeated_poses"] else ""
    print(f"animate: {summary['frames']} frames at {summary['fps']:g} fps -> {', '.join(summary['written'])}{extra}")
    note = synthetic_note(model.name, model.contract.provenance)
    if note:
        print(note)
    return 0
