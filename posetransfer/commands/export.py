"""``posetransfer export``: write a generator as ONNX or TorchScript, checked against the PyTorch model."""
from __future__ import annotations

import argparse

from .transfer import add_model_arguments, load_model_from_args

HELP = "export a generator to ONNX or TorchScript (dynamic batch, metadata, checked against PyTorch)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--format", required=True, choices=("onnx", "torchscript"), help="file format")
    parser.add_argument("--out", required=True, help="output file (e.g. patn.onnx, patn.pt)")
    parser.add_argument("--no-check", action="store_true",
                        help="do not run the written file against the PyTorch model")


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..export import export_generator

    if args.device != "cpu":
        raise ConfigError("export runs on the CPU (--device cpu); the exported file runs anywhere")
    if args.precision != "fp32":
        raise ConfigError(f"export writes the float32 model; --precision {args.precision} does not apply to it")
    args.no_fast = True                      # the exporters trace the plain model
    model = load_model_from_args(args)
    report = export_generator(model.generator, args.out, args.format, model.size, metadata=model.export_metadata(),
                              check_batch=None if args.no_check else 3)
    print(report.summary())
    return 0
