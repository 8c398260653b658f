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
from posetransfer.models.fast import optimize_for_inference

VARIANTS = {
    "plain (eval, no_grad)": None,
    "inference_mode": dict(channels_last=False, fold_bn=False, prepack=False),
    "+ fold BN": dict(channels_last=False, fold_bn=True, prepack=False),
    "+ fold BN + channels_last": dict(channels_last=True, fold_bn=True, prepack=False),
    "+ fold BN + packed conv/ReLU (NCHW)": dict(channels_last=False, fold_bn=True, prepack=True),
    "+ fold BN + packed conv/ReLU + channels_last (default)": dict(channels_last=True, fold_bn=True, prepack=True),
    "compile (inductor, freezing) + fold BN": dict(channels_last=False, fold_bn=True, compile=True),
    "compile (inductor, freezing) + fold BN + channels_last": dict(channels_last=True, fold_bn=True, compile=True),
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
    size = bench.SIZES[args.preset]
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
        for r in range(args.rounds):
            for name in names:
                fns[name]()
                m = Timer(stmt="fn()", globals={"fn": fns[name]}).blocked_autorange(min_run_time=args.min_run_time)
                runs[name].append(m.median)
            print(f"batch {batch} round {r + 1}/{args.rounds} load {bench.machine_info().get('loadavg')}", flush=True)
        base = statistics.median(runs[names[0]])
        rows = {}
        for name in names:
            med = statistics.median(runs[name])
            rows[name] = {**info[name], "median_s": med, "runs_s": runs[name], "img_per_s": batch / med,
                          "speedup": base / med}
        results["batches"][batch] = rows
    results["machine_end"] = bench.machine_info()
    out = args.out or Path(__file__).parent / "results" / f"fast_{args.model}_{args.preset}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(format_markdown(results))


def format_markdown(results: dict) -> str:
    lines = ["| Variant | Batch | s / batch (median) | img/s | speed-up vs plain | max abs diff | compile s |",
             "|---|---|---|---|---|---|---|"]
    for batch, rows in results["batches"].items():
        for name, r in rows.items():
            diff = f"{r['max_abs_diff']:.1e}" if "max_abs_diff" in r else "–"
            comp = f"{r['compile_s']:.0f}" if r.get("compile_s") else "–"
            lines.append(f"| {name} | {batch} | {r['median_s']:.3f} | {r['img_per_s']:.2f} | {r['speedup']:.2f}× "
                         f"| {diff} | {comp} |")
    lines.append("")
    lines.append(f"load average {results['machine_start'].get('loadavg')} → {results['machine_end'].get('loadavg')}, "
                 f"{results['machine_start'].get('threads')} threads, torch {results['machine_start'].get('torch')}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
