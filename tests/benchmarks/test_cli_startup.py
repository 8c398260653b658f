"""The CLI start-up benchmark runs end to end and records what it measured (no timing asserts)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "cli_startup.py"


def test_cli_startup_times_help_and_first_work_with_the_heaviest_imports(tmp_path: Path) -> None:
    out = tmp_path / "startup.json"
    run = subprocess.run([sys.executable, str(SCRIPT), "--commands", "synth", "keypoints", "--repeats", "1",
                          "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    record = json.loads(out.read_text())
    assert set(record["commands"]) == {"synth", "keypoints"}
    assert len(record["loadavg_start"]) == 3 and len(record["loadavg_end"]) == 3
    for row in record["commands"].values():
        assert row["help_s"] > 0 and row["work_s"] > 0
        assert row["work_exit_code"] == 2              # stopped at the missing input, as intended
        assert row["heaviest_imports"] and row["heaviest_imports"][0]["cumulative_ms"] > 0
        assert row["heaviest_imports"][0]["module"].startswith(("posetransfer", "numpy"))
    assert "load average" in run.stdout
