"""The process's random streams (Python, NumPy, torch CPU and CUDA): seeding them, and their state as plain
data so a checkpoint can carry it (:mod:`posetransfer.checkpoint`) and a resumed run draws the same numbers."""
from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (what every seeded build and run starts with)."""
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def rng_state(device: torch.device) -> dict[str, Any]:
    """This process's generator states: torch/CUDA as uint8 tensors, NumPy/Python as JSON-able lists."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else [],
        "numpy": [name, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)],
        "python": [version, list(internal), gauss],
    }


def set_rng_state(torch_state: torch.Tensor, cuda_states: list[torch.Tensor], numpy_state: list,
                  python_state: list, device: torch.device) -> None:
    """Restore what :func:`rng_state` captured (the CUDA states only onto as many devices as were saved)."""
    torch.set_rng_state(torch_state)
    if device.type == "cuda" and cuda_states and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_states)
    name, keys, pos, has_gauss, cached = numpy_state
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = python_state
    random.setstate((version, tuple(internal), gauss))
