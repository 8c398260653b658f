"""Shared fixtures. Tests run on CPU with few threads so the suite stays fast on 2 cores."""
from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
os.environ.setdefault("POSETRANSFER_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one thread is as fast as two and never spin-waits on a busy machine.

    Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")`` (tests/models does for all).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
