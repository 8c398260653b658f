"""``posetransfer serve``: the local web demo (upload a photo, pick or draw a pose, see result and attention)."""
from __future__ import annotations

import argparse

from .transfer import add_model_arguments, check_model_arguments, load_model_from_args

HELP = "run the local web demo (FastAPI; no external resources)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default loopback only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--data", default=None, help="dataset root: target-pose gallery and sample people")


def run(args: argparse.Namespace) -> int:
    from ..extras import EXTRAS, require_extra

    for module in EXTRAS["serve"]:   # before the model is loaded: one line naming the install command
        require_extra(module, "serve", "posetransfer serve")
    from ..apps.serve import serve

    from ..errors import ConfigError

    if not 1 <= args.port <= 65535:
        raise ConfigError(f"--port must be in 1..65535, got {args.port}")
    check_model_arguments(args)
    model = load_model_from_args(args)
    serve(model, host=args.host, port=args.port, data=args.data)
    return 0
