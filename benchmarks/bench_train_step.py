"""The demo's training step (batch 8) before and after the issue-22 changes, idle and beside a CPU-bound
process; what each change bought; where the step's time goes (torch.profiler per component); and the full PATN
presets' step time. One command (about 10 minutes on an idle 2-core machine):

    git worktree add /tmp/train-old caf1ebb          # the code before the changes
    python benchmarks/bench_train_step.py --old /tmp/train-old

writes ``benchmarks/results/train_step.json`` (every figure) and ``train_step.md`` (the README's tables).

How (and why this way):

* Every measurement is a fresh process (``--worker``) that trains the ``demo-synth`` preset exactly as
  ``posetransfer demo`` does, on the demo's synthetic data (generated once, in a temporary folder): each variant
  gets its own OpenMP runtime (the wait policy is read when torch loads) and nothing is shared between
  variants. The "after" worker first calls ``posetransfer.cpu.prepare_process()``, as the ``posetransfer``
  command does; "before" runs the old checkout (``--old``, first on ``PYTHONPATH``) with the OMP_* variables
  removed from the environment.
* The step time comes from timestamps at the trainer's batch fetches (``train._next_batch``, wrapped in the
  worker): one duration per step, fetch to fetch, the first ``--warmup`` steps dropped, the median reported,
  with the process' CPU seconds per step (all threads: spinning threads show there). The worker ends the run
  at a fetch after ``--steps`` timed steps, or once ``--max-seconds`` of timed steps have passed (the old step
  beside a busy process can take 15 s), so no figure includes the closing checkpoint.
* Conditions: "idle" (whatever else runs on the machine: the load average is recorded with every run) and
  "hog" (one ``python -c 'while True: pass'`` started beside the measurement and always killed afterwards).
  The variants of a round run interleaved (A B C A B C ...), ``--rounds`` rounds.
* What each change bought: "after" with one change undone — OpenMP spinning (``GOMP_SPINCOUNT=300000``, libgomp's
  default, which also keeps posetransfer from choosing passive waiting), one thread, channels_last off, heatmaps
  with their subnormal values (the data fix undone inside the worker), no flush-to-zero, the generator's extras
  on every step; its time divided by "after"'s.
* Profiles: ``torch.profiler`` over ``--profile-steps`` steps after the warm-up, summed per component by
  ``posetransfer/profiling.py`` (loaded by file path, so the old checkout is profiled the same way): forward and
  backward of G, of each discriminator and of the VGG, the data loader, the optimisers, the rest.
* Presets: ``patn-market`` (batch 32, 128x64) and ``patn-deepfashion`` (batch 7, 256x176) on synthetic data,
  "after" only, profiled, ``--preset-steps`` timed steps after one warm-up step.

The bench lock (``/tmp/posetransfer-bench.lock``) is held for the whole run unless ``--no-lock``.
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOCK = Path("/tmp/posetransfer-bench.lock")
OMP_VARIABLES = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME", "MKL_NUM_THREADS")
DEMO_OVERRIDES: list[str] = []          # the demo-synth preset as the demo trains it (batch 8)
STEP_MARK = "bench:step"                # a profiler event at every batch fetch: the step boundaries


# ================================================================================================
# Worker: one training run in this process
# ================================================================================================
def worker(spec: dict) -> dict:
    if spec.get("prepare"):
        from posetransfer import cpu

        cpu.prepare_process()
    import resource

    import torch

    from posetransfer import train as T
    from posetransfer.config import load_config

    if spec.get("subnormal_heatmaps"):          # undo the data fix: keep values below float32's normal range
        import numpy as np

        from posetransfer.data import keypoints as K

        K._FLOAT32_TINY = np.float32(0.0)
    if spec.get("no_flush"):                    # undo flush-to-zero during training
        T.cpu.flush_denormals = lambda enabled=True: contextlib.nullcontext(False)
    if spec.get("extras_always"):               # undo "extras only on image steps": ask on every step
        from posetransfer.models.base import Generator

        real_forward = Generator.forward
        Generator.forward = lambda self, *a, return_extras=False: real_forward(self, *a, return_extras=True)

    # one stamp per batch fetch = per step start; the worker ends the run itself (the trainer's own time
    # limit would cut the steps it needs): after ``steps`` timed steps, or once ``max_seconds`` of timed
    # steps have passed with at least one done. The step in progress at the end is never timed, so no
    # figure includes the trainer's closing checkpoint.
    warmup, wanted, cap = spec["warmup"], spec["steps"], spec.get("max_seconds")
    stamps: list[tuple[float, float]] = []
    real_next = T._next_batch

    def timed_next(batches):
        now = time.perf_counter()
        stamps.append((now, _cpu_seconds(resource)))
        if spec.get("profile"):
            with torch.profiler.record_function(STEP_MARK):
                pass
        done = len(stamps) - 1 - warmup            # timed steps completed so far
        if done >= wanted or (cap is not None and done >= 1 and now - stamps[warmup][0] >= cap):
            raise _Enough
        return real_next(batches)

    T._next_batch = timed_next
    config = load_config(spec["preset"], spec.get("overrides", []))
    out = tempfile.mkdtemp(prefix="trainstep-", dir=spec.get("tmp"))
    profiler = None
    summary: dict = {}
    try:
        with contextlib.ExitStack() as stack:
            if spec.get("profile"):
                profiling = _load_profiling()
                from torch.profiler import ProfilerActivity, profile

                profiler = stack.enter_context(profile(activities=[ProfilerActivity.CPU]))
                stack.enter_context(profiling.component_scopes(
                    profiling.training_classifier(list(config["discriminators"]))))
            with contextlib.suppress(_Enough):
                summary = T.train(config, spec["data"], out, steps=warmup + wanted + 1, progress=False)
        with contextlib.suppress(OSError, ValueError):
            summary = json.loads((Path(out) / "summary.json").read_text())
    finally:
        shutil.rmtree(out, ignore_errors=True)
    walls = [b[0] - a[0] for a, b in zip(stamps, stamps[1:])]
    cpus = [b[1] - a[1] for a, b in zip(stamps, stamps[1:])]
    if len(walls) <= warmup:
        raise RuntimeError(f"only {len(walls)} steps completed ({summary.get('status')}: {summary.get('error')})")
    result = {"step_s": walls[warmup:], "cpu_s": cpus[warmup:], "warmup_s": walls[:warmup],
              "median_s": statistics.median(walls[warmup:]), "cpu_median_s": statistics.median(cpus[warmup:]),
              "threads": torch.get_num_threads(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
              "vgg": (summary.get("weights") or [{}])[0].get("network"),
              "loader_workers": summary.get("loader_workers")}
    if profiler is not None:
        profiling = _load_profiling()
        events = profiler.events()
        marks = profiling.step_windows(events, STEP_MARK)
        timed = len(marks) - 1 - warmup
        window = {"start_us": marks[warmup], "end_us": marks[-1]}
        result["profile"] = profiling.summarize(events, timed, **window)
        result["profile"]["top_ops"] = profiling.top_ops(events, timed, **window)
        result["profile"]["rest"] = profiling.top_level_ops(events, timed, **window)
    return result


class _Enough(Exception):
    """Raised at a batch fetch once the worker has timed what it needs (ends the trainer's loop)."""


def _cpu_seconds(resource) -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _load_profiling():
    import importlib.util

    spec = importlib.util.spec_from_file_location("posetransfer_profiling", REPO / "posetransfer" / "profiling.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ================================================================================================
# Driver
# ================================================================================================
def run_worker(spec: dict, pythonpath: Path, env_extra: dict[str, str], timeout: float) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in OMP_VARIABLES}
    env.update(env_extra)
    env["PYTHONPATH"] = str(pythonpath)
    env["POSETRANSFER_OFFLINE"] = "1"
    load_before = os.getloadavg()
    t0 = time.time()
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)],
                          capture_output=True, text=True, env=env, timeout=timeout, cwd=str(pythonpath))
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise SystemExit(f"worker failed ({spec.get('label')}):\n{tail}")
    result = json.loads(lines[-1])
    result.update({"loadavg_before": [round(x, 2) for x in load_before],
                   "loadavg_after": [round(x, 2) for x in os.getloadavg()], "process_s": round(time.time() - t0, 1)})
    return result


