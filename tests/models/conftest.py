"""Fixtures for the model tests: tiny random inputs at the two dataset sizes."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # the shared helpers of these tests: official_layout.py

SIZES = {"market": (128, 64), "deepfashion": (256, 176)}


def make_inputs(preset: str = "market", batch: int = 2, pose_channels: int = 18):
    """(source_image in [-1, 1], source heatmaps in [0, 1], target heatmaps in [0, 1]) at the preset's size."""
    h, w = SIZES[preset]
    gen = torch.Generator().manual_seed(1)
    image = torch.rand(batch, 3, h, w, generator=gen) * 2 - 1
    src = torch.rand(batch, pose_channels, h, w, generator=gen)
    tgt = torch.rand(batch, pose_channels, h, w, generator=gen)
    return image, src, tgt


@pytest.fixture
def inputs():
    return make_inputs


def assert_all_params_get_gradient(model: torch.nn.Module, loss: torch.Tensor) -> None:
    """Backward ``loss``; every parameter must have a gradient that is not all zero."""
    model.zero_grad(set_to_none=True)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    zero = [n for n, p in model.named_parameters() if p.grad is not None and not bool(p.grad.abs().sum() > 0)]
    assert not missing, f"no gradient: {missing}"
    assert not zero, f"all-zero gradient: {zero}"


@pytest.fixture
def grad_check():
    return assert_all_params_get_gradient


@pytest.fixture(autouse=True)
def _one_thread_everywhere(one_thread):
    """Every model test runs on one thread (the shared ``one_thread`` fixture of tests/conftest.py)."""
