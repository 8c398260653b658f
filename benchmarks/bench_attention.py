"""Scaling study: time and peak memory per image of APATN and PoNA (HW×HW attention) against PATN (none) at
128×64, 256×176 and 512×352, with the explicit attention and with the memory-efficient implementations.

    python benchmarks/bench_attention.py --sizes market deepfashion 512x352 --repeats 3

Attention implementations (``posetransfer.models.fast.attention_impl``):
  explicit  softmax(QKᵀ)V with the full HW×HW matrix (the official codes' way)
  model     the models' own call, F.scaled_dot_product_attention on (B, HW, C) views; on CPU its flash kernel
            needs equal query/value widths (APATB and PoNA have different ones) and unit-stride operands, so
            it falls back to the math path that stores the HW×HW matrix
  chunked   the explicit product a block of query rows at a time ("auto" on CPU when widths differ)
  padded    SDPA with the query/key zero-padded to the value width, so the CPU flash kernel applies
Time: in this process (median of ``--repeats`` single calls after a warm-up). Memory: a fresh subprocess
per figure (``posetransfer.bench.measure_memory``: RSS high-water mark of one forward after a warm-up).
Writes ``benchmarks/results/attention_scaling.json`` and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path

import torch

from posetransfer import bench
from posetransfer.kinds import parse_size
from posetransfer.models.fast import attention_impl

MODELS = {"patn": ("PATN (9 PATBs)", {}), "apatn": ("APATN (5 APATBs)", {}), "pona": ("PoNA (3 blocks)", {})}
IMPLS = ("explicit", "model", "chunked", "padded")


def attention_positions(size) -> int:
    return (size[0] // 4) * (size[1] // 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--sizes", nargs="+", default=["market", "deepfashion", "512x352"])
    parser.add_argument("--impls", nargs="+", default=list(IMPLS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--min-run-time", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--no-time", action="store_true")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "attention_scaling.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    previous = json.loads(args.out.read_text())["rows"] if args.out.exists() else []
    for size_name in args.sizes:
        size = parse_size(size_name)
        preset = size_name if size_name in ("market", "deepfashion") else "deepfashion"
        for name in args.models:
            label, config = MODELS[name]
            torch.manual_seed(0)
            model = bench.ModelSpec(label, name, config).build(preset).eval()
            inputs = bench.make_inputs(size, 1)
            impls = args.impls if name != "patn" else ["none"]
            new = {impl: {"model": label, "arch": name, "size": list(size), "impl": impl,
                          "positions": attention_positions(size),
                          "loadavg_start": bench.machine_info().get("loadavg")} for impl in impls}
            if not args.no_time:
                def make_call(impl):
                    def call():
                        own = impl in ("none", "model")
                        with torch.no_grad(), (contextlib.nullcontext() if own else attention_impl(impl)):
                            model(*inputs)
                    return call
                # interleaved rounds: every implementation once per round, so load drifts hit all alike
                timings = bench.time_interleaved({impl: make_call(impl) for impl in impls},
                                                  min_run_time=args.min_run_time, repeats=args.repeats)
                for impl, t in timings.items():
                    new[impl].update(time_s=t["median_s"], time_runs_s=t["runs_s"], time_method=t["method"],
                                     time_min_s=min(t["runs_s"]))
            for impl in impls:
                if not args.no_memory:
                    spec = bench.MemorySpec(name=name, config=config, dataset=preset, size=size, batch=1,
                                            attention=None if impl in ("none", "model") else impl,
                                            threads=args.threads)
                    new[impl]["memory"] = bench.measure_memory(spec)
                new[impl]["loadavg_end"] = bench.machine_info().get("loadavg")
                print(json.dumps(new[impl]), flush=True)
                rows.append(new[impl])
            model = None  # free this model before the next is built (its closures are done)
    key = lambda r: (r["arch"], tuple(r["size"]), r["impl"])  # noqa: E731
    old = {key(r): r for r in previous}
    for r in rows:   # a timing-only (or memory-only) rerun keeps the other half of an earlier row
        for field in ("memory",) if args.no_memory else ():
            if field in old.get(key(r), {}):
                r[field] = old[key(r)][field]
        if args.no_time and "time_s" in old.get(key(r), {}):
            r.update({k: v for k, v in old[key(r)].items() if k.startswith("time")})
    done = {key(r) for r in rows}
    keep = [r for r in previous if key(r) not in done]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": bench.machine_info(), "rows": keep + rows}, indent=2))
    print(format_markdown(keep + rows))


def format_markdown(rows) -> str:
    lines = ["| Model | Input | HW positions | Attention | s / image, median (min) | Peak mem (MiB) | Process peak (MiB) |",
             "|---|---|---|---|---|---|---|"]
    order = {"explicit": 0, "model": 1, "chunked": 2, "padded": 3, "none": 4}
    rows = sorted(rows, key=lambda r: (r["size"][0], r["arch"], order.get(r["impl"], 9)))
    for r in rows:
        mem = r.get("memory") or {}
        t = f"{r['time_s']:.2f} ({min(r['time_runs_s']):.2f})" if "time_s" in r else "–"
        pm = f"{mem['peak_mib']:.0f}" if mem else "–"
        pp = f"{mem['process_peak_mib']:.0f}" if mem else "–"
        lines.append(f"| {r['model']} | {r['size'][0]}×{r['size'][1]} | {r['positions']} | {r['impl']} | {t} | "
                     f"{pm} | {pp} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
