"""``posetransfer convert``: official PATN / PoNA ``.pth`` checkpoints → posetransfer safetensors files."""
from __future__ import annotations

import argparse
from pathlib import Path

HELP = "convert an official PATN/PoNA checkpoint (latest_net_netG.pth) into a posetransfer .safetensors file"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", required=True, choices=["patn", "pona"], help="architecture of the checkpoint")
    parser.add_argument("--input", required=True, type=Path, help="official generator state dict (*_net_netG.pth)")
    parser.add_argument("--out", required=True, type=Path, help="output generator file (.safetensors)")
    parser.add_argument("--preset", choices=["market", "deepfashion"],
                        help="check that the weights' norm matches this dataset preset (batch / instance)")
    parser.add_argument("--shape-d", type=Path, metavar="PTH",
                        help="also convert the official shape discriminator (*_net_netD_PB.pth)")
    parser.add_argument("--appearance-d", type=Path, metavar="PTH",
                        help="also convert the official appearance discriminator (*_net_netD_PP.pth)")
    parser.add_argument("--d-sigmoid", action="store_true",
                        help="discriminators end in a sigmoid (official Market runs used --no_lsgan)")


def _discriminator_path(out: Path, role: str) -> Path:
    return out.with_name(f"{out.stem}-{role}-discriminator.safetensors")


def run(args: argparse.Namespace) -> int:
    from ..models.blocks import count_parameters
    from ..models.official import convert_checkpoint, convert_discriminator

    model = convert_checkpoint(args.arch, args.input, args.out, preset=args.preset)
    config = ", ".join(f"{k}={v}" for k, v in model.config.items())
    print(f"{args.out}: {args.arch} generator, {count_parameters(model):,} parameters ({config})")
    for role, source in (("shape", args.shape_d), ("appearance", args.appearance_d)):
        if source is None:
            continue
        out = _discriminator_path(args.out, role)
        d = convert_discriminator(source, out, use_sigmoid=args.d_sigmoid)
        print(f"{out}: {role} discriminator patn_resnet, input_nc={d.config['input_nc']}, "
              f"{count_parameters(d):,} parameters")
    return 0
