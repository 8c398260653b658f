"""``posetransfer eval`` throughput per protocol and start-up time: this checkout against an older one.

Both checkouts evaluate the same small synthetic sets (``posetransfer synth`` datasets; the "generated" images
are noisy copies of the targets), each run in a fresh process, interleaved old/new round by round, with the
FID real-set statistics already cached (a warm-up run per checkout first), so the figures are the steady state
of repeated evaluation. Measured per run:

* ``images/s`` — evaluated images / seconds of ``evaluate()`` (network loading included, imports excluded);
* ``images/CPU-s`` — the same images / CPU seconds of that process (all its threads): steadier than wall time
  on a machine shared with other jobs;
* ``start-up`` — wall seconds of a whole ``python -m posetransfer eval ... --limit 2`` process (imports,
  network loading, two images): what a user waits for before anything is computed.

Work differs only where the new code computes something else on purpose: under ``gfla`` the new default FID
(GFLA's torchvision network) is unavailable offline, so ``gfla`` is also run with ``--fid-kind tf`` (the
network the old code used) for a like-for-like figure.

    git worktree add /tmp/eval-old caf1ebb
    flock /tmp/posetransfer-bench.lock python benchmarks/bench_eval.py --old /tmp/eval-old --rounds 3 \\
        --json benchmarks/results/eval_cpu.json --md benchmarks/results/eval_cpu.md
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: (name, dataset size, protocol, options the new code gets, options both get)
CASES = (
    ("patn/market", "market", "patn", {}),
    ("pona/market", "market", "pona", {}),
    ("fast/market", "market", "fast", {}),
    ("gfla/market", "market", "gfla", {}),
    ("gfla/market fid=tf", "market", "gfla", {"fid_kind": "tf"}),
    ("gfla/fashion", "fashion", "gfla", {}),
    ("gfla/fashion fid=tf", "fashion", "gfla", {"fid_kind": "tf"}),
)

RUNNER = r"""
import json, sys, time
started = time.perf_counter()
import posetransfer
from posetransfer.evaluation import evaluate
imported = time.perf_counter() - started
gen, data, protocol, cache, extra = sys.argv[1:6]
cpu = time.process_time()
results = evaluate(gen, data, protocol, progress=False, cache_dir=cache, **json.loads(extra))
cpu = time.process_time() - cpu
print("RESULT " + json.dumps({"code": posetransfer.__file__, "import_s": imported, "cpu_s": cpu,
                              "eval_s": results["timing"]["seconds"],
                              "images": results["generated"]["evaluated"], "metrics": results["metrics"]}))
