"""Fréchet Inception Distance with streamed statistics and a cached real set.

Two FID *kinds* are computed with this one module; they differ only in the feature network and its input
(see :data:`posetransfer.metrics.protocols.FID_KINDS`), and the results JSON says which was used:

* ``tf`` — TF-FID, the field standard (TTUR, pytorch-fid): pool3 (2048-d) of the TF ``inception-2015-12-05``
  graph (:mod:`posetransfer.weights.inception`);
* ``gfla`` — GFLA's ``script/metrics.py``, the source of the FIDs in the GFLA and structure-aware papers:
  torchvision's ImageNet Inception-v3 with GFLA's resize and normalisation
  (:mod:`posetransfer.weights.inception_torchvision`).

In both, the *real* statistics come from **all training images** at the evaluation resolution and the fake
statistics from every generated test image; mean and covariance as ``np.mean`` / ``np.cov(rowvar=False)``
(ddof 1), the distance ``|mu1 - mu2|² + tr(S1 + S2 - 2 sqrt(S1 S2))``. GFLA's script drops the last partial
batch of 64 — :mod:`posetransfer.metrics.ordering` selects those images when that is asked for; by default
every image is used, and the counts are recorded.

The real-set statistics take minutes for Market's 12,936 training images on CPU, so they are cached in
``<cache dir>/fid/<key>.npz`` where the key hashes the file list (names, sizes, mtimes) and every setting the
features depend on (network file, FID kind, preprocessing, resolution, resize). A change of any of them is a miss.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..errors import DataError
from ..io import atomic_path, read_image

log = logging.getLogger(__name__)

CACHE_VERSION = 1
CACHE_ENV = "POSETRANSFER_CACHE_DIR"


def default_cache_dir() -> Path:
    """``$POSETRANSFER_CACHE_DIR`` or ``~/.cache/posetransfer``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "posetransfer"