@contextlib.contextmanager
def cpu_hog(enabled: bool):
    """One CPU-bound process beside the measurement, always killed afterwards."""
    if not enabled:
        yield None
        return
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        yield hog.pid
    finally:
        hog.kill()
        hog.wait()


@contextlib.contextmanager
def bench_lock(enabled: bool):
    if not enabled:
        yield
        return
    with open(LOCK, "a") as handle:
        print(f"waiting for {LOCK} ...", file=sys.stderr, flush=True)
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def make_data(root: Path, identities: int, fashion: bool) -> dict[str, Path]:
    """The demo's synthetic data (``identities`` x 8 poses at 128x64, seed 0) and, for the DeepFashion preset,
    a few 256x176 people."""
    sys.path.insert(0, str(REPO))
    from posetransfer.data.synth import generate_dataset

    data = {"market": root / "market", "fashion": root / "fashion"}
    generate_dataset(data["market"], size="market", identities=identities, poses=8, seed=0, workers=2)
    if fashion:
        generate_dataset(data["fashion"], size="fashion", identities=6, poses=4, seed=0, workers=2)
    return data


#: libgomp's own default (spin 300,000 times before sleeping, as when OMP_WAIT_POLICY is unset); set, it also
#: keeps posetransfer from choosing passive waiting
SPINNING = {"GOMP_SPINCOUNT": "300000"}


