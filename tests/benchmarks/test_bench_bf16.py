"""The bf16 benchmarks run end to end and record what they measured (speed columns, quality against fp32).

On a CPU without bf16 instructions both scripts' bf16 runs are refused, which the refusal tests of
tests/models/test_fast.py and tests/apps/test_fast_path_commands.py cover; here they are skipped.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from posetransfer.models.fast import cpu_bf16_native

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not cpu_bf16_native(), reason="this CPU has no bf16 instructions")


def test_bench_official_adds_a_bf16_column_without_an_official_checkout(tmp_path: Path) -> None:
    out, md = tmp_path / "official.json", tmp_path / "official.md"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_official.py"), "--cases", "patn:market:1",
                          "--load", "idle", "--rounds", "1", "--min-time", "0.01", "--bf16",
                          "--json", str(out), "--md", str(md)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    (row,) = json.loads(out.read_text())["rows"]
    assert set(row["median_s"]) == {"plain", "fast", "bf16"} and row["speedup_vs_plain"]["bf16"] > 0
    assert 0 < row["max_abs_diff_vs_plain"]["bf16"] <= 0.1
    assert "| patn | 128×64 | 1 | idle | – |" in md.read_text()


def test_bench_bf16_quality_scores_both_precisions_through_the_commands(tmp_path: Path) -> None:
    from posetransfer.data.synth import generate_dataset
    from posetransfer.modelfile import save_generator
    from posetransfer.models.registry import build_generator

    data = Path(generate_dataset(tmp_path / "data", size="market", identities=4, poses=2, test_identities=2, seed=0))
    model = build_generator("patn", dataset="market", ngf=16, n_blocks=1).eval()
    save_generator(model, tmp_path / "g.safetensors")
    out, md = tmp_path / "q.json", tmp_path / "q.md"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_bf16_quality.py"), "--checkpoint",
                          str(tmp_path / "g.safetensors"), "--data", str(data), "--pairs", "3", "--batch", "2",
                          "--rounds", "1", "--json", str(out), "--md", str(md)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    record = json.loads(out.read_text())
    assert record["bf16_vs_fp32"]["images"] == 3 and record["bf16_vs_fp32"]["ssim_bf16_vs_fp32_mean"] > 0.9
    assert set(record["metrics"]) == {"fp32", "bf16"} and "ssim" in record["metrics"]["bf16"]
    assert "| bf16 |" in md.read_text()