"""


def make_sets(work: Path, pairs: int, python: str) -> dict[str, tuple[Path, Path]]:
    """A synthetic dataset per size and its 'generated' folder (noisy targets, PNG)."""
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from posetransfer.data import keypoints as K
    from posetransfer.io import read_image, save_image

    sets = {}
    for size in ("market", "fashion"):
        data, gen = work / size, work / f"gen_{size}"
        subprocess.run([python, "-m", "posetransfer", "synth", "--out", str(data), "--size", size,
                        "--identities", "12", "--poses", "8", "--test-identities", "4", "--test-pairs", str(pairs)],
                       check=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, cwd=work)
        prefix = "fasion-resize" if size == "fashion" else "market"
        rng = np.random.default_rng(0)
        for a, b in K.read_pairs(data / f"{prefix}-pairs-test.csv"):
            target = read_image(data / "test" / b)
            save_image(gen / f"{a}___{b}.png", np.clip(target + rng.normal(0, 12, target.shape), 0, 255).astype(np.uint8))
        sets[size] = (data, gen)
    return sets


def run_eval(python: str, code: Path, gen: Path, data: Path, protocol: str, cache: Path, extra: dict) -> dict:
    # cwd: ``python -c`` / ``-m`` put the working directory first on sys.path — it must not hold a checkout
    done = subprocess.run([python, "-c", RUNNER, str(gen), str(data), protocol, str(cache), json.dumps(extra)],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(code)},
                          cwd=cache.parent)
    if done.returncode != 0:
        raise RuntimeError(f"{code}: {protocol} failed: {done.stderr[-1500:]}")
    line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")][-1]
    result = json.loads(line[len("RESULT "):])
    if not Path(result["code"]).resolve().is_relative_to(code):
        raise RuntimeError(f"the run meant for {code} imported {result['code']}")
    result["images_per_second"] = result["images"] / result["eval_s"]
    result["images_per_cpu_second"] = result["images"] / result["cpu_s"]
    return result


def run_startup(python: str, code: Path, gen: Path, data: Path, protocol: str, cache: Path, extra: dict) -> float:
    argv = [python, "-m", "posetransfer", "eval", "--generated", str(gen), "--data", str(data), "--protocol",
            protocol, "--limit", "2", "--no-progress", "--cache-dir", str(cache)]
    if "fid_kind" in extra:
        argv += ["--fid-kind", extra["fid_kind"]]
    if "metrics" in extra:
        argv += ["--metrics", ",".join(extra["metrics"])]
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(code)},
                          cwd=cache.parent)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{code}: start-up {protocol} failed: {done.stderr[-1500:]}")
    return elapsed


def commit_of(checkout: Path) -> str | None:
    done = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or None


def summary(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "runs": [round(v, 3) for v in values]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, required=True, help="checkout of the old code (e.g. a git worktree)")
    parser.add_argument("--pairs", type=int, default=64, help="test pairs per set (default 64)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cases", help="comma-separated case names (default: all)")
    parser.add_argument("--metrics", help="comma-separated metrics instead of each protocol's (both versions)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--md", type=Path)
    args = parser.parse_args()
    python = sys.executable
    cases = [c for c in CASES if not args.cases or c[0] in args.cases.split(",")]
    common = {"metrics": args.metrics.split(",")} if args.metrics else {}
    versions = {"old": args.old.resolve(), "new": ROOT}
    load_start = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sets = make_sets(work, args.pairs, python)
        for name, size, protocol, new_extra in cases:
            data, gen = sets[size]
            per = {v: {"ips": [], "cpu": [], "startup": [], "load": []} for v in versions}
            metrics = {}
            for version, code in versions.items():  # warm-up: FID real statistics into each version's cache
                extra = {**common, **(new_extra if version == "new" else {})}
                metrics[version] = run_eval(python, code, gen, data, protocol, work / f"cache_{version}", extra)["metrics"]
            for _ in range(args.rounds):
                for version, code in versions.items():
                    extra = {**common, **(new_extra if version == "new" else {})}
                    cache = work / f"cache_{version}"
                    per[version]["load"].append(os.getloadavg()[0])
                    figures = run_eval(python, code, gen, data, protocol, cache, extra)
                    per[version]["ips"].append(figures["images_per_second"])
                    per[version]["cpu"].append(figures["images_per_cpu_second"])
                    per[version]["startup"].append(run_startup(python, code, gen, data, protocol, cache, extra))
            row = {"case": name, "size": size, "protocol": protocol, "new_options": new_extra, "images": args.pairs,
                   **{f"{v}_images_per_second": summary(per[v]["ips"]) for v in versions},
                   **{f"{v}_images_per_cpu_second": summary(per[v]["cpu"]) for v in versions},
                   **{f"{v}_startup_s": summary(per[v]["startup"]) for v in versions},
                   "load_1min": summary(per["old"]["load"] + per["new"]["load"]),
                   "metrics": metrics}
            row["speedup"] = round(row["new_images_per_second"]["median"] / row["old_images_per_second"]["median"], 2)
            row["speedup_cpu"] = round(row["new_images_per_cpu_second"]["median"]
                                       / row["old_images_per_cpu_second"]["median"], 2)
            rows.append(row)
            print(f"{name:22s} old {row['old_images_per_second']['median']:6.2f} img/s  new "
                  f"{row['new_images_per_second']['median']:6.2f} img/s  (x{row['speedup']}; per CPU second "
                  f"x{row['speedup_cpu']})  start-up old "
                  f"{row['old_startup_s']['median']:5.1f} s new {row['new_startup_s']['median']:5.1f} s  "
                  f"load {row['load_1min']['median']}", flush=True)
    from posetransfer.bench import machine_info

    doc = {"machine": machine_info(), "old": str(args.old), "old_commit": commit_of(args.old),
           "new_commit": commit_of(ROOT), "rounds": args.rounds, "pairs": args.pairs,
           "metrics": args.metrics,
           "load_at_start": list(load_start), "load_at_end": list(os.getloadavg()), "rows": rows,
           "note": "FID real statistics cached (warm); images/s excludes imports; start-up = whole CLI process "
                   "with --limit 2; the machine was shared with other jobs (see load)"}
    if args.json:
        from posetransfer.io import write_json

        write_json(args.json, doc)
        print(f"wrote {args.json}")
    if args.md:
        from posetransfer.io import atomic_write_text

        atomic_write_text(args.md, markdown(doc))
        print(f"wrote {args.md}")


def markdown(doc: dict) -> str:
    lines = ["| Case | Images | Old img/s | New img/s | Speed-up | Old img/CPU-s | New img/CPU-s | Speed-up (CPU) "
             "| Old start-up (s) | New start-up (s) | Load (1 min) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in doc["rows"]:
        o, n = r["old_images_per_second"], r["new_images_per_second"]
        co, cn = r["old_images_per_cpu_second"], r["new_images_per_cpu_second"]
        so, sn = r["old_startup_s"], r["new_startup_s"]
        lines.append(f"| {r['case']} | {r['images']} | {o['median']:.2f} ({o['min']:.2f}–{o['max']:.2f}) | "
                     f"{n['median']:.2f} ({n['min']:.2f}–{n['max']:.2f}) | ×{r['speedup']} | "
                     f"{co['median']:.2f} ({co['min']:.2f}–{co['max']:.2f}) | "
                     f"{cn['median']:.2f} ({cn['min']:.2f}–{cn['max']:.2f}) | ×{r['speedup_cpu']} | "
                     f"{so['median']:.1f} ({so['min']:.1f}–{so['max']:.1f}) | {sn['median']:.1f} "
                     f"({sn['min']:.1f}–{sn['max']:.1f}) | {r['load_1min']['median']} |")
    m = doc["machine"]
    lines += ["", f"Medians (min–max) of {doc['rounds']} interleaved runs (old, new, old, new, …) per case, each in a "
                  f"fresh process; {doc['pairs']} test pairs per synthetic set, FID real statistics cached. "
                  f"Old = commit {doc.get('old_commit')} ({doc['old']}), new = {doc.get('new_commit')} and its "
                  f"uncommitted changes, if any. Machine: {m.get('cpu', '?')}, {m.get('threads', '?')} threads, torch "
                  f"{m.get('torch', '?')}; load average {doc['load_at_start']} at start, {doc['load_at_end']} at end "
                  f"(shared with other jobs).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