def demo_variants(old: Path | None, ablations: bool) -> list[tuple[str, Path, dict, dict, tuple[str, ...]]]:
    """(label, checkout, environment, spec changes, conditions) of every demo-step measurement. An ablation
    is "after" with one change undone: its ratio to "after" is what that change bought."""
    variants = []
    if old is not None:
        variants += [("before", old, {}, {}, ("idle", "hog")),
                     ("before + OMP_WAIT_POLICY=PASSIVE", old, {"OMP_WAIT_POLICY": "PASSIVE"}, {}, ("idle", "hog"))]
    variants += [("after", REPO, {}, {"prepare": True}, ("idle", "hog"))]
    if ablations:
        after = {"prepare": True}
        variants += [
            ("after, OpenMP spinning (libgomp default)", REPO, SPINNING, after, ("idle", "hog")),
            ("after, 1 thread", REPO, {"OMP_NUM_THREADS": "1"}, after, ("idle", "hog")),
            ("after, channels_last off", REPO, {}, {**after, "overrides": ["train.channels_last=false"]}, ("idle",)),
            ("after, heatmaps with subnormal values", REPO, {}, {**after, "subnormal_heatmaps": True}, ("idle",)),
            ("after, no flush-to-zero", REPO, {}, {**after, "no_flush": True}, ("idle",)),
            ("after, generator extras on every step", REPO, {}, {**after, "extras_always": True}, ("idle",)),
        ]
    return variants


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--old", type=Path, default=None, help="checkout of the 'before' commit (caf1ebb)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6, help="timed demo steps per run (after --warmup)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--max-seconds", type=float, default=25.0,
                        help="stop a run after this many seconds of timed steps (at least one step is timed)")
    parser.add_argument("--conditions", nargs="+", default=["idle", "hog"], choices=["idle", "hog"])
    parser.add_argument("--only", nargs="*", default=None, help="measure only the variants with these labels")
    parser.add_argument("--identities", type=int, default=150, help="synthetic identities (the demo's 150)")
    parser.add_argument("--profile-steps", type=int, default=3)
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--no-ablations", action="store_true")
    parser.add_argument("--presets", nargs="*", default=["patn-market", "patn-deepfashion"])
    parser.add_argument("--preset-steps", type=int, default=2, help="timed steps per preset (after 1 warm-up)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--tag", default="train_step")
    parser.add_argument("--no-lock", action="store_true")
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))), flush=True)
        return 0

    started = time.time()
    with bench_lock(not args.no_lock), tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        load_at_start = [round(x, 2) for x in os.getloadavg()]
        data = make_data(Path(tmp), args.identities, any("deepfashion" in p for p in args.presets))
        common = {"preset": "demo-synth", "overrides": DEMO_OVERRIDES, "data": str(data["market"]),
                  "warmup": args.warmup, "steps": args.steps, "max_seconds": args.max_seconds, "tmp": tmp}
        variants = [v for v in demo_variants(args.old, not args.no_ablations)
                    if args.only is None or v[0] in args.only]
        runs: list[dict] = []
        timeout = args.max_seconds * 4 + 300
        for r in range(args.rounds):
            for condition in args.conditions:
                with cpu_hog(condition == "hog"):
                    for label, checkout, env, change, conditions in variants:
                        if condition not in conditions:
                            continue
                        spec = {**common, **change, "label": label}
                        result = run_worker(spec, checkout, env, timeout)
                        result.update({"label": label, "condition": condition, "round": r})
                        runs.append(result)
                        print(f"round {r} {condition:4s} {label:42s} {result['median_s']:.3f} s/step "
                              f"(cpu {result['cpu_median_s']:.2f} s, {result['threads']} thr, "
                              f"load {result['loadavg_before'][0]})", file=sys.stderr, flush=True)
        profiles: list[dict] = []
        if not args.no_profile:
            for condition in args.conditions:
                with cpu_hog(condition == "hog"):
                    for label, checkout, env, change, _ in [v for v in variants if v[0] in ("before", "after")]:
                        spec = {**common, **change, "label": label, "profile": True, "steps": args.profile_steps}
                        result = run_worker(spec, checkout, env, timeout)
                        result.update({"label": label, "condition": condition})
                        profiles.append(result)
                        print(f"profile {condition} {label}: {result['profile']['step_s']:.3f} s/step",
                              file=sys.stderr, flush=True)
        presets: list[dict] = []
        for preset in args.presets:
            dataset = data["fashion"] if "deepfashion" in preset else data["market"]
            spec = {"preset": preset, "overrides": ["train.device=cpu"], "data": str(dataset), "warmup": 1,
                    "steps": args.preset_steps, "max_seconds": None, "tmp": tmp, "prepare": True,
                    "profile": True, "label": preset}
            result = run_worker(spec, REPO, {}, timeout=3600)
            result.update({"label": preset, "condition": "idle"})
            presets.append(result)
            print(f"preset {preset}: {result['median_s']:.2f} s/step (load {result['loadavg_before'][0]})",
                  file=sys.stderr, flush=True)

    result = {"machine": _machine(), "loadavg_start": load_at_start,
              "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "worker"},
              "runs": runs, "profiles": profiles, "presets": presets, "summary": summarize(runs),
              "seconds": round(time.time() - started, 1)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.tag}.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / f"{args.tag}.md").write_text(markdown(result) + "\n")
    print(markdown(result))
    return 0


