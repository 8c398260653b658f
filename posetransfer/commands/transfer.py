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
    parser.add_argument("--no-fast", action="store_true",
                        help="run the plain model instead of the inference fast path (folded batch norm, packed "
                             "oneDNN convolutions, Winograd; the same images within 1e-4)")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="fp32 (default); bf16: the fast path in bfloat16, on CUDA or a CPU with bf16 "
                             "instructions (AVX512-BF16/AMX) — {figure}".format(figure=BF16_FIGURE))
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads (default: one per core this process may use)")
    parser.set_defaults(_before_torch=prepare_process)


def prepare_process(args: argparse.Namespace) -> None:
    """Run by the CLI before the command, so before torch is imported: ``--threads`` (the OpenMP wait policy and
    the default count are set for every command by :func:`posetransfer.cpu.prepare_process`;
    :func:`posetransfer.runtime.configure_threads` keeps a policy already chosen)."""
    from ..errors import ConfigError
    from ..runtime import configure_threads

    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}")
    configure_threads(args.threads)


#: --precision's help: what bf16 costs and gains (README, Performance: bfloat16)
BF16_FIGURE = ("1.45-1.8x faster than fp32 on an AMD EPYC, images of a trained PATN at most 2 grey levels apart "
               "(mean 0.13; README, Performance: bfloat16)")

#: --runtime's help: what was measured (README, Performance: ONNX Runtime), so the choice is informed
RUNTIME_HELP = ("torch (default): PyTorch, the fast path unless --no-fast; onnx: ONNX Runtime on an export of the "
                "generator (made once, cached in ~/.cache/posetransfer/onnx; CPU only; no attention/flow figures). "
                "Measured slower than the torch fast path here: {figure}")
#: the measurement RUNTIME_HELP quotes (benchmarks/results/onnx_cpu.md)
RUNTIME_FIGURE = ("PATN 128x64 ONNX Runtime fp32 0.41 s vs 0.26 s per image at batch 1, 3.33 vs 2.32 s per batch "
                  "of 8 (0.63x / 0.70x; load 5.2-4.3; README, Performance)")


def add_runtime_argument(parser: argparse.ArgumentParser) -> None:
    """``--runtime torch|onnx`` (test, transfer)."""
    parser.add_argument("--runtime", choices=("torch", "onnx"), default="torch",
                        help=RUNTIME_HELP.format(figure=RUNTIME_FIGURE))


def check_model_arguments(args: argparse.Namespace, *, figures: tuple[str, ...] = ()) -> None:
    """What argparse cannot check of :func:`add_model_arguments`' flags (the device, resolved; with
    ``--runtime onnx``, the CPU and none of the ``figures`` flags, whose attention/flows the export lacks)."""
    from ..devices import resolve_device
    from ..errors import ConfigError

    args.device = str(resolve_device(args.device))
    if getattr(args, "runtime", "torch") == "onnx":
        if args.device != "cpu":
            raise ConfigError(f"--runtime onnx runs on the CPU; got --device {args.device}")
        for flag in figures:
            if getattr(args, flag.lstrip("-").replace("-", "_"), False):
                raise ConfigError(f"{flag} needs --runtime torch (the ONNX export returns the image only)")


def load_model_from_args(args: argparse.Namespace):
    """The :class:`posetransfer.inference.InferenceModel` the flags of :func:`add_model_arguments` ask for."""
    from ..inference import load_model

    return load_model(args.checkpoint, arch=args.arch, size=args.size, heatmap=args.heatmap, sigma=args.sigma,
                      device=args.device, fast=not args.no_fast, runtime=getattr(args, "runtime", "torch"),
                      threads=args.threads, precision=getattr(args, "precision", "fp32"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    add_runtime_argument(parser)
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
    from ..apps.expectations import synthetic_note
    from ..apps.transfer import transfer_files
    from ..errors import ConfigError

    if args.target_csv and not args.target_name:
        raise ConfigError("--target-csv needs --target-name (the image whose pose to use)")
    check_model_arguments(args, figures=("--save-attention",))
    model = load_model_from_args(args)
    target = pose_from_csv(args.target_csv, args.target_name) if args.target_csv else load_pose(args.target)
    report = transfer_files(model, args.source, target, args.out, source_pose=args.source_pose,
                            paste_back=args.paste_back, save_attention=args.save_attention,
                            crop=args.crop, pad=args.pad)
    for path, message in report.failed:
        print(f"failed: {message if str(path) in message else f'{path}: {message}'}", file=sys.stderr)
    print(report.summary())
    note = synthetic_note(model.name, model.contract.provenance)
    if note and report.succeeded:
        print(note)
    return 0 if report.succeeded else 2
