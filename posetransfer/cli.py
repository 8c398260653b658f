"""The ``posetransfer`` command: one entry point, one module per subcommand.

Each subcommand lives in ``posetransfer/commands/<module>.py`` and defines

    HELP: str                                   # one line for ``posetransfer --help``
    def add_arguments(parser) -> None           # its flags
    def run(args) -> int                        # thin wrapper over a library function

Library errors (:class:`posetransfer.errors.PosetransferError`) become one line on stderr and exit code 2;
so do operating-system errors (``OSError``: disk full, read-only folder, symlink loop) that reach the CLI.
Commands are imported lazily so ``posetransfer --help`` stays fast and a broken optional dependency of one
command cannot break the others.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

from .errors import PosetransferError

#: subcommand name → module under posetransfer.commands
COMMANDS: dict[str, str] = {
    "demo": "demo",
    "synth": "synth",
    "prepare": "prepare",
    "train": "train",
    "test": "test",
    "eval": "evaluate",
    "keypoints": "keypoints",
    "transfer": "transfer",
    "animate": "animate",
    "reid-augment": "reid_augment",
    "serve": "serve",
    "convert": "convert",
    "models": "models",
    "summary": "summary",
    "bench": "bench",
}


def _load(module: str):
    return importlib.import_module(f"posetransfer.commands.{module}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="posetransfer",
        description="Pose-guided person image generation: PATN, APATN, PoNA, structure-aware part flow.",
    )
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = _load(module_name)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def _version() -> str:
    from . import __version__

    return f"posetransfer {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    from .cpu import prepare_process

    prepare_process()  # OpenMP settings that hold on a busy machine; must precede the first torch import
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except PosetransferError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a write or a folder the library did not wrap (disk full, read-only, symlink loop)
        from .io import describe_os_error

        name, reason = describe_os_error(exc)
        print(f"error: {name}: {reason}" if name else f"error: {reason}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