def summarize(runs: list[dict]) -> dict:
    """Median (and min-max of the run medians) per variant and condition."""
    table: dict[str, dict] = {}
    for run in runs:
        table.setdefault(run["label"], {}).setdefault(run["condition"], []).append(run)
    out: dict[str, dict] = {}
    for label, conditions in table.items():
        out[label] = {}
        for condition, items in conditions.items():
            medians = [i["median_s"] for i in items]
            out[label][condition] = {"median_s": statistics.median(medians), "min_s": min(medians),
                                     "max_s": max(medians), "cpu_median_s": statistics.median(
                                         [i["cpu_median_s"] for i in items]), "runs": len(items),
                                     "loadavg": [i["loadavg_before"][0] for i in items]}
    return out


def _machine() -> dict:
    """posetransfer.bench's machine record (CPU, cores, torch, load average at the end) and the CPUs this
    process may run on."""
    sys.path.insert(0, str(REPO))
    from posetransfer.bench import machine_info

    return {**machine_info(), "affinity": len(os.sched_getaffinity(0))}


def _fmt(entry: dict | None) -> str:
    if not entry:
        return "–"
    return f"{entry['median_s']:.3f} ({entry['min_s']:.3f}–{entry['max_s']:.3f})"


def _ratio(numerator: dict | None, denominator: dict | None) -> str:
    if not numerator or not denominator:
        return "–"
    return f"{numerator['median_s'] / denominator['median_s']:.2f}x"


