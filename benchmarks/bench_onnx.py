"""ONNX Runtime (fp32, int8 dynamic, int8 static) against the PyTorch fast path, speed and quality cost.

    flock /tmp/posetransfer-bench.lock python benchmarks/bench_onnx.py --models patn pona --presets market \\
        --batch 1 8 --rounds 3 --json benchmarks/results/onnx_cpu.json --md benchmarks/results/onnx_cpu.md

Each model (random weights, BN statistics randomised; speed does not depend on the weights) is exported
with ``posetransfer.export.export_generator`` (checked within 1e-4 of PyTorch), then quantised with
onnxruntime's tools: **dynamic** (``quantize_dynamic``: int8 weights, activations quantised per call) and
**static** (``quantize_static``, QDQ, per-channel int8 weights, uint8 activations calibrated on
``--calibration`` pairs of the synthetic test set — the same kind of inputs the model gets). Columns are
timed interleaved (every column once per round, ``--min-time`` seconds of calls each), medians.
Quality: the outputs of each column on ``--quality-pairs`` synthetic pairs compared with the PyTorch plain
model's (uint8 images): max |Δ| on [-1, 1], SSIM (PATN protocol) and LPIPS (``posetransfer.metrics``: the
standard AlexNet LPIPS when its weights are installed, else the shift-tolerant one, marked †). These
measure what quantisation changes, not image quality (the weights are random).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_e2e import dataset  # noqa: E402
from bench_official import add_output_arguments, build_case, finish, save_partial  # noqa: E402

from posetransfer import bench  # noqa: E402
from posetransfer.kinds import parse_size  # noqa: E402
from posetransfer.data.dataset import PairDataset  # noqa: E402
from posetransfer.export import OnnxGenerator, export_generator  # noqa: E402
from posetransfer.io import tensor_range_to_image  # noqa: E402
from posetransfer.metrics.lpips import LPIPSMetric  # noqa: E402
from posetransfer.metrics.ssim import ssim_patn  # noqa: E402
from posetransfer.models.fast import prepare_for_inference  # noqa: E402


class _Calibration:
    """onnxruntime's CalibrationDataReader protocol over a list of feed dicts."""

    def __init__(self, feeds: list[dict]) -> None:
        self.feeds = iter(feeds)

    def get_next(self):
        return next(self.feeds, None)


def pair_batches(data: Path, count: int, batch: int, offset: int = 0):
    ds = PairDataset(data, split="test")
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(ds, range(offset, offset + count)), batch_size=batch)
    return [(b["source_image"], b["source_heatmaps"], b["target_heatmaps"]) for b in loader]


def quantize(fp32: Path, work: Path, calibration: list) -> dict[str, Path]:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = work / f"{fp32.stem}_pre.onnx"
    quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
    out = {"int8 dynamic": work / f"{fp32.stem}_dyn.onnx", "int8 static": work / f"{fp32.stem}_static.onnx"}
    quantize_dynamic(str(pre), str(out["int8 dynamic"]), weight_type=QuantType.QInt8)
    names = ("source_image", "source_heatmaps", "target_heatmaps")
    feeds = [{n: t.numpy() for n, t in zip(names, b)} for b in calibration]
    quantize_static(str(pre), str(out["int8 static"]), _Calibration(feeds), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["patn"])
    parser.add_argument("--presets", nargs="+", default=["market"], choices=("market", "deepfashion"))
    parser.add_argument("--batch", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-time", type=float, default=1.0)
    parser.add_argument("--calibration", type=int, default=16)
    parser.add_argument("--quality-pairs", type=int, default=16)
    parser.add_argument("--work", type=Path, default=Path("/tmp/posetransfer-onnx"))
    add_output_arguments(parser)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    lpips = LPIPSMetric()
    result = {"machine": bench.machine_info(), "env_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
              "lpips": lpips.source.network, "rows": []}
    for preset in args.presets:
        data = dataset(args.work, preset, args.calibration + args.quality_pairs)
        for arch in args.models:
            _, model = build_case(arch, preset, {})
            size = parse_size(preset)
            fp32 = args.work / f"{arch}_{preset}.onnx"
            report = export_generator(model, fp32, "onnx", size)
            calibration = pair_batches(data, args.calibration, 4)
            files = {"ORT fp32": fp32, **quantize(fp32, args.work, calibration)}
            fast, _info = prepare_for_inference(model)
            runners = {"torch fast": fast, **{k: OnnxGenerator(v) for k, v in files.items()}}

            def plain(*t):
                with torch.no_grad():
                    return model(*t)
            quality_inputs = pair_batches(data, args.quality_pairs, 4, offset=args.calibration)
            reference = [plain(*b) for b in quality_inputs]
            quality = {}
            for name, run in runners.items():
                outs = [run(*b) for b in quality_inputs]
                gen = [tensor_range_to_image(o.numpy()) for out in outs for o in out]
                ref = [tensor_range_to_image(o.numpy()) for out in reference for o in out]
                quality[name] = {
                    "max_abs_diff": max(float((o - r).abs().max()) for o, r in zip(outs, reference)),
                    "ssim_vs_plain": float(np.mean([ssim_patn(g, r) for g, r in zip(gen, ref)])),
                    "lpips_vs_plain": float(np.mean(lpips(gen, ref)))}
            for batch in args.batch:
                inputs = bench.make_inputs(size, batch)
                fns = {"torch plain": lambda i=inputs: plain(*i), **{k: (lambda r=r, i=inputs: r(*i))
                                                                      for k, r in runners.items()}}
                for fn in fns.values():
                    fn()
                runs: dict[str, list[float]] = {k: [] for k in fns}
                load0 = os.getloadavg()
                for _ in range(args.rounds):
                    for name, fn in fns.items():
                        calls, start = 0, time.perf_counter()
                        while True:
                            fn()
                            calls += 1
                            if time.perf_counter() - start >= args.min_time:
                                break
                        runs[name].append((time.perf_counter() - start) / calls)
                row = {"arch": arch, "preset": preset, "size": list(size), "batch": batch, "runs_s": runs,
                       "median_s": {k: statistics.median(v) for k, v in runs.items()}, "quality": quality,
                       "export_s": report.seconds, "export_max_abs_diff": report.max_abs_diff,
                       "loadavg": [round(load0[0], 2), round(os.getloadavg()[0], 2)]}
                result["rows"].append(row)
                print(arch, preset, batch, {k: f"{v:.3f}" for k, v in row["median_s"].items()}, flush=True)
                save_partial(result, args)
            print(arch, preset, "quality", json.dumps(quality), flush=True)
    finish(result, args, format_markdown)


def format_markdown(result: dict) -> str:
    lines = ["| Model | Frame | Batch | Runtime | s / batch | vs torch fast | max abs diff vs plain | SSIM vs plain | "
             "LPIPS vs plain | load avg |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        m = r["median_s"]
        for name, t in m.items():
            q = r["quality"].get(name)
            qual = (f"{q['max_abs_diff']:.1e} | {q['ssim_vs_plain']:.4f} | {q['lpips_vs_plain']:.4f}" if q
                    else "– | – | –")
            lines.append(f"| {r['arch']} | {r['size'][0]}×{r['size'][1]} | {r['batch']} | {name} | {t:.3f} | "
                         f"{m['torch fast'] / t:.2f}× | {qual} | {r['loadavg'][0]}–{r['loadavg'][1]} |")
    lines += ["", f"LPIPS network: {result['lpips']}; {result['machine'].get('cpu')}"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
