"""``posetransfer models``: list the registered generators and discriminators with their sizes."""
from __future__ import annotations

import argparse
import json

HELP = "list the available models with their parameter counts (Market / DeepFashion settings) and input sizes"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the table as JSON")


def run(args: argparse.Namespace) -> int:
    from ..models.summary import catalog, format_catalog

    entries = catalog()
    print(json.dumps(entries, indent=2) if args.json else format_catalog(entries))
    return 0
