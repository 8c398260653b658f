"""posetransfer — pose-guided person image generation (PATN, APATN, PoNA, structure-aware part flow).

Public API (see README):
    G = posetransfer.load_generator("run/checkpoints/latest")
    image = G(source_image, source_heatmaps, target_heatmaps)   # [-1, 1], B×3×H×W
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "build_generator", "build_discriminator", "load_generator"]


def __getattr__(name: str):  # lazy: importing the package must not import torch models eagerly
    if name in {"build_generator", "build_discriminator", "load_generator"}:
        from .models import registry

        return getattr(registry, name)
    raise AttributeError(name)
