"""Does the data pipeline keep up with training? Samples/s of PairDataset (0 and 2 DataLoader workers) on a
synthetic dataset, beside the samples/s one training step (G + D) consumes.

    python benchmarks/bench_data.py --sizes market deepfashion --workers 0 2

The dataset comes from ``posetransfer.data.synth.generate_dataset`` (written once into ``--cache``).
Training consumption = train batch / (seconds per G+D step) of PATN (``posetransfer.bench.make_train_step``).
Writes ``benchmarks/results/data_pipeline.json`` and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch

from posetransfer import bench
from posetransfer.kinds import parse_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["market", "deepfashion"])
    parser.add_argument("--workers", nargs="+", type=int, default=[0, 2])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-model", default="patn")
    parser.add_argument("--train-batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "posetransfer-bench-data")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "data_pipeline.json")
    args = parser.parse_args()
    from posetransfer.data.synth import generate_dataset

    torch.set_num_threads(args.threads)
    rows = []
    for size_name in args.sizes:
        root = args.cache / size_name
        if not (root / "dataset.json").exists():
            generate_dataset(root, size=size_name if size_name == "market" else "fashion", identities=24, poses=6,
                             seed=0)
        for workers in args.workers:
            runs = [bench.data_throughput(root, workers, args.batch, args.batches) for _ in range(args.repeats)]
            row = {"size_name": size_name, "workers": workers, "batch": args.batch,
                   "samples_per_s": statistics.median(r["samples_per_s"] for r in runs),
                   "runs": [r["samples_per_s"] for r in runs],
                   "first_batch_s": statistics.median(r["first_batch_s"] for r in runs),
                   "dataset_size": runs[0]["dataset_size"], "loadavg": bench.machine_info().get("loadavg")}
            print(json.dumps(row), flush=True)
            rows.append(row)
        torch.manual_seed(0)
        model = bench.ModelSpec(args.train_model, args.train_model, {}).build(size_name)
        step = bench.make_train_step(model, size_name, parse_size(size_name), args.train_batch)
        t = bench.time_call(step, min_run_time=1.0, repeats=args.repeats)
        row = {"size_name": size_name, "train_model": args.train_model, "train_batch": args.train_batch,
               "train_step_s": t["median_s"], "train_samples_per_s": args.train_batch / t["median_s"],
               "runs_s": t["runs_s"], "loadavg": bench.machine_info().get("loadavg")}
        print(json.dumps(row), flush=True)
        rows.append(row)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": bench.machine_info(), "rows": rows}, indent=2))
    print(format_markdown(rows))


def format_markdown(rows) -> str:
    lines = ["| Input | Loader | samples/s | first batch (s) | PATN G+D training consumes (samples/s) |",
             "|---|---|---|---|---|"]
    train = {r["size_name"]: r for r in rows if "train_step_s" in r}
    for r in rows:
        if "workers" not in r:
            continue
        t = train.get(r["size_name"])
        consumed = f"{t['train_samples_per_s']:.2f} (b{t['train_batch']}, {t['train_step_s']:.2f} s/step)" if t else "–"
        lines.append(f"| {r['size_name']} | {r['workers']} workers, batch {r['batch']} | {r['samples_per_s']:.1f} | "
                     f"{r['first_batch_s']:.2f} | {consumed} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
