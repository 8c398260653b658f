"""PATN (or any generator) eval-mode inference: the plain eager model vs each optimisation of
``posetransfer.models.fast.optimize_for_inference``, with output equality and compile time.

    python benchmarks/bench_fast.py --model patn --preset market --batch 1 8 --rounds 5

Variants are timed in interleaved rounds (every variant once per round, ``blocked_autorange`` each), so
slow drifts of the shared machine's load hit all variants alike; the median over rounds is reported.
Writes ``benchmarks/results/fast_<model>_<preset>.json`` and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from torch.utils.benchmark import Timer

from posetransfer import bench
from posetransfer.kinds import parse_size
from posetransfer.models.fast import optimize_for_inference

VARIANTS = {
    "plain (eval, no_grad)": None,
    "inference_mode": dict(channels_last=False, fold_bn=False, prepack=False),
    "+ fold BN": dict(channels_last=False, fold_bn=True, prepack=False),
    "+ fold BN + channels_last": dict(channels_last=True, fold_bn=True, prepack=False),
    "+ fold BN + packed conv/ReLU (NCHW)": dict(channels_last=False, fold_bn=True, prepack=True, winograd=False),
    "+ fold BN + packed conv/ReLU + channels_last": dict(channels_last=True, fold_bn=True, prepack=True,
                                                         winograd=False),
    "compile (inductor, freezing) + fold BN": dict(channels_last=False, fold_bn=True, compile=True),
    "compile (inductor, freezing) + fold BN + channels_last": dict(channels_last=True, fold_bn=True, compile=True),
    "+ fold BN + packed conv/ReLU + channels_last + Winograd 3x3 (default)": dict(channels_last=True, fold_bn=True,
                                                                                  prepack=True, winograd=True),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="patn")
    parser.add_argument("--preset", default="market", choices=("market", "deepfashion"))
    parser.add_argument("--batch", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--min-run-time", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variants", nargs="+", type=int, default=None,
                        help="indices (0-based) of the variants to run; 0 = plain is always included")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    size = parse_size(args.preset)
    torch.manual_seed(0)
    model = bench.ModelSpec(args.model, args.model, {}).build(args.preset).eval()
    all_names = list(VARIANTS)
    names = [all_names[0]] + [all_names[i] for i in (args.variants or range(1, len(all_names))) if i != 0]
    results = {"model": args.model, "preset": args.preset, "size": size, "machine_start": bench.machine_info(),
               "batches": {}}
    for batch in args.batch:
        inputs = bench.make_inputs(size, batch)
        with torch.no_grad():
            reference = model(*inputs)
        fns, info = {}, {}
        for name in names:
            options = VARIANTS[name]
            if options is None:
                def plain(inputs=inputs):
                    with torch.no_grad():
                        return model(*inputs)
                fns[name], info[name] = plain, {}
                continue
            fast = optimize_for_inference(model, **options)
            start = time.perf_counter()
            out = fast(*inputs)           # first call: compiles when asked to
            first = time.perf_counter() - start
            info[name] = {"max_abs_diff": float((out - reference).abs().max()), "first_call_s": first,
                          "compile_s": fast.compile_seconds, "folded_bn": fast.folded_batchnorms,
                          "packed_convs": fast.packed_convolutions}
            fns[name] = (lambda fast=fast, inputs=inputs: fast(*inputs))
        runs = {name: [] for name in names}
        cpu = {name: [] for name in names}
        for r in range(args.rounds):
            for name in names:
                fns[name]()
                cpu_start = time.process_time()
                m = Timer(stmt="fn()", globals={"fn": fns[name]}, num_threads=args.threads  # Timer's default is 1
                          ).blocked_autorange(min_run_time=args.min_run_time)
                cpu_used = time.process_time() - cpu_start
                runs[name].append(m.median)
                # CPU seconds per call (all threads), over the calls blocked_autorange made (its block-size
                # estimate included): unlike wall time it does not grow while other processes hold the cores
                calls = m.number_per_run * len(m.raw_times) + _estimate_calls(m)
                cpu[name].append(cpu_used / calls)
            print(f"batch {batch} round {r + 1}/{args.rounds} load {bench.machine_info().get('loadavg')}", flush=True)
        base = statistics.median(runs[names[0]])
        rows = {}
        for name in names:
            med = statistics.median(runs[name])
            # per-round ratios cancel the load level of each round (both variants ran within seconds)
            ratios = [p / v for p, v in zip(runs[names[0]], runs[name])]
            cpu_ratios = [p / v for p, v in zip(cpu[names[0]], cpu[name])]
            rows[name] = {**info[name], "median_s": med, "min_s": min(runs[name]), "runs_s": runs[name],
                          "cpu_s_per_call": statistics.median(cpu[name]), "cpu_runs_s": cpu[name],
                          "cpu_speedup_round_median": statistics.median(cpu_ratios),
                          "img_per_s": batch / med, "speedup": base / med,
                          "speedup_round_median": statistics.median(ratios), "speedup_rounds": ratios}
        results["batches"][batch] = rows
    results["machine_end"] = bench.machine_info()
    out = args.out or Path(__file__).parent / "results" / f"fast_{args.model}_{args.preset}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(format_markdown(results))


def _estimate_calls(measurement) -> int:
    """Calls blocked_autorange spent estimating its block size (number goes 1, 10, 100, ... up to the block)."""
    n, calls = 1, 0
    while n <= measurement.number_per_run:
        calls += n
        n *= 10
    return calls


def format_markdown(results: dict) -> str:
    lines = ["| Variant | Batch | s / batch, median (min) | img/s | speed-up vs plain: ratio of medians "
             "/ median of per-round ratios | CPU s / batch | CPU-time speed-up | max abs diff vs plain | compile s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for batch, rows in results["batches"].items():
        for name, r in rows.items():
            diff = f"{r['max_abs_diff']:.1e}" if "max_abs_diff" in r else "–"
            comp = f"{r['compile_s']:.0f}" if r.get("compile_s") else "–"
            per_round = r.get("speedup_round_median", r["speedup"])
            lines.append(f"| {name} | {batch} | {r['median_s']:.3f} ({r.get('min_s', r['median_s']):.3f}) | "
                         f"{r['img_per_s']:.2f} | {r['speedup']:.2f}× / {per_round:.2f}× | "
                         f"{r.get('cpu_s_per_call', float('nan')):.3f} | {r.get('cpu_speedup_round_median', float('nan')):.2f}× "
                         f"| {diff} | {comp} |")
    lines.append("")
    lines.append(f"load average {results['machine_start'].get('loadavg')} → {results['machine_end'].get('loadavg')}, "
                 f"{results['machine_start'].get('threads')} threads, torch {results['machine_start'].get('torch')}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
