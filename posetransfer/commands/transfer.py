"""``posetransfer transfer``: put the person of a photo (or of every photo in a folder) into a target pose."""
from __future__ import annotations

import argparse
import sys

HELP = "generate a person photo in a target pose (single image or a folder)"


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared by the commands that load a generator (see :func:`load_model_from_args`)."""
    parser.add_argument("--checkpoint", required=True,
                        help="generator .safetensors file, checkpoint folder or training run folder")
    parser.add_argument("--arch", default=None,
                        help="refuse checkpoints of any other architecture (patn, apatn, pona, ...)")
    parser.add_argument("--size", default=None,
                        help="override the model frame: market (128x64), fashion (256x176) or HxW; default: the "
                             "file's input contract")
    parser.add_argument("--heatmap", choices=("gaussian", "onehot"), default=None,
                        help="override the pose maps (default: the file's input contract)")
    parser.add_argument("--sigma", type=float, default=None,
                        help="override the Gaussian maps' sigma in pixels (default: the file's input contract)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N, mps or auto")


def check_model_arguments(args: argparse.Namespace) -> None:
    """What argparse cannot check of :func:`add_model_arguments`' flags (a device name torch knows)."""
    from ..devices import resolve_device

    args.device = str(resolve_device(args.device))


def load_model_from_args(args: argparse.Namespace):
    """The :class:`posetransfer.inference.InferenceModel` the flags of :func:`add_model_arguments` ask for."""
    from ..inference import load_model

    return load_model(args.checkpoint, arch=args.arch, size=args.size, heatmap=args.heatmap, sigma=args.sigma,
                      device=args.device)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--source", required=True, help="person photo, or a folder of photos (batch mode)")
    parser.add_argument("--source-pose", default=None,
                        help="keypoints JSON of the source (or a folder of <image stem>.json); "
                             "default: estimated from the photo")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--target", help="target pose: keypoints JSON (OpenPose / COCO-18 / ours) or a photo")
    target.add_argument("--target-csv", help="PATN annotation CSV holding the target pose (with --target-name)")
    parser.add_argument("--target-name", help="image name of the target row in --target-csv")
    parser.add_argument("--out", required=True,
                        help="output image (single source) or folder (source folder)")
    parser.add_argument("--paste-back", action="store_true",
                        help="write the whole source photo with the result pasted into the person's crop box")
    parser.add_argument("--save-attention", action="store_true",
                        help="also write <out>_attention.png: source, target pose, per-block masks, output")
    parser.add_argument("--crop", choices=("auto", "keypoints", "none"), default="auto",
                        help="auto: crop around the person unless the photo already has the model's size")
    parser.add_argument("--pad", choices=("edge", "grey"), default="edge",
                        help="how to fill where the crop box leaves the photo")


def run(args: argparse.Namespace) -> int:
    from ..apps.poses import load_pose, pose_from_csv
    from ..apps.transfer import transfer_files
    from ..errors import ConfigError

    if args.target_csv and not args.target_name:
        raise ConfigError("--target-csv needs --target-name (the image whose pose to use)")
    check_model_arguments(args)
    model = load_model_from_args(args)
    target = pose_from_csv(args.target_csv, args.target_name) if args.target_csv else load_pose(args.target)
    report = transfer_files(model, args.source, target, args.out, source_pose=args.source_pose,
                            paste_back=args.paste_back, save_attention=args.save_attention,
                            crop=args.crop, pad=args.pad)
    for path, message in report.failed:
        print(f"failed: {message if str(path) in message else f'{path}: {message}'}", file=sys.stderr)
    print(report.summary())
    return 0 if report.succeeded else 2
