"""The training-step benchmark script runs end to end and records what it measured (no timing asserts)."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_train_step.py"


def _script():
    spec = importlib.util.spec_from_file_location("bench_train_step", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_train_step_measures_profiles_and_writes_the_tables(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    run = subprocess.run([sys.executable, str(SCRIPT), "--no-lock", "--conditions", "idle", "--only", "after",
                          "after, generator extras on every step", "--rounds", "1", "--steps", "1", "--warmup", "1",
                          "--identities", "4", "--presets", "--profile-steps", "1", "--out", str(tmp_path),
                          "--tag", "t"], capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    record = json.loads((tmp_path / "t.json").read_text())
    assert [(r["label"], r["condition"]) for r in record["runs"]] == [
        ("after", "idle"), ("after, generator extras on every step", "idle")]
    for r in record["runs"]:
        assert len(r["step_s"]) == 1 and len(r["warmup_s"]) == 1 and r["median_s"] > 0 and r["cpu_median_s"] > 0
        assert r["omp_wait_policy"] == "PASSIVE" and len(r["loadavg_before"]) == 3
    (profile,) = record["profiles"]
    assert profile["label"] == "after"
    assert set(profile["profile"]["components"]) == {"G", "D.appearance", "D.shape", "VGG"}
    assert profile["profile"]["rest"] and profile["profile"]["top_ops"]
    table = (tmp_path / "t.md").read_text()
    assert "| after, generator extras on every step |" in table and "where the time went" in table
    assert "load average" in table and record["presets"] == []


def test_the_cpu_bound_neighbour_is_killed_even_when_the_measurement_fails() -> None:
    bench = _script()
    with pytest.raises(RuntimeError):
        with bench.cpu_hog(True) as pid:
            os.kill(pid, 0)                       # running
            raise RuntimeError("measurement failed")
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with bench.cpu_hog(False) as nothing:
        assert nothing is None


def test_every_ablation_undoes_one_change_of_after() -> None:
    bench = _script()
    variants = {label: (checkout, env, change, conditions)
                for label, checkout, env, change, conditions in bench.demo_variants(Path("/old"), True)}
    assert variants["before"][0] == Path("/old") and variants["before"][3] == ("idle", "hog")
    assert variants["after"] == (bench.REPO, {}, {"prepare": True}, ("idle", "hog"))
    for label, (checkout, env, change, _) in variants.items():
        if label.startswith("after,"):
            assert checkout == bench.REPO and change["prepare"] is True
            assert len(env) + len(change) == 2, label          # exactly one thing differs from "after"
    assert variants["after, OpenMP spinning (libgomp default)"][1] == {"GOMP_SPINCOUNT": "300000"}
    assert [label for label, *_ in bench.demo_variants(None, False)] == ["after"]
