"""Start-up time of every ``posetransfer`` command: ``--help`` and the imports a command needs before its first
piece of work, each in a fresh process, with the heaviest imports from ``python -X importtime``.

    flock /tmp/posetransfer-bench.lock python benchmarks/cli_startup.py --repeats 5

"work" runs the command on inputs that do not exist, so it stops at its first file access: what is timed is
the interpreter, the imports and the argument checks — the wait a user has before anything happens (``models``
and ``summary`` run to completion: they need no input). Rounds are interleaved (every command once, then
again) so that a change of machine load spreads over all of them; the median and the spread are reported,
with the load average at the start and at the end. Writes ``benchmarks/results/cli_startup.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: command → arguments that reach the command's first file access ({tmp}: a scratch folder, {missing}: no file)
WORK: dict[str, list[str]] = {
    "demo": ["demo", "--out", "{tmp}/demo", "--minutes", "0"],
    "synth": ["synth", "--out", "{tmp}/synth", "--identities", "1"],
    "prepare": ["prepare", "pairs", "{missing}.csv", "{tmp}/pairs.csv"],
    "train": ["train", "--preset", "patn-market", "--data", "{missing}", "--out", "{tmp}/run"],
    "test": ["test", "--checkpoint", "{missing}.safetensors", "--data", "{missing}", "--out", "{tmp}/gen"],
    "eval": ["eval", "--generated", "{missing}", "--data", "{missing}"],
    "keypoints": ["keypoints", "{missing}.jpg", "--out", "{tmp}/k.csv"],
    "transfer": ["transfer", "--checkpoint", "{missing}.safetensors", "--source", "{missing}.jpg",
                 "--target", "{missing}.json", "--out", "{tmp}/o.png"],
    "animate": ["animate", "--checkpoint", "{missing}.safetensors", "--source", "{missing}.jpg",
                "--poses", "{missing}", "--out", "{tmp}/a.mp4"],
    "reid-augment": ["reid-augment", "--checkpoint", "{missing}.safetensors", "--data", "{missing}",
                     "--out", "{tmp}/reid"],
    "serve": ["serve", "--checkpoint", "{missing}.safetensors"],
    "convert": ["convert", "--arch", "patn", "--input", "{missing}.pth", "--out", "{tmp}/c.safetensors"],
    "models": ["models"],
    "summary": ["summary", "patn"],
    "bench": ["bench", "--models", "nosuchmodel", "--quick"],
}


def _run(args: list[str], env: dict[str, str], importtime: bool = False) -> tuple[float, int, str]:
    command = [sys.executable, *(["-X", "importtime"] if importtime else []), "-m", "posetransfer", *args]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
    return time.perf_counter() - start, done.returncode, done.stderr


def heaviest_imports(stderr: str, top: int) -> list[dict[str, object]]:
    """The top-level imports (no parent in the tree) with the largest cumulative time, from ``-X importtime``."""
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = (part.strip() for part in line[len("import time:"):].split("|"))
        if not cumulative.isdigit():
            continue
        depth = (len(name) - len(name.lstrip())) // 2
        rows.append((int(cumulative), depth, name.strip()))
    roots = sorted((r for r in rows if r[1] == 0), reverse=True)[:top]
    return [{"module": name, "cumulative_ms": round(us / 1000, 1)} for us, _, name in roots]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", nargs="+", default=list(WORK), choices=list(WORK))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--top", type=int, default=5, help="heaviest imports listed per command")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "cli_startup.json")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    load_start = os.getloadavg()
    times: dict[str, dict[str, list[float]]] = {c: {"help": [], "work": []} for c in args.commands}
    codes: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as scratch:
        def work_args(command: str) -> list[str]:
            return [a.format(tmp=scratch, missing=f"{scratch}/missing") for a in WORK[command]]

        for _ in range(args.repeats):
            for command in args.commands:
                seconds, _, _ = _run([command, "--help"], env)
                times[command]["help"].append(seconds)
                seconds, code, _ = _run(work_args(command), env)
                times[command]["work"].append(seconds)
                codes[command] = code
        imports = {c: heaviest_imports(_run(work_args(c), env, importtime=True)[2], args.top) for c in args.commands}
    load_end = os.getloadavg()
    result = {
        "python": platform.python_version(), "cpus": os.cpu_count(), "repeats": args.repeats,
        "loadavg_start": [round(v, 2) for v in load_start], "loadavg_end": [round(v, 2) for v in load_end],
        "note": "seconds per fresh process; 'work' stops at the first missing input file (exit code listed)",
        "commands": {
            c: {"help_s": round(statistics.median(times[c]["help"]), 3),
                "help_spread_s": [round(min(times[c]["help"]), 3), round(max(times[c]["help"]), 3)],
                "work_s": round(statistics.median(times[c]["work"]), 3),
                "work_spread_s": [round(min(times[c]["work"]), 3), round(max(times[c]["work"]), 3)],
                "work_args": WORK[c], "work_exit_code": codes[c], "heaviest_imports": imports[c]}
            for c in args.commands
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'command':<14} {'--help s':>9} {'work s':>8}  heaviest import")
    for c, row in result["commands"].items():
        top = row["heaviest_imports"][0] if row["heaviest_imports"] else {"module": "-", "cumulative_ms": 0}
        print(f"{c:<14} {row['help_s']:>9.2f} {row['work_s']:>8.2f}  {top['module']} ({top['cumulative_ms']:.0f} ms)")
    print(f"load average {result['loadavg_start']} at the start, {result['loadavg_end']} at the end; wrote {args.out}")


if __name__ == "__main__":
    main()
