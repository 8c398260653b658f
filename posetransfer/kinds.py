"""The two dataset kinds (Market-1501, DeepFashion In-shop) and the one parser of image sizes.

Why a module of its own, with no heavy imports: the frame size, the CSV prefix, the norm the papers use and
the spellings people type ("fashion", "deepfashion", the dataset's own "fasion") used to be written out in
the data layer, every model file, the benchmark, the config schema and the synthetic generator, each with
its own list of aliases and its own size parser. Everything now asks :func:`parse_kind` / :func:`parse_size`.

Two spellings of DeepFashion survive on purpose, because both are in files people already have:
:attr:`Kind.name` (``fashion``) is what ``dataset.json``, input contracts and metrics write;
:attr:`Kind.dataset` (``deepfashion``) is the key of the models' per-dataset settings
(``build_generator("patn", dataset="deepfashion")``), of the training presets' file names and of the
benchmark rows. :func:`parse_kind` accepts either, and every alias, and gives the one :class:`Kind`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError, DataError, PosetransferError


@dataclass(frozen=True)
class Kind:
    """One benchmark dataset and everything the code base needs to know about it."""

    #: canonical name: ``dataset.json``'s ``kind``, input contracts, evaluation results
    name: str
    #: the key of the models' per-dataset settings and of the training presets (``patn-deepfashion``)
    dataset: str
    #: human-readable name
    title: str
    #: the short label of the metric tables (``M``, ``DF``)
    label: str
    #: every other accepted spelling (lower case)
    aliases: tuple[str, ...]
    #: (H, W) of the images the papers train and test on
    size: tuple[int, int]
    #: (H, W) of the downloaded images before the published crop (DeepFashion: 256×256, cropped to 256×176)
    raw_size: tuple[int, int]
    #: annotation / pairs CSV prefixes read (``<prefix>-annotation-train.csv``); the first is the one written
    prefixes: tuple[str, ...]
    #: the prefixes ``prepare`` finds by itself (not GFLA's ``fasion-annotation-*``, which names the 256×176
    #: files in GFLA but the 256×256 input of the official ``resize_fashion.py``: pass those explicitly)
    discovered_prefixes: tuple[str, ...]
    #: the PATN-family norm of the published models (CVPR'19: batch norm on Market, instance norm on DeepFashion)
    norm: str

    @property
    def prefix(self) -> str:
        """The CSV prefix this project writes (DeepFashion: the official ``fasion-resize`` typo)."""
        return self.prefixes[0]

    @property
    def spellings(self) -> tuple[str, ...]:
        """Every lower-case name that means this kind."""
        return (self.name, self.dataset, *self.aliases)


MARKET = Kind(name="market", dataset="market", title="Market-1501", label="M",
              aliases=("market1501", "market-1501"), size=(128, 64), raw_size=(128, 64),
              prefixes=("market",), discovered_prefixes=("market",), norm="batch")
FASHION = Kind(name="fashion", dataset="deepfashion", title="DeepFashion", label="DF",
               aliases=("fasion", "deep-fashion"), size=(256, 176), raw_size=(256, 256),
               prefixes=("fasion-resize", "fashion-resize", "fasion", "fashion"),
               discovered_prefixes=("fasion-resize", "fashion-resize"), norm="instance")
#: DeepFashion 256×256 → 256×176 is the centre crop ``img.crop((40, 0, 216, 256))``.
FASHION_CROP_LEFT = 40

KINDS: tuple[Kind, ...] = (MARKET, FASHION)
#: the canonical names, for ``choices=`` and schema enums
KIND_NAMES: tuple[str, ...] = tuple(k.name for k in KINDS)
#: the models' dataset-settings keys, for ``choices=``
DATASET_NAMES: tuple[str, ...] = tuple(k.dataset for k in KINDS)

#: sides beyond this are garbage (and would overflow int64 on the way); real images are far smaller
MAX_SIDE = 1 << 20


def find_kind(text: Any) -> Kind | None:
    """The kind ``text`` names (any spelling, any case), or None."""
    if isinstance(text, Kind):
        return text
    if not isinstance(text, str):
        return None
    key = text.strip().lower()
    return next((k for k in KINDS if key in k.spellings), None)


def parse_kind(text: Any, *, what: str = "dataset kind", error: type[PosetransferError] | None = None) -> Kind:
    """The :class:`Kind` of ``text``; anything else is ``error`` (default :class:`DataError`) naming ``what``."""
    kind = find_kind(text)
    if kind is None:
        raise (error or DataError)(f"unknown {what} {text!r} (market or fashion)")
    return kind


def kind_of_filename(name: str) -> Kind | None:
    """The kind a CSV file name starts with (``market-…``, ``fasion-resize-…``, ``deepfashion-…``), or None."""
    lower = name.lower()
    return next((k for k in KINDS if lower.startswith(k.spellings)), None)


def parse_size(value: Any, *, where: str = "size", error: type[PosetransferError] = ConfigError,
               multiple: int = 1, minimum: tuple[int, int] = (1, 1)) -> tuple[int, int] | None:
    """(H, W) of a kind name (``market`` → 128×64), ``HxW`` / ``H×W`` / ``H,W`` text or an [H, W] pair.

    None stays None (an option not given). The one size parser of the code base: command-line ``--size``
    options, ``dataset.json``, keypoint JSONs and input contracts all come here, so they accept and refuse
    the same things. ``where`` starts the one-line ``error``; ``multiple`` and ``minimum`` are the
    caller's constraints (the generators need multiples of 4; the synthetic renderer at least 32×16).
    """
    if value is None:
        return None
    if isinstance(value, str):
        kind = find_kind(value)
        if kind is not None:
            return kind.size
        parts = value.strip().lower().replace("×", "x").replace(",", "x").split("x")
        try:
            h, w = (int(p) for p in parts)   # two parts, each an integer (a ValueError otherwise)
        except ValueError:
            raise error(f"{where} {value!r}: use market, fashion or HxW (e.g. 128x64)") from None
    else:
        try:
            items = list(value)
        except TypeError:
            items = []
        if len(items) != 2 or not all(_integral(v) for v in items):
            raise error(f"{where} {value!r}: must be [H, W], two positive integers")
        h, w = int(items[0]), int(items[1])
    if h < minimum[0] or w < minimum[1] or h > MAX_SIDE or w > MAX_SIDE:
        raise error(f"{where} {value!r}: must be at least {minimum[0]}x{minimum[1]} (and at most {MAX_SIDE})")
    if h % multiple or w % multiple:
        raise error(f"{where} {value!r}: height and width must be positive multiples of {multiple}")
    return h, w


def _integral(v: Any) -> bool:
    """A whole number (an integral float from JSON too), not a bool, a string or NaN."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) and not hasattr(v, "__index__"):
        return False
    try:
        return float(v) == int(v)
    except (TypeError, ValueError, OverflowError):
        return False


def renamed_dataset(dataset: str | None, preset: str | None, where: str) -> str | None:
    """``dataset``, or the value of the deprecated ``preset=`` / ``--preset`` that meant the same (logged once
    per call): "preset" now means only a YAML training preset."""
    if preset is None:
        return dataset
    logging.getLogger("posetransfer").warning(
        "%s: preset=%r for the dataset settings is deprecated; use dataset=%r (--dataset)", where, preset, preset)
    return preset if dataset is None else dataset
