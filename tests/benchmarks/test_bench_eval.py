"""The evaluation benchmark runs end to end (old and new checkout, interleaved) and records its figures."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "bench_eval.py"


def test_bench_eval_compares_two_checkouts_and_writes_json_and_markdown(tmp_path: Path) -> None:
    out, md = tmp_path / "eval.json", tmp_path / "eval.md"
    run = subprocess.run([sys.executable, str(SCRIPT), "--old", str(ROOT), "--pairs", "4", "--rounds", "2",
                          "--cases", "patn/market", "--metrics", "ssim,l1", "--json", str(out), "--md", str(md)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    record = json.loads(out.read_text())
    (row,) = record["rows"]
    assert row["case"] == "patn/market" and row["images"] == 4 and record["metrics"] == "ssim,l1"
    for version in ("old", "new"):
        assert len(row[f"{version}_images_per_second"]["runs"]) == 2 and row[f"{version}_startup_s"]["median"] > 0
    assert row["metrics"]["old"] == row["metrics"]["new"]  # the same checkout twice: the same numbers
    assert "| patn/market | 4 |" in md.read_text()
