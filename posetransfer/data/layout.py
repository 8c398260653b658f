"""The PATN on-disk layout, read side: dataset kinds, identities and pairs, and finding a split's files.

Layout (written by :mod:`posetransfer.data.prepare` and :mod:`posetransfer.data.synth`, read by
:class:`posetransfer.data.dataset.PairDataset` and every app)::

    <root>/train/*.jpg  <root>/test/*.jpg
    <root>/<prefix>-annotation-{train,test}.csv   # name:keypoints_y:keypoints_x
    <root>/<prefix>-pairs-{train,test}.csv        # from,to
    <root>/dataset.json                           # optional {"kind": ..., "size": [H, W], ...}

with ``prefix`` = ``market`` (Market-1501) or ``fasion-resize`` (DeepFashion; the typo is the official name).
Kept apart from the importer so that reading a prepared dataset never pulls in the raw-download code.
"""
from __future__ import annotations

import os
import re
from itertools import permutations
from pathlib import Path
from typing import Literal, Mapping

import numpy as np

from ..errors import DataError
from ..io import read_json
from ..kinds import FASHION, KINDS, parse_kind
from ..skeleton import REQUIRED_FOR_PAIRS
from . import keypoints as K

#: ``market`` | ``fashion``: a :attr:`posetransfer.kinds.Kind.name`
DatasetKind = Literal["market", "fashion"]
SPLITS = ("train", "test")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

#: Market-1501 names starting with these are junk (``-1``) or distractors (``0000``); PATN drops them.
MARKET_JUNK_PREFIXES = ("-1", "0000")

_FASHION_ID = re.compile(r"id(\d{8})(\d*)")


# --------------------------------------------------------------------------------------------------
# Identities and pairs
# --------------------------------------------------------------------------------------------------
def identity_of(name: str, kind: str) -> str:
    """The person identity encoded in an image name.

    * Market-1501 ``0002_c1s1_000451_03.jpg`` → ``0002`` (PATN: ``name.split('_')[0]``; junk ``-1_...`` → ``-1``).
    * DeepFashion ``fashionWOMENTees_Tanksid0000783805_7additional.jpg`` → ``id0000783805``: the 8-digit
      clothing-item id **plus the outfit digits that follow it** (``05`` = the ``05_*`` photo set of that
      item, i.e. the same person in the same clothes). The official script groups by
      ``name.split('_')[0]``, which yields exactly this for categories without ``_`` (``...Dressesid0000262902``)
      but the category prefix ``fashionWOMENTees`` for ``Tees_Tanks``, ``Blouses_Shirts``… — pairing
      different people. We take the id and outfit wherever they are; names without an ``id<8 digits>`` part
      fall back to the official ``split('_')[0]``.
    """
    base = os.path.basename(name)
    if parse_kind(kind) is FASHION:
        match = _FASHION_ID.search(base)
        if match:
            return match.group(0)
    return base.split("_")[0]


def is_pairable(name: str, keypoints: np.ndarray) -> bool:
    """PATN's filter: both hips and both shoulders present, and not a Market junk/distractor image."""
    if name.startswith(MARKET_JUNK_PREFIXES):
        return False
    miss = K.missing_mask(keypoints)
    return not bool(miss[list(REQUIRED_FOR_PAIRS)].any())


def build_pairs(annotations: Mapping[str, np.ndarray], kind: str, test_sample: int | None = None,
                seed: int = 0) -> list[tuple[str, str]]:
    """All ordered pairs ``(a, b)``, ``a != b``, of pairable images of one identity (``tool/create_pairs_dataset.py``).

    Order is deterministic and that of the official script: identities in order of first appearance in
    ``annotations``, and within one identity ``itertools.permutations`` of its images in annotation order.

    ``test_sample``: keep a random subset of ``min(test_sample, len(pairs))`` pairs without replacement
    (the official test lists: 12,000 Market pairs). The subset is drawn with ``numpy.random.default_rng(seed)``
    and kept in the order above; it is *not* the subset of pandas' ``DataFrame.sample(random_state=0)``
    (the released CSVs should be used when comparing with published numbers).
    """
    kind = parse_kind(kind).name
    groups: dict[str, list[str]] = {}
    for name, kp in annotations.items():
        if is_pairable(name, kp):
            groups.setdefault(identity_of(name, kind), []).append(name)
    pairs: list[tuple[str, str]] = []
    for names in groups.values():
        pairs.extend(permutations(names, 2))
    if test_sample is not None:
        if test_sample < 0:
            raise DataError(f"test_sample must be >= 0, got {test_sample}")
        n = min(int(test_sample), len(pairs))
        chosen = np.sort(np.random.default_rng(seed).choice(len(pairs), size=n, replace=False))
        pairs = [pairs[i] for i in chosen]
    return pairs


# --------------------------------------------------------------------------------------------------
# Finding the files of a split
# --------------------------------------------------------------------------------------------------
def read_dataset_json(root: str | os.PathLike) -> dict:
    """``<root>/dataset.json`` as a dict ({} when absent); a malformed file is a :class:`DataError`."""
    path = Path(root) / "dataset.json"
    if not path.is_file():
        return {}
    meta = read_json(path)
    if not isinstance(meta, dict):
        raise DataError(f"{path}: expected a JSON object")
    return meta


def detect_kind(root: str | os.PathLike) -> DatasetKind:
    """``market`` or ``fashion`` from dataset.json, else from the CSV names present in ``root``."""
    root = Path(root)
    meta = read_dataset_json(root)
    if "kind" in meta:
        return parse_kind(meta["kind"]).name  # type: ignore[return-value]
    for kind in KINDS:
        for prefix in kind.prefixes:
            if any((root / f"{prefix}-annotation-{split}.csv").is_file() for split in SPLITS):
                return kind.name  # type: ignore[return-value]
    raise DataError(
        f"{root}: cannot tell the dataset kind: no dataset.json and no market-annotation-*.csv or "
        f"fasion-resize-annotation-*.csv"
    )


def find_split_files(root: str | os.PathLike, split: str) -> tuple[Path, Path, Path]:
    """``(images_dir, annotation_csv, pairs_csv)`` of ``split`` (train/test) in a PATN-layout ``root``.

    Accepts the prefixes ``market``, ``fasion-resize`` (official), ``fashion-resize``, ``fasion`` (GFLA) and
    ``fashion``. Raises :class:`DataError` naming what is missing.
    """
    root = Path(root)
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r} (train or test)")
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder not found")
    prefixes = parse_kind(detect_kind(root)).prefixes
    images = root / split
    for prefix in prefixes:
        annotation = root / f"{prefix}-annotation-{split}.csv"
        pairs = root / f"{prefix}-pairs-{split}.csv"
        if annotation.is_file() and pairs.is_file():
            break
    else:
        present = [p for p in prefixes if (root / f"{p}-annotation-{split}.csv").is_file()]
        prefix = present[0] if present else prefixes[0]
        annotation = root / f"{prefix}-annotation-{split}.csv"
        pairs = root / f"{prefix}-pairs-{split}.csv"
        missing = annotation if not annotation.is_file() else pairs
        raise DataError(f"{missing}: {split} {'annotation' if missing == annotation else 'pairs'} file not found")
    if not images.is_dir():
        raise DataError(f"{images}: {split} image folder not found")
    return images, annotation, pairs
