"""benchmarks/demo_runs.sh runs the demo quiet and beside a CPU hog, records both and kills the hog.

The demo itself is replaced by a stand-in command that writes the demo's metrics.json (the real one takes
minutes; tests/test_demo.py covers it), so this checks the script's own work: one run per condition, the hog
present only during the hog run and gone afterwards, the summary and the table.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "demo_runs.sh"

COUNT_HOGS = r'''
def count_hogs():
    import os
    found = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            found += open(f"/proc/{pid}/cmdline", "rb").read().endswith(b"-c\0while True: pass\0")
        except OSError:
            pass
    return found
'''
FAKE_DEMO = COUNT_HOGS + r'''
import json, os, sys
from pathlib import Path
out = Path(sys.argv[sys.argv.index("--out") + 1])
out.mkdir(parents=True)
Path(os.environ["HOG_LOG"]).open("a").write(f"{out.name} {count_hogs()}\n")
score = lambda s, l: {"ssim": s, "l1": l}
json.dump({"model": score(0.28, 0.31), "copy_source": score(0.258, 0.332), "untrained": score(0.002, 0.339),
           "training": {"steps": 700}, "passed": True}, (out / "metrics.json").open("w"))
print("the trained PATN beats copying the source image")
'''


@pytest.mark.skipif(shutil.which("flock") is None, reason="needs flock(1)")
def test_both_runs_are_recorded_and_the_hog_runs_only_beside_the_second(tmp_path: Path) -> None:
    fake = tmp_path / "fake_demo.py"
    fake.write_text(FAKE_DEMO)
    env = {**os.environ, "POSETRANSFER": f"{sys.executable} {fake}", "PYTHON": sys.executable,
           "LOCK": str(tmp_path / "lock"), "HOG_LOG": str(tmp_path / "hogs.txt")}
    out = tmp_path / "runs"
    run = subprocess.run(["bash", str(SCRIPT), str(out)], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    # the stand-in saw no hog of this test's own beside the quiet run and one beside the hog run
    seen = dict(line.split() for line in (tmp_path / "hogs.txt").read_text().splitlines())
    assert set(seen) == {"quiet", "hog"} and int(seen["hog"]) == int(seen["quiet"]) + 1
    namespace: dict = {}
    exec(COUNT_HOGS, namespace)
    assert namespace["count_hogs"]() == int(seen["quiet"])  # killed (other helpers' hogs aside)
    rows = (out / "summary.tsv").read_text().splitlines()
    assert [r.split("\t")[0] for r in rows] == ["run", "quiet", "hog"]
    hog_row = dict(zip(rows[0].split("\t"), rows[2].split("\t")))
    assert hog_row["steps"] == "700" and hog_row["model_ssim"] == "0.2800" and hog_row["copy_l1"] == "0.3320"
    assert len(hog_row["load_before"].split()) == 3 and int(hog_row["wall_s"]) >= 0
    table = (out / "demo_runs.md").read_text()
    assert "| hog |" in table and "0.2800 / 0.3100 | 0.2580 / 0.3320" in table
    assert (out / "hog.console.txt").read_text().startswith("the trained PATN beats")
    json.loads((out / "quiet" / "metrics.json").read_text())