# --------------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------------
class FeatureStats:
    """Running mean / covariance of feature vectors (float64 sums), optionally keeping the features.

    Keeping them (``keep=True``) lets :func:`frechet_distance` use the exact low-rank formula when there
    are fewer samples than dimensions, which is both faster and better conditioned.
    """

    def __init__(self, dim: int = 2048, keep: bool = False) -> None:
        self.dim = dim
        self.n = 0
        self._sum = np.zeros(dim, dtype=np.float64)
        self._outer = np.zeros((dim, dim), dtype=np.float64)
        self._kept: list[np.ndarray] | None = [] if keep else None

    def update(self, features) -> None:
        f = np.asarray(features, dtype=np.float64).reshape(-1, self.dim)
        self.n += len(f)
        self._sum += f.sum(axis=0)
        self._outer += f.T @ f
        if self._kept is not None:
            self._kept.append(f.astype(np.float32))

    @property
    def features(self) -> np.ndarray | None:
        if self._kept is None:
            return None
        return np.concatenate(self._kept) if self._kept else np.zeros((0, self.dim), np.float32)

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and unbiased covariance (``np.cov`` convention, ddof = 1)."""
        if self.n < 2:
            raise DataError(f"FID needs at least 2 images, got {self.n}")
        mu = self._sum / self.n
        cov = (self._outer - self.n * np.outer(mu, mu)) / (self.n - 1)
        return mu, (cov + cov.T) / 2.0


def _trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray, features2: np.ndarray | None) -> float:
    """``tr sqrt(sigma1 @ sigma2)`` for PSD matrices without a general (slow, unstable) matrix square root.

    The eigenvalues of ``sigma1 sigma2`` equal those of the symmetric ``S^½ sigma2 S^½`` (S = sigma1) and, when
    ``sigma2 = Xcᵀ Xc / (n-1)`` with n ≤ d, the non-zero ones equal those of the n×n ``Xc sigma1 Xcᵀ / (n-1)``.
    """
    if features2 is not None and 1 < len(features2) <= sigma1.shape[0]:
        xc = features2.astype(np.float64) - features2.mean(axis=0, dtype=np.float64)
        small = xc @ sigma1 @ xc.T / (len(features2) - 1)
        eig = np.linalg.eigvalsh((small + small.T) / 2.0)
    else:
        w, v = np.linalg.eigh(sigma1)
        root = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
        inner = root @ sigma2 @ root
        eig = np.linalg.eigvalsh((inner + inner.T) / 2.0)
    return float(np.sqrt(np.clip(eig, 0.0, None)).sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     features2: np.ndarray | None = None) -> float:
    """``|mu1 - mu2|² + tr(sigma1 + sigma2 - 2 sqrt(sigma1 sigma2))`` (Heusel et al. 2017)."""
    diff = np.asarray(mu1, np.float64) - np.asarray(mu2, np.float64)
    tr_root = _trace_sqrt_product(np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64), features2)
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_root)
    return max(value, 0.0)


def fid_from_stats(real: tuple[np.ndarray, np.ndarray], fake: FeatureStats) -> float:
    mu_f, sigma_f = fake.mean_cov()
    return frechet_distance(real[0], real[1], mu_f, sigma_f, fake.features)


# --------------------------------------------------------------------------------------------------
# Real-set statistics with a cache
# --------------------------------------------------------------------------------------------------
@dataclass
class RealStats:
    mu: np.ndarray
    sigma: np.ndarray
    n: int
    cache: str  # "hit", "miss" or "off"
    cache_file: str | None
    resized: int
    folder: str


def real_set_key(files: Sequence[Path], settings: dict) -> str:
    """Content key: every file's name, size and mtime (ns) plus the feature settings."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"version": CACHE_VERSION, "settings": settings}, sort_keys=True).encode())
    for f in files:
        st = f.stat()
        digest.update(f"{f.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


def load_real_image(path: Path, size: tuple[int, int]) -> tuple[np.ndarray, bool]:
    """A real image at ``size`` (H, W); other sizes are resized bicubic (second value True)."""
    from PIL import Image

    image = read_image(path)
    if image.shape[:2] == tuple(size):
        return image, False
    resized = Image.fromarray(image).resize((size[1], size[0]), Image.BICUBIC)
    return np.asarray(resized), True


def real_set_statistics(files: Sequence[Path], extractor, size: tuple[int, int], *,
                        cache_dir: str | os.PathLike | None = None, use_cache: bool = True,
                        batch_size: int = 32, progress: Callable | None = None) -> RealStats:
    """FID statistics of the real images ``files`` at ``size``; read from / written to the cache."""
    files = sorted(Path(f) for f in files)
    if len(files) < 2:
        raise DataError(f"FID real set needs at least 2 images, found {len(files)}")
    folder = str(files[0].parent)
    settings = {"extractor": extractor.identity(), "size": list(size), "resize": "PIL bicubic"}
    key = real_set_key(files, settings)
    cache_file = Path(cache_dir or default_cache_dir()) / "fid" / f"{key}.npz"
    if use_cache and cache_file.is_file():
        try:
            with np.load(cache_file, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                log.info("FID real statistics of %s read from cache %s", folder, cache_file)
                return RealStats(data["mu"], data["sigma"], int(data["n"]), "hit", str(cache_file),
                                 int(meta.get("resized", 0)), folder)
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
            log.warning("%s: unreadable FID cache (%s), recomputing", cache_file, exc)
    stats = FeatureStats()
    resized = 0
    iterator = range(0, len(files), batch_size)
    bar = progress(total=len(files), desc="FID real set", unit="img") if progress else None
    for start in iterator:
        batch = []
        for f in files[start:start + batch_size]:
            image, was_resized = load_real_image(f, size)
            resized += was_resized
            batch.append(image)
        feats, _ = extractor(batch)
        stats.update(feats.numpy())
        if bar is not None:
            bar.update(len(batch))
    if bar is not None:
        bar.close()
    mu, sigma = stats.mean_cov()
    if use_cache:
        meta = json.dumps({"folder": folder, "n": stats.n, "resized": resized, **settings})
        with atomic_path(cache_file) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, mu=mu, sigma=sigma, n=np.int64(stats.n), meta=np.array(meta))
    return RealStats(mu, sigma, stats.n, "miss" if use_cache else "off", str(cache_file) if use_cache else None,
                     resized, folder)
