"""``posetransfer keypoints``: BlazePose keypoints (or OpenPose JSON) → a PATN annotation CSV."""
from __future__ import annotations

import argparse

HELP = ("estimate 18-point keypoints of images (BlazePose) or convert OpenPose JSON into a PATN annotation CSV "
        "or posetransfer pose files")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="IMAGES",
                        help="image files, folders of images, or OpenPose/posetransfer keypoint JSON files")
    parser.add_argument("--out", required=True, metavar="CSV|JSON|DIR",
                        help="a .csv: PATN annotation CSV (name:keypoints_y:keypoints_x); a .json (one input) or a "
                             "folder: posetransfer pose files (<image stem>.json), as transfer/animate/serve read")
    parser.add_argument("--skip-missing", action="store_true",
                        help="CSV: leave out images where no person is found (default: an all -1 row, reported); "
                             "pose files are never written for them")
    parser.add_argument("--image-ext", default=".jpg",
                        help="extension of the image named by an OpenPose '<stem>_keypoints.json' (default .jpg)")
    parser.add_argument("--confidence", type=float, default=0.1,
                        help="minimum OpenPose joint confidence when reading JSON (default 0.1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import sys

    from ..pose import annotate
    from ..pose.annotate import output_kind

    kind = output_kind(args.out)
    report = annotate(args.inputs, args.out, skip_missing=args.skip_missing, image_ext=args.image_ext,
                      json_confidence=args.confidence, progress=not args.no_progress)
    print(f"wrote {report.rows} rows to {args.out}" if kind == "csv" else
          f"wrote {report.rows} pose file(s) to {args.out}")
    if report.no_person:
        action = ("left out (--skip-missing)" if args.skip_missing else "written as all -1 rows") if kind == "csv" \
            else "no pose file written"
        print(f"{len(report.no_person)} image(s) with no person found, {action}:", file=sys.stderr)
        for _, reason in report.no_person:
            print(f"  {reason}", file=sys.stderr)
    return 0
