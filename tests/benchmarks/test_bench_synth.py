"""The synthetic-people benchmark script runs end to end and records what it measured (no timing asserts)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_synth.py"


def test_bench_synth_writes_every_figure_pinned_to_one_cpu(tmp_path: Path) -> None:
    out = tmp_path / "synth.json"
    run = subprocess.run([sys.executable, str(SCRIPT), "--images", "20", "--poses", "5", "--rounds", "2",
                          "--dir", str(tmp_path), "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    record = json.loads(out.read_text())
    assert record["images"] == 20 and record["poses"] == 5
    if hasattr(os, "sched_setaffinity"):
        assert isinstance(record["pinned_cpu"], int)
    rows = record["rows"]
    assert [r["what"] for r in rows] == ["render+jpeg", "generate_dataset"] * 2
    assert all(r["wall"] > 0 and r["cpu"] > 0 for r in rows)
    assert all(r["folder"] == str(tmp_path) for r in rows if r["what"] == "generate_dataset")
    assert list(tmp_path.iterdir()) == [out]  # the datasets it wrote are gone
    assert "pinned to cpu" in run.stdout
