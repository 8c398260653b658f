"""Data-parallel training for real: ``torchrun`` with 2 CPU processes (gloo) against one process.

With the same global batch, dropout off, no normalisation layers and no image pool, the two runs compute the
same mean gradients; only the order of the floating-point reduction differs (DDP averages two half-batch
means). Adam turns those last-bit differences into at most a fraction of its step size (lr), so with
lr 5e-5 the weights agree to ~1e-7 after 4 steps (measured here: generator 4e-9, discriminators 1.5e-7) —
the test allows 1e-6. Within the DDP run the two processes must hold bit-identical weights (checked by the
trainer with sha256 over all tensors, reported as ``replicas_identical`` in summary.json).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from posetransfer.checkpoint import GENERATOR_FILE, DISCRIMINATORS_FILE
from posetransfer.config import dump_config, load_config
from posetransfer.devices import resolve_device
from posetransfer.distributed import DistInfo, setup
from posetransfer.errors import ConfigError
from posetransfer.train import train

sys.path.insert(0, str(Path(__file__).parent))
from test_train import TINY, make_dataset  # noqa: E402  (shared tiny dataset writer)

TOLERANCE = 1e-6


pytestmark = pytest.mark.usefixtures("one_thread")


def test_two_cpu_processes_match_one_process_with_the_same_global_batch(tmp_path):
    from safetensors.torch import load_file

    data = make_dataset(tmp_path / "data", identities=4, poses=2)
    # no normalisation: with instance norm the conv biases before it have a zero gradient up to rounding
    # noise, which Adam's first steps (update ≈ lr · sign(g)) would turn into ±lr differences between runs
    config = load_config("patn-market", TINY + ["model.dropout=0.0", "discriminators.appearance.dropout=0.0",
                                                "model.norm=none", "discriminators.appearance.norm=none",
                                                "discriminators.shape.norm=none", "loss.pool_size=0", "optim.lr=5e-5", "train.batch_size=4", "train.checkpoint_every=2",
                                                "train.device=cpu"])
    preset = tmp_path / "ddp.yaml"
    preset.write_text(dump_config(config))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "posetransfer", "train", "--preset", str(preset), "--data", str(data),
               "--out", str(tmp_path / "ddp"), "--steps", "4", "--no-progress"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["replicas_identical"] is True and summary["steps"] == 4

    single = train(config, data, tmp_path / "single", steps=4, progress=False)
    assert single["world_size"] == 1
    for name in (GENERATOR_FILE, DISCRIMINATORS_FILE):
        a = load_file(str(tmp_path / "ddp" / "checkpoints" / "step_00000004" / name))
        b = load_file(str(tmp_path / "single" / "checkpoints" / "step_00000004" / name))
        assert a.keys() == b.keys()
        worst = max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point())
        assert worst < TOLERANCE, f"{name}: max difference {worst}"
        moved = max((a[k].double() - load_file(str(tmp_path / "single" / "checkpoints" / "step_00000002" / name))[k]
                     .double()).abs().max().item() for k in a if a[k].is_floating_point())
        assert moved > 10 * TOLERANCE, "the weights must have changed between steps 2 and 4"


def test_single_process_setup_and_device_choice(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    info = setup("cpu")
    assert info == DistInfo() and info.is_main and not info.distributed
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        assert resolve_device("auto").type == "cpu"
        with pytest.raises(ConfigError, match="cuda"):
            resolve_device("cuda")


def test_global_batch_must_split_evenly(tmp_path, monkeypatch):
    data = make_dataset(tmp_path / "data", identities=2, poses=2)
    config = load_config("patn-market", TINY + ["train.batch_size=3"])
    fake = DistInfo(rank=0, world_size=2)
    monkeypatch.setattr("posetransfer.distributed.setup", lambda preference: fake)
    with pytest.raises(ConfigError, match="not divisible"):
        train(config, data, tmp_path / "run", steps=1, progress=False)
