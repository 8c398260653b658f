"""``posetransfer convert``: official PATN / PoNA / GFLA ``.pth`` checkpoints → posetransfer safetensors files."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError
from ..kinds import DATASET_NAMES, renamed_dataset

HELP = ("convert an official PATN/PoNA/GFLA checkpoint (latest_net_netG.pth, latest_net_G.pth) into a posetransfer "
        ".safetensors file")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", required=True, choices=["patn", "pona", "gfla"], help="architecture of the checkpoint")
    parser.add_argument("--input", required=True, type=Path,
                        help="official generator state dict (*_net_netG.pth; GFLA: *_net_G.pth)")
    parser.add_argument("--out", required=True, type=Path, help="output generator file (.safetensors)")
    parser.add_argument("--dataset", choices=DATASET_NAMES,
                        help="the released setting: checked against the weights (PATN/PoNA: batch / instance norm; "
                             "GFLA: its attention layers and kernel sizes) and recorded as the file's input "
                             "contract (default: the setting the weights imply)")
    parser.add_argument("--preset", dest="deprecated_preset", choices=DATASET_NAMES, help=argparse.SUPPRESS)
    parser.add_argument("--discriminator", type=Path, metavar="PTH",
                        help="GFLA: also convert its ResDiscriminator (*_net_D.pth)")
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

    args.dataset = renamed_dataset(args.dataset, args.deprecated_preset, "convert --preset")
    if args.arch == "gfla":
        return _run_gfla(args)
    if args.discriminator is not None:
        raise ConfigError("--discriminator is for --arch gfla; PATN/PoNA use --shape-d / --appearance-d")
    model = convert_checkpoint(args.arch, args.input, args.out, dataset=args.dataset)
    config = ", ".join(f"{k}={v}" for k, v in model.config.items())
    print(f"{args.out}: {args.arch} generator, {count_parameters(model):,} parameters ({config})")
    _print_contract(model)
    for role, source in (("shape", args.shape_d), ("appearance", args.appearance_d)):
        if source is None:
            continue
        out = _discriminator_path(args.out, role)
        d = convert_discriminator(source, out, use_sigmoid=args.d_sigmoid)
        print(f"{out}: {role} discriminator patn_resnet, input_nc={d.config['input_nc']}, "
              f"{count_parameters(d):,} parameters")
    return 0


def _run_gfla(args: argparse.Namespace) -> int:
    from ..models import gfla_convert
    from ..models.blocks import count_parameters

    if args.shape_d is not None or args.appearance_d is not None or args.d_sigmoid:
        raise ConfigError("--shape-d / --appearance-d / --d-sigmoid are PATN/PoNA options; GFLA: --discriminator")
    model = gfla_convert.convert_checkpoint(args.input, args.out, dataset=args.dataset)
    config = ", ".join(f"{k}={v}" for k, v in model.config.items())
    print(f"{args.out}: gfla generator, {count_parameters(model):,} parameters ({config})")
    _print_contract(model)
    if args.discriminator is not None:
        out = _discriminator_path(args.out, "image")
        d = gfla_convert.convert_discriminator(args.discriminator, out, dataset=args.dataset)
        print(f"{out}: image discriminator spectral_resnet, {d.config['n_layers']} layers, "
              f"{count_parameters(d):,} parameters")
    return 0


def _print_contract(model) -> None:
    contract = model.input_contract
    print(f"  input contract: {contract.describe()} ({contract.provenance['setting']}; "
          f"sha256 {contract.provenance['sha256'][:12]}...)")
