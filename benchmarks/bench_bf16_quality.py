"""What ``--precision bf16`` costs in image quality and gains in time, through the commands users run.

    flock /tmp/posetransfer-bench.lock python benchmarks/bench_bf16_quality.py --checkpoint demo_out/run \\
        --data demo_out/data --pairs 96 --rounds 3 --json benchmarks/results/bf16_quality.json \\
        --md benchmarks/results/bf16_quality.md

For a *trained* generator (random weights only say how far the arithmetic drifts, not what a user sees):
runs ``posetransfer test`` in a fresh process with ``--precision fp32`` and ``--precision bf16`` on the same
pairs, alternating (fp32 bf16 fp32 bf16 ...; wall time of the whole command: start-up, data, model, PNG files),
then compares the two folders pixel by pixel (largest and mean difference in grey levels, SSIM of the bf16
image against the fp32 one) and scores both against the ground truth with ``posetransfer eval`` (SSIM,
mask-SSIM, L1, PSNR), so the table says whether bf16 moves the metrics the papers report.
Needs a CPU with bf16 instructions (AVX512-BF16 or AMX): elsewhere the bf16 run is refused.
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

import numpy as np

from posetransfer import bench
from posetransfer.io import read_image
from posetransfer.metrics.ssim import ssim_patn

PRECISIONS = ("fp32", "bf16")
METRICS = "ssim,mask_ssim,l1,psnr"


def run_test(checkpoint: str, data: str, out: Path, precision: str, pairs: int, batch: int) -> float:
    """Wall seconds of one ``posetransfer test`` process."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "posetransfer", "test", "--checkpoint", checkpoint, "--data", data,
                    "--out", str(out), "--limit", str(pairs), "--batch-size", str(batch), "--precision", precision],
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def score(folder: Path, data: str) -> dict:
    out = folder / "eval.json"
    subprocess.run([sys.executable, "-m", "posetransfer", "eval", "--generated", str(folder), "--data", data,
                    "--metrics", METRICS, "--out", str(out), "--no-progress"], check=True, stdout=subprocess.DEVNULL)
    return {k: v for k, v in json.loads(out.read_text())["metrics"].items() if k in METRICS.split(",")}


def compare(fp32: Path, bf16: Path) -> dict:
    names = sorted(p.name for p in fp32.glob("*___*.png"))
    diffs, ssims = [], []
    for name in names:
        a, b = read_image(fp32 / name), read_image(bf16 / name)
        diffs.append(np.abs(a.astype(int) - b.astype(int)))
        ssims.append(ssim_patn(b, a))
    return {"images": len(names), "max_abs_grey": int(max(d.max() for d in diffs)),
            "mean_abs_grey": float(np.mean([d.mean() for d in diffs])),
            "share_pixels_changed": float(np.mean([(d > 0).mean() for d in diffs])),
            "ssim_bf16_vs_fp32_mean": float(np.mean(ssims)), "ssim_bf16_vs_fp32_min": float(np.min(ssims))}


def format_markdown(result: dict) -> str:
    rows = ["| precision | `test` wall s (median, min–max) | vs fp32 | " + " | ".join(METRICS.split(",")) + " |",
            "|---|---|---|" + "---|" * len(METRICS.split(","))]
    base = result["wall_s"]["fp32"]
    for p in PRECISIONS:
        wall = result["wall_s"][p]
        ratio = statistics.median([f / b for f, b in zip(base, wall)])
        metrics = " | ".join(f"{result['metrics'][p][m]:.4f}" for m in METRICS.split(","))
        rows.append(f"| {p} | {statistics.median(wall):.1f} ({min(wall):.1f}–{max(wall):.1f}) | {ratio:.2f}× | {metrics} |")
    c = result["bf16_vs_fp32"]
    rows += ["", f"bf16 against fp32, {c['images']} images: largest difference {c['max_abs_grey']} grey levels, mean "
             f"{c['mean_abs_grey']:.3f}, {100 * c['share_pixels_changed']:.1f} % of values changed; SSIM of the bf16 "
             f"image against the fp32 one {c['ssim_bf16_vs_fp32_mean']:.4f} on average (lowest {c['ssim_bf16_vs_fp32_min']:.4f}).",
             f"{result['pairs']} pairs, batch {result['batch']}, {result['rounds']} alternating rounds; load average "
             f"{result['loadavg_start'][0]}–{result['loadavg_end'][0]}; {result['machine'].get('cpu')}"]
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a trained generator (file, checkpoint or run folder)")
    parser.add_argument("--data", required=True, help="its dataset (PATN layout)")
    parser.add_argument("--pairs", type=int, default=96)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--md", type=Path, default=None)
    args = parser.parse_args()
    result: dict = {"checkpoint": args.checkpoint, "data": args.data, "pairs": args.pairs, "batch": args.batch,
                    "rounds": args.rounds, "machine": bench.machine_info(), "loadavg_start": os.getloadavg(),
                    "wall_s": {p: [] for p in PRECISIONS}}
    with tempfile.TemporaryDirectory() as tmp:
        folders = {p: Path(tmp) / p for p in PRECISIONS}
        for _ in range(args.rounds):
            for p in PRECISIONS:
                result["wall_s"][p].append(run_test(args.checkpoint, args.data, folders[p], p, args.pairs, args.batch))
        result["loadavg_end"] = os.getloadavg()
        result["bf16_vs_fp32"] = compare(folders["fp32"], folders["bf16"])
        result["metrics"] = {p: score(folders[p], args.data) for p in PRECISIONS}
    text = format_markdown(result)
    for path, content in ((args.json, json.dumps(result, indent=2)), (args.md, text + "\n")):
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
    print(text)


if __name__ == "__main__":
    main()
