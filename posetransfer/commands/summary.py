"""``posetransfer summary NAME``: layer table (output shapes, parameters) of one model, on the meta device."""
from __future__ import annotations

import argparse
import json

from ..errors import ConfigError
from ..kinds import DATASET_NAMES, parse_size, renamed_dataset

HELP = "print the layer table (output shapes and parameters) of a model: posetransfer summary patn --dataset market"


def _add_options(parser: argparse.ArgumentParser, defaults: bool = True) -> None:
    d = (lambda value: value) if defaults else (lambda value: argparse.SUPPRESS)
    parser.add_argument("--dataset", choices=DATASET_NAMES, default=d(None),
                        help="dataset settings (norm, input size)")
    parser.add_argument("--preset", dest="deprecated_preset", choices=DATASET_NAMES, default=d(None),
                        help=argparse.SUPPRESS)
    parser.add_argument("--size", metavar="HxW", default=d(None),
                        help="input image size, default from the dataset (128x64 / 256x176)")
    parser.add_argument("--depth", type=int, default=d(2), help="how many levels of submodules to list (default 2)")
    parser.add_argument("--json", action="store_true", default=d(False), help="print the summary as JSON")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="registry name, e.g. patn, apatn, pona, resnet, patn_resnet")
    # REMAINDER so that options and KEY=VALUE overrides may be mixed after NAME (re-parsed in run)
    parser.add_argument("overrides", nargs=argparse.REMAINDER, metavar="KEY=VALUE",
                        help="model options, e.g. n_blocks=5 norm=batch (values parsed as YAML scalars)")
    _add_options(parser)


class _QuietParser(argparse.ArgumentParser):
    def error(self, message: str):  # one line through the CLI's error path instead of usage + exit
        raise ConfigError(f"summary: {message}")


def _parse_rest(args: argparse.Namespace) -> argparse.Namespace:
    """Flags given after NAME land in ``args.overrides``; parse them and keep the KEY=VALUE items."""
    rest = _QuietParser(prog="posetransfer summary", add_help=False)
    _add_options(rest, defaults=False)
    rest.add_argument("items", nargs="*")
    parsed = rest.parse_intermixed_args(args.overrides)
    merged = argparse.Namespace(**{**vars(args), **vars(parsed)})
    merged.overrides = parsed.items
    return merged


def parse_overrides(items: list[str]) -> dict:
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"summary: option {item!r} must look like key=value")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError:
            raise ConfigError(f"summary: cannot parse the value of {item!r}") from None
    return out


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from ..models.summary import format_summary, summarize

    args = _parse_rest(args)
    dataset = renamed_dataset(args.dataset, args.deprecated_preset, "summary --preset")
    summary = summarize(args.name, dataset=dataset, overrides=parse_overrides(args.overrides),
                        size=parse_size(args.size, where="summary: --size", minimum=(4, 4)), depth=args.depth)
    print(json.dumps(asdict(summary), indent=2) if args.json else format_summary(summary))
    return 0
