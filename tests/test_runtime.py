"""posetransfer.runtime: the inference commands choose threads and the OpenMP wait policy before torch loads."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from posetransfer import runtime

ROOT = Path(__file__).resolve().parents[1]


def _fresh(code: str, **env: str) -> dict:
    """Run ``code`` in a new interpreter (torch not imported yet) and return the JSON it prints last."""
    environ = {k: v for k, v in os.environ.items() if k not in runtime.WAIT_VARIABLES}
    environ.update(env, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_configure_threads_before_torch_sets_the_passive_policy_and_one_thread_per_core():
    got = _fresh("import json, os; from posetransfer.runtime import configure_threads; from posetransfer.cpu import available_cpus; "
                 "s = configure_threads(); import torch; print(json.dumps({**s.to_json(), "
                 "'env': os.environ['OMP_WAIT_POLICY'], 'torch': torch.get_num_threads(), 'cores': available_cpus()}))")
    assert got["env"] == "PASSIVE" and got["wait_policy"] == "passive" and got["wait_policy_applied"]
    assert got["threads"] == got["torch"] == got["cores"] == len(os.sched_getaffinity(0))


def test_a_policy_the_user_set_is_kept_and_threads_can_be_chosen():
    got = _fresh("import json; from posetransfer.runtime import configure_threads; "
                 "print(json.dumps(configure_threads(1).to_json()))", GOMP_SPINCOUNT="1000")
    assert got["wait_policy"] == "spin=1000" and got["threads"] == 1


def test_after_torch_is_imported_the_policy_cannot_change_and_the_thread_count_stays():
    got = _fresh("import json, torch; torch.set_num_threads(1); from posetransfer.runtime import configure_threads; "
                 "print(json.dumps(configure_threads().to_json()))")
    assert got["wait_policy_applied"] is False and got["threads"] == 1


def test_building_the_cli_parser_does_not_import_torch():
    """The commands set the wait policy in their prepare step, so nothing before it may load torch."""
    got = _fresh("import json, sys; from posetransfer.cli import build_parser; build_parser(); "
                 "print(json.dumps({'torch': 'torch' in sys.modules}))")
    assert got["torch"] is False


@pytest.mark.parametrize("env,expected", [({"OMP_WAIT_POLICY": "passive"}, "passive"),
                                          ({"OMP_WAIT_POLICY": "ACTIVE"}, "active"),
                                          ({"GOMP_SPINCOUNT": "0"}, "passive"), ({}, "default")])
def test_effective_wait_policy_reads_the_environment(monkeypatch, env, expected):
    for name in runtime.WAIT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert runtime.effective_wait_policy() == expected
    assert runtime.waits_passively() == (expected == "passive")


def test_winograd_is_on_by_default_only_with_passive_waiting(monkeypatch):
    import torch

    from posetransfer.models import fast, winograd
    from posetransfer.models.registry import build_generator
    from posetransfer.models.winograd import WinogradConv2d

    monkeypatch.setattr(winograd, "MIN_INTENSITY", 0)  # this small model's widths would keep the direct kernel
    model = build_generator("patn", dataset="market", ngf=32, n_blocks=1).eval()
    if not fast.prepack_available():
        pytest.skip("no oneDNN in this torch build")
    for value, wanted in (("PASSIVE", True), ("ACTIVE", False)):
        monkeypatch.setenv("OMP_WAIT_POLICY", value)
        optimized = fast.optimize_for_inference(model)
        assert any(isinstance(m, WinogradConv2d) for m in optimized.modules()) is wanted
        assert optimized.description()["wait_policy"] == value.lower()
    assert torch.get_num_threads() >= 1