def markdown(result: dict) -> str:
    """The README's tables: the demo step per variant and condition, where its time went, the presets."""
    summary = result["summary"]
    before, after = summary.get("before", {}), summary.get("after", {})
    lines = ["| demo step, batch 8 (s per step) | idle | beside a CPU-bound process | CPU s per step idle / beside "
             "| before ÷ this, idle / beside | this ÷ after = what the change bought, idle / beside |",
             "|---|---|---|---|---|---|"]
    for label, conditions in summary.items():
        idle, hog = conditions.get("idle"), conditions.get("hog")
        cpu = " / ".join(f"{c['cpu_median_s']:.2f}" if c else "–" for c in (idle, hog))
        speed = " / ".join(_ratio(before.get(c), conditions.get(c)) for c in ("idle", "hog"))
        bought = "–" if label == "after" or label.startswith("before") else \
            " / ".join(_ratio(conditions.get(c), after.get(c)) for c in ("idle", "hog"))
        lines.append(f"| {label} | {_fmt(idle)} | {_fmt(hog)} | {cpu} | {speed} | {bought} |")
    loads = [r["loadavg_before"][0] for r in result["runs"]]
    if loads:
        args = result["args"]
        lines += ["", f"Medians of {args['rounds']} interleaved rounds (per run: the median of up to {args['steps']} "
                      f"steps after {args['warmup']} warm-up steps, fewer when {args['max_seconds']:.0f} s of "
                      f"steps had passed; range = min–max of the run medians); 1-minute load average "
                      f"{min(loads):.2f}–{max(loads):.2f} at the start of the runs ({result['loadavg_start'][0]} "
                      f"before the benchmark); {result['machine'].get('cpu', '?')}, {result['machine']['affinity']} "
                      f"CPUs. Ratios above 1 = faster than the compared row."]
    rows = result["profiles"] + result["presets"]
    if rows:
        names = _disc_names(result)
        lines += ["", "| where the time went (s per step, torch.profiler) | condition | step | G fwd / bwd | "
                      + " | ".join(f"{name} fwd / bwd" for name in names)
                      + " | VGG fwd / bwd | data | optimisers | rest (losses, checks, logging) |",
                  "|---|---|---|---|" + "---|" * len(names) + "---|---|---|---|"]
        for p in rows:
            prof = p["profile"]
            comp = prof["components"]
            cells = [p["label"], p.get("condition", "idle"), f"{prof['step_s']:.3f}", _fb(comp.get("G"))]
            cells += [_fb(comp.get(name)) for name in names]
            cells += [_fb(comp.get("VGG")), f"{prof['data_s']:.3f}", f"{prof['optimizers_s']:.3f}",
                      f"{prof['other_s']:.3f}"]
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", f"Profiles: {result['args']['profile_steps']} demo steps after the warm-up (presets: their timed "
                      "steps); backward = autograd nodes charged to the module whose forward created them; rest = "
                      "losses, their backward, concatenations, checks and Python between ops."]
    if result["presets"]:
        lines += ["", "| preset (after) | batch, size | step (s) | steps timed | threads |", "|---|---|---|---|---|"]
        sizes = {"patn-market": "32, 128×64", "patn-deepfashion": "7, 256×176"}
        for p in result["presets"]:
            lines.append(f"| {p['label']} | {sizes.get(p['label'], '?')} | {p['median_s']:.2f} "
                         f"({min(p['step_s']):.2f}–{max(p['step_s']):.2f}) | {len(p['step_s'])} after 1 warm-up, "
                         f"load {p['loadavg_before'][0]} | {p['threads']} |")
    return "\n".join(lines)


def _disc_names(result: dict) -> list[str]:
    names: list[str] = []
    for p in result["profiles"] + result["presets"]:
        for name in p["profile"]["components"]:
            if name.startswith("D.") and name not in names:
                names.append(name)
    return names


def _fb(entry: dict | None) -> str:
    if not entry:
        return "–"
    return f"{entry['forward_s']:.3f} / {entry['backward_s']:.3f}"


if __name__ == "__main__":
    sys.exit(main())
