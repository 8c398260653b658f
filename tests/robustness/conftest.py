"""Fixtures of the robustness tests: the tiny dataset, the fault-injection driver, a fault tally.

``POSETRANSFER_FAULT_REPORT=path.json`` makes the tests write what they tried and what was lost (the
numbers of the table in docs/robustness.md).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import faultlib  # noqa: E402

_TALLY: dict[str, dict] = {}


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """3 synthetic people × 3 poses at 32×16 (2 train identities: 12 pairs; 1 test identity)."""
    return faultlib.make_tiny_dataset(tmp_path_factory.mktemp("robust") / "data")


@pytest.fixture
def driver(tmp_path):
    """``driver(plan) -> result`` with the logs in this test's tmp_path."""
    return lambda plan, timeout=600: faultlib.run_driver(plan, tmp_path, timeout)


@pytest.fixture(scope="session")
def tally():
    """``tally(fault, tried=1, **counts)``: accumulate what each fault test tried and observed."""

    def add(fault: str, **counts) -> None:
        row = _TALLY.setdefault(fault, {})
        for key, value in counts.items():
            if key.startswith("max_"):
                row[key] = max(row.get(key, value), value)
            elif isinstance(value, (int, float)):
                row[key] = row.get(key, 0) + value
            else:
                row[key] = value

    yield add
    target = os.environ.get("POSETRANSFER_FAULT_REPORT")
    if target and _TALLY:
        Path(target).write_text(json.dumps(_TALLY, indent=1, sort_keys=True) + "\n")
