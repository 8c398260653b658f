"""Peak-memory comparisons behind the README's Performance targets, each figure from a fresh subprocess
(``posetransfer.bench.measure_memory``; RSS high-water mark of one forward after a warm-up, see bench.py).

    python benchmarks/bench_memory.py --case apatn-vs-patn      # 256×176, batch 8
    python benchmarks/bench_memory.py --case pona-512           # 512×352, one image

Cases:
  apatn-vs-patn  PATN (9 blocks) vs APATN (5 blocks; its bilinear decoder and PATN's transposed one) at
                 256×176, batch 8: plain model (models' own SDPA call), explicit attention, chunked attention
                 and the optimize_for_inference() path (with and without its per-sample decoder).
  pona-512       PoNA (3 blocks) at 512×352, batch 1: explicit attention vs the memory-efficient paths.
Writes ``benchmarks/results/memory_<case>.json`` and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from posetransfer import bench

def _case(label, name, config, size, batch, mode, attention=None, **fast_options):
    return dict(label=label, name=name, config=config, size=size, batch=batch, mode=mode, attention=attention,
                fast_options=fast_options)


DF, X512 = (256, 176), (512, 352)
APATN_T = ("APATN (5 APATBs), transposed decoder", "apatn", {"decoder": "transposed"})
CASES = {
    "apatn-vs-patn": [
        _case("PATN (9 PATBs)", "patn", {}, DF, 8, "plain"),
        _case("PATN (9 PATBs)", "patn", {}, DF, 8, "fast"),
        _case("PATN (9 PATBs)", "patn", {}, DF, 8, "fast", max_batch=1),
        _case("APATN (5 APATBs)", "apatn", {}, DF, 8, "plain", "explicit"),
        _case("APATN (5 APATBs)", "apatn", {}, DF, 8, "plain"),
        _case("APATN (5 APATBs)", "apatn", {}, DF, 8, "plain", "chunked"),
        _case("APATN (5 APATBs)", "apatn", {}, DF, 8, "fast"),
        _case("APATN (5 APATBs)", "apatn", {}, DF, 8, "fast", per_sample=False),
        _case("APATN (5 APATBs)", "apatn", {}, DF, 8, "fast", max_batch=1),
        _case(*APATN_T, DF, 8, "plain", "explicit"),
        _case(*APATN_T, DF, 8, "plain", "chunked"),
        _case(*APATN_T, DF, 8, "fast"),
    ],
    "pona-512": [
        _case("PoNA (3 blocks)", "pona", {}, X512, 1, "plain", "explicit"),
        _case("PoNA (3 blocks)", "pona", {}, X512, 1, "plain"),
        _case("PoNA (3 blocks)", "pona", {}, X512, 1, "plain", "chunked"),
        _case("PoNA (3 blocks)", "pona", {}, X512, 1, "plain", "padded"),
        _case("PoNA (3 blocks)", "pona", {}, X512, 1, "fast"),
    ],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=sorted(CASES), required=True)
    parser.add_argument("--repeats", type=int, default=3, help="fresh subprocesses per figure (median reported)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", nargs="+", type=int, default=None, help="indices of the case rows to run")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows = []
    wanted = set(args.only) if args.only else None
    for index, case in enumerate(CASES[args.case]):
        if wanted is not None and index not in wanted:
            continue
        label, name, config, size, batch, mode, attention = (case[k] for k in (
            "label", "name", "config", "size", "batch", "mode", "attention"))
        spec = bench.MemorySpec(name=name, config=config, dataset="deepfashion", size=size, batch=batch, mode=mode,
                                attention=attention, fast_options=case["fast_options"], threads=args.threads)
        runs = [bench.measure_memory(spec) for _ in range(args.repeats)]
        row = {"index": index, "label": label, "arch": name, "config": config, "size": list(size), "batch": batch,
               "mode": mode, "fast_options": case["fast_options"],
               "attention": attention or ("auto" if mode == "fast" else "sdpa (model default)"),
               "peak_mib": statistics.median(r["peak_mib"] for r in runs),
               "process_peak_mib": statistics.median(r["process_peak_mib"] for r in runs),
               "weights_mib": runs[0]["weights_mib"], "runs_peak_mib": [r["peak_mib"] for r in runs],
               "method": runs[0]["method"], "loadavg": bench.machine_info().get("loadavg")}
        print(json.dumps(row), flush=True)
        rows.append(row)
    out = args.out or Path(__file__).parent / "results" / f"memory_{args.case}.json"
    previous = json.loads(out.read_text())["rows"] if out.exists() else []
    done = {r["index"] for r in rows}
    rows = sorted([r for r in previous if r.get("index") not in done] + rows, key=lambda r: r.get("index", -1))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": bench.machine_info(), "rows": rows}, indent=2))
    print(format_markdown(rows))


def format_markdown(rows) -> str:
    lines = ["| Model | Input, batch | Path | Attention | Peak extra memory (MiB) | Process peak (MiB) | Weights (MiB) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        path = r["mode"] + "".join(f", {k}={v}" for k, v in (r.get("fast_options") or {}).items())
        lines.append(f"| {r['label']} | {r['size'][0]}×{r['size'][1]}, b{r['batch']} | {path} | {r['attention']} "
                     f"| {r['peak_mib']:.0f} | {r['process_peak_mib']:.0f} | {r['weights_mib']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
