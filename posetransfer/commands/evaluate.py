"""``posetransfer eval``: score generated images (results JSON) or print comparison tables."""
from __future__ import annotations

import argparse
import sys

from ..errors import ConfigError

HELP = "evaluate generated images (SSIM, mask-SSIM, L1, PSNR, FID, IS, LPIPS, PCKh, DS) or print tables"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..metrics.protocols import ALL_METRICS, FID_KINDS, IS_ORDERS, PROTOCOLS
    from ..metrics.published import LAYOUTS

    parser.add_argument("--generated", metavar="DIR",
                        help="folder of '<from>___<to>.png' images or official '<from>___<to>_vis.jpg' strips")
    parser.add_argument("--data", metavar="DIR", help="dataset root in the PATN layout (test split is used)")
    parser.add_argument("--protocol", default="patn", choices=sorted(PROTOCOLS),
                        help="which paper's metrics and settings (default: patn)")
    parser.add_argument("--out", metavar="FILE",
                        help="results JSON (eval) or Markdown file (--table); written atomically")
    parser.add_argument("--metrics", metavar="LIST",
                        help=f"comma-separated metrics instead of the protocol's ({','.join(ALL_METRICS)})")
    parser.add_argument("--label", help="name of this run in results and tables")
    parser.add_argument("--resize", choices=("bicubic", "reject"),
                        help="generated images of another size: resize to the ground truth or fail "
                             "(default: the protocol's)")
    parser.add_argument("--reference", choices=("strip", "dataset"), default="strip",
                        help="ground truth: strip (default) = each _vis strip's own target panel, as the official "
                             "PATN script (single images, which have none, use the dataset's test image); "
                             "dataset = the dataset's test images for every file")
    parser.add_argument("--panels", type=int, default=5, help="panels per _vis strip (default 5)")
    parser.add_argument("--fid-kind", choices=sorted(FID_KINDS),
                        help="which FID: tf = TF-Inception pool3 (the field standard, pytorch-fid/TTUR); gfla = "
                             "GFLA's script (torchvision ImageNet Inception-v3, needs --imagenet-inception-weights "
                             "or the hub cache) (default: the protocol's — gfla for gfla/structure-aware, else tf)")
    parser.add_argument("--inception-preprocess", choices=("tf", "pytorch-fid"),
                        help="resize/normalisation before the TF Inception (TF-FID, IS): tf = as the TF graph "
                             "(default); pytorch-fid = pytorch-fid's F.interpolate path")
    parser.add_argument("--fid-real", metavar="DIR", help="FID real images (default: <data>/train)")
    parser.add_argument("--cache-dir", metavar="DIR",
                        help="FID statistics cache (default: $POSETRANSFER_CACHE_DIR or ~/.cache/posetransfer)")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write cached FID statistics")
    parser.add_argument("--inception-weights", metavar="FILE",
                        help="TF Inception: pt_inception-2015-12-05-6726825d.pth (TF-FID + IS) or a TorchScript "
                             "FID Inception")
    parser.add_argument("--imagenet-inception-weights", metavar="FILE",
                        help="torchvision's inception_v3_google-0cc3c7bd.pth for GFLA's FID (--fid-kind gfla)")
    parser.add_argument("--drop-last-batch", action="store_true", default=None,
                        help="as GFLA's script: FID and LPIPS only on whole batches of 64 (default: every image)")
    parser.add_argument("--is-order", choices=sorted(IS_ORDERS),
                        help="order of the images before the IS splits: pairs (default) or listdir "
                             "(os.listdir of --generated, as PATN's script)")
    parser.add_argument("--lpips-weights", metavar="FILE",
                        help="torchvision AlexNet weights (alexnet-owt-7be5be79.pth) for standard LPIPS")
    parser.add_argument("--detector-weights", metavar="FILE", help="torchvision COCO detector weights for DS")
    parser.add_argument("--detector-arch", help="architecture of --detector-weights when the file name does not say")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N, mps or auto")
    parser.add_argument("--limit", type=int, help="evaluate only the first N matched pairs")
    parser.add_argument("--require-all", action="store_true",
                        help="fail if any test pair has no generated image (default: warn and continue)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar (terminal) or progress log lines with the ETA (otherwise)")
    parser.add_argument("--table", nargs="*", metavar="RESULTS_JSON",
                        help="print a Markdown table of the papers' published rows beside these results")
    parser.add_argument("--layout", choices=sorted(LAYOUTS), help="table layout (default: from the protocol)")


def run(args: argparse.Namespace) -> int:
    if args.table is not None:
        return _table(args)
    if not args.generated or not args.data:
        raise ConfigError("eval needs --generated DIR and --data DIR (or --table RESULTS.json ...)")
    for flag, value in (("--batch-size", args.batch_size), ("--limit", args.limit), ("--panels", args.panels)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} must be >= 1, got {value}")
    from ..devices import resolve_device

    args.device = str(resolve_device(args.device))
    from ..evaluation import evaluate

    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    results = evaluate(
        args.generated, args.data, args.protocol, metrics=metrics, out=args.out, label=args.label,
        resize=args.resize, reference=args.reference, strip_panels=args.panels,
        fid_kind=args.fid_kind, inception_preprocess=args.inception_preprocess, fid_real_dir=args.fid_real,
        cache_dir=args.cache_dir, use_cache=not args.no_cache, inception_weights=args.inception_weights,
        imagenet_inception_weights=args.imagenet_inception_weights, lpips_weights=args.lpips_weights,
        detector_weights=args.detector_weights, detector_arch=args.detector_arch,
        drop_last_batch=args.drop_last_batch, is_order=args.is_order, batch_size=args.batch_size,
        device=args.device, progress=not args.no_progress, require_all=args.require_all, limit=args.limit,
    )
    _print_summary(results, args.out)
    return 0


def _print_summary(results: dict, out: str | None) -> None:
    gen = results["generated"]
    ds = results["dataset"]
    print(f"protocol {results['protocol']['name']} on {ds['kind']} {ds['resolution'][0]}x{ds['resolution'][1]}: "
          f"{gen['evaluated']} images ({gen['missing']} test pairs missing, {gen['extra']} extra files, "
          f"{gen['resized']} resized)")
    for metric, value in results["metrics"].items():
        if value is None:
            reason = results["unavailable"].get(metric, "no value")
            print(f"  {metric:<11} n/a  ({reason})")
        else:
            print(f"  {metric:<11} {value:.4f}")
    fid = results["settings"].get("fid")
    if fid:
        print(f"  fid: {fid['kind']} — {fid.get('network') or 'network unavailable'}")
    for metric, source in results["weights"].items():
        if source.get("kind") == "package" and metric in ("st_lpips", "mask_st_lpips"):
            print(f"  note: {metric} used {source['network']} — {source.get('note', '')}")
    if out:
        print(f"wrote {out}")


def _table(args: argparse.Namespace) -> int:
    from ..io import atomic_write_text
    from ..metrics.tables import read_results, render_tables

    text = render_tables(read_results(args.table), args.layout)
    if args.out:
        atomic_write_text(args.out, text)
        print(f"wrote {args.out}")
    else:
        sys.stdout.write(text)
    return 0
