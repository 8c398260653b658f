"""CPU settings: threads from the CPUs the process may use, passive OpenMP waiting set before torch loads,
DataLoader workers that leave the model its cores, denormals flushed during training."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from posetransfer import cpu

REPO = Path(__file__).resolve().parents[1]


def test_cgroup_v2_quota_and_unlimited(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cpu.cgroup_cpu_limit(tmp_path) == pytest.approx(1.5)
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cpu.cgroup_cpu_limit(tmp_path) is None


def test_cgroup_v1_quota(tmp_path):
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("100000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cpu.cgroup_cpu_limit(tmp_path) == pytest.approx(1.0)
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert cpu.cgroup_cpu_limit(tmp_path) is None
    assert cpu.cgroup_cpu_limit(tmp_path / "absent") is None


def test_available_cpus_is_the_affinity_mask_capped_by_the_quota(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7})
    assert cpu.available_cpus(tmp_path) == 8                       # no cgroup files: the mask
    (tmp_path / "cpu.max").write_text("250000 100000\n")
    assert cpu.available_cpus(tmp_path) == 3                       # 2.5 CPUs of quota -> 3 threads
    (tmp_path / "cpu.max").write_text("20000 100000\n")
    assert cpu.available_cpus(tmp_path) == 1                       # never 0
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3})
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cpu.available_cpus(tmp_path) == 1                       # taskset -c 3


def test_thread_count_precedence():
    assert cpu.intra_op_threads(3, environ={"OMP_NUM_THREADS": "5"}, cpus=2) == 3     # explicit setting
    assert cpu.intra_op_threads(None, environ={"OMP_NUM_THREADS": "5"}, cpus=2) == 5  # the user's variable
    assert cpu.intra_op_threads(None, environ={"OMP_NUM_THREADS": "4,2"}, cpus=2) == 4
    assert cpu.intra_op_threads(None, environ={"OMP_NUM_THREADS": "junk"}, cpus=2) == 2
    assert cpu.intra_op_threads(None, environ={}, cpus=6) == 6


def test_loader_workers_leave_the_models_cores_on_cpu_only():
    assert cpu.loader_workers(4, "cpu", threads=2, cpus=2) == 0   # 2 cores, 2 model threads: none left
    assert cpu.loader_workers(4, "cpu", threads=1, cpus=2) == 1
    assert cpu.loader_workers(4, "cpu", threads=4, cpus=16) == 4  # never more than asked
    assert cpu.loader_workers(0, "cpu", threads=1, cpus=16) == 0
    assert cpu.loader_workers(4, "cuda", threads=2, cpus=2) == 4  # the GPU does the math: keep them


def test_passive_waiting_unless_the_user_chose():
    env: dict[str, str] = {}
    assert cpu.prefer_passive_waiting(env) and env["OMP_WAIT_POLICY"] == "PASSIVE"
    for name, value in (("OMP_WAIT_POLICY", "ACTIVE"), ("GOMP_SPINCOUNT", "10000"), ("KMP_BLOCKTIME", "0")):
        env = {name: value}
        assert not cpu.prefer_passive_waiting(env) and env == {name: value}


def test_prepare_process_does_nothing_once_torch_is_loaded():
    env: dict[str, str] = {}
    assert cpu.prepare_process(env) == {} and env == {}          # this test process imported torch already


def test_the_command_sets_waiting_and_threads_before_torch_loads():
    """A fresh process limited to one CPU: the CLI's first step sets OMP_WAIT_POLICY and OMP_NUM_THREADS,
    and torch, imported afterwards, runs on one thread."""
    code = (
        "import os, json; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
        "from posetransfer import cpu\n"
        "changed = cpu.prepare_process()\n"
        "import torch\n"
        "print(json.dumps({'changed': changed, 'threads': torch.get_num_threads()}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT",
                                                           "KMP_BLOCKTIME")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"changed": {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"}, "threads": 1}


def test_flush_denormals_zeroes_subnormal_results_only_while_active():
    tiny = torch.tensor([1e-39], dtype=torch.float32)              # below float32's smallest normal number
    assert (tiny * 1.0).item() != 0.0
    with cpu.flush_denormals() as supported:
        if not supported:
            pytest.skip("this CPU has no flush-to-zero mode")
        assert (tiny * 1.0).item() == 0.0
        assert (torch.tensor([1e-30]) * 1.0).item() == pytest.approx(1e-30)   # normal numbers untouched
    assert (tiny * 1.0).item() != 0.0
    with cpu.flush_denormals(enabled=False) as active:
        assert active is False and (tiny * 1.0).item() != 0.0
