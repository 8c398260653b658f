"""What users run: the whole ``posetransfer test`` command (start-up, data, model, PNG files) next to the bare
generator forward over the same pairs, and the CLI's start-up.

    flock /tmp/posetransfer-bench.lock python benchmarks/bench_e2e.py --official-repo /tmp/pose-transfer \\
        --models patn pona apatn gfla --sizes market deepfashion --batch 1 8 --pairs 96 24 --rounds 2 \\
        --json benchmarks/results/e2e_cpu.json --md benchmarks/results/e2e_cpu.md

Per model × frame × batch: **command** — ``posetransfer test --checkpoint F --data D --limit N --batch-size B``
(fast path, and ``--no-fast``) as a fresh process, wall time from launch to exit, images/s = N / wall;
**bare forward** — the generator alone on the same N pairs' tensors in batches of B, in this process after a
warm-up (plain, fast, and the official PATN class with the same weights where ``--official-repo`` is given);
the difference between the two is what start-up, data and files cost. Start-up rows: ``posetransfer --help``
and ``python -c 'import torch'`` (the floor any command pays). Datasets: the synthetic people
(``posetransfer synth``), generated once into ``--work``. Weights: random (the official PATN's through our
converter for PATN, so its file and the official forward compute the same function); speed does not
depend on them. Commands run interleaved (fast, plain[, onnx], fast, plain ...), medians over ``--rounds``;
``--onnx`` adds ``--runtime onnx`` (ONNX Runtime on the cached export; the exporting first run is timed apart);
``--bf16`` adds ``--precision bf16`` (a CPU with bf16 instructions).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_official import add_output_arguments, build_case, finish, save_partial  # noqa: E402

from posetransfer import bench  # noqa: E402
from posetransfer.kinds import parse_size  # noqa: E402
from posetransfer.data.dataset import PairDataset  # noqa: E402
from posetransfer.modelfile import save_generator  # noqa: E402
from posetransfer.models.fast import prepare_for_inference  # noqa: E402

CLI = [sys.executable, "-m", "posetransfer.cli"]
SYNTH = {"market": "market", "deepfashion": "fashion"}


def dataset(work: Path, preset: str, pairs: int) -> Path:
    root = work / f"synth_{preset}"
    if not (root / "dataset.json").is_file():
        subprocess.run([*CLI, "synth", "--out", str(root), "--size", SYNTH[preset], "--identities", "30",
                        "--poses", "8", "--test-identities", "6", "--overwrite"], check=True,
                       stdout=subprocess.DEVNULL)
    return root


def wall(cmd: list[str], env: dict | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def bare_forward(fn, data: Path, pairs: int, batch: int, heatmap: str, sigma: float) -> float:
    ds = PairDataset(data, split="test", heatmap_mode=heatmap, sigma=sigma)
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(ds, range(pairs)), batch_size=batch)
    batches = [(b["source_image"], b["source_heatmaps"], b["target_heatmaps"]) for b in loader]
    fn(*batches[0])
    start = time.perf_counter()
    for b in batches:
        fn(*b)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official-repo", type=Path, default=None)
    parser.add_argument("--models", nargs="+", default=["patn"])
    parser.add_argument("--sizes", nargs="+", default=["market", "deepfashion"], choices=tuple(SYNTH))
    parser.add_argument("--batch", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--pairs", nargs="+", type=int, default=[96, 24], help="pairs per size (same order)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("/tmp/posetransfer-e2e"))
    parser.add_argument("--onnx", action="store_true",
                        help="also time `posetransfer test --runtime onnx` (its export made by an untimed first "
                             "run, whose wall time is reported as 'command onnx first')")
    parser.add_argument("--bf16", action="store_true", help="also time `posetransfer test --precision bf16`")
    add_output_arguments(parser)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    repos = {"patn": args.official_repo if args.official_repo and args.official_repo.is_dir() else None}
    result = {"machine": bench.machine_info(), "env_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
              "rounds": args.rounds, "rows": [], "startup": {}}
    env = dict(os.environ)
    result["startup"]["help_s"] = statistics.median(wall([*CLI, "--help"], env) for _ in range(3))
    result["startup"]["import_torch_s"] = statistics.median(
        wall([sys.executable, "-c", "import torch"], env) for _ in range(3))
    print("start-up", result["startup"], flush=True)
    for preset, pairs in zip(args.sizes, args.pairs):
        data = dataset(args.work, preset, pairs)
        for arch in args.models:
            official, ours = build_case(arch, preset, repos)
            ckpt = args.work / f"{arch}_{preset}.safetensors"
            save_generator(ours, ckpt)
            contract = ours.input_contract if getattr(ours, "input_contract", None) else None
            heatmap = contract.heatmap if contract else "gaussian"
            sigma = contract.sigma if contract else 6.0
            fast, info = prepare_for_inference(ours)
            for batch in args.batch:
                row = {"arch": arch, "preset": preset, "size": list(parse_size(preset)), "batch": batch,
                       "pairs": pairs, "loadavg_start": [round(x, 2) for x in os.getloadavg()], "fast_path": info}
                cmd = [*CLI, "test", "--checkpoint", str(ckpt), "--data", str(data), "--limit", str(pairs),
                       "--batch-size", str(batch)]
                runs: dict[str, list[float]] = {"command fast": [], "command plain": []}
                bf16 = args.bf16 and getattr(ours, "fast_path_pays", True)   # GFLA/flow have no bf16 path
                if bf16:
                    runs["command bf16"] = []
                onnx_cmd = [*cmd, "--out", str(args.work / "out_onnx"), "--runtime", "onnx"]
                if args.onnx:
                    env["POSETRANSFER_CACHE_DIR"] = str(args.work / f"cache_{arch}_{preset}_{batch}")
                    row["command onnx first"] = wall(onnx_cmd, env)    # exports into the empty cache
                    runs["command onnx"] = []
                for _ in range(args.rounds):
                    runs["command fast"].append(wall([*cmd, "--out", str(args.work / "out_fast")], env))
                    runs["command plain"].append(wall([*cmd, "--out", str(args.work / "out_plain"), "--no-fast"], env))
                    if args.onnx:
                        runs["command onnx"].append(wall(onnx_cmd, env))
                    if bf16:
                        runs["command bf16"].append(wall([*cmd, "--out", str(args.work / "out_bf16"),
                                                          "--precision", "bf16"], env))

                def plain(*t):
                    with torch.no_grad():
                        return ours(*t)
                fns = {"bare plain": plain, "bare fast": fast}
                if official is not None:
                    def run_official(s, a, b):
                        with torch.no_grad():
                            return official([s, torch.cat([a, b], 1)])
                    fns["bare official"] = run_official
                for _ in range(args.rounds):
                    for name, fn in fns.items():
                        runs.setdefault(name, []).append(bare_forward(fn, data, pairs, batch, heatmap, sigma))
                row["runs_s"] = runs
                row["median_s"] = {k: statistics.median(v) for k, v in runs.items()}
                row["img_per_s"] = {k: pairs / v for k, v in row["median_s"].items()}
                row["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
                result["rows"].append(row)
                print(arch, preset, batch, {k: f"{v:.2f}s" for k, v in row["median_s"].items()},
                      "load", row["loadavg_start"][0], "->", row["loadavg_end"][0], flush=True)
                save_partial(result, args)
    finish(result, args, format_markdown)


def _ratio(a: float | None, b: float) -> str:
    return f"{a / b:.2f}×" if a else "–"


def format_markdown(result: dict) -> str:
    lines = ["| Model | Frame | Batch | Pairs | `posetransfer test` (fast) s / img/s | `--no-fast` s / img/s | "
             "`--runtime onnx` s / img/s (first run, exporting) | `--precision bf16` s / img/s | "
             "bare fast s | bare plain s | bare official s | command fast vs bare official | "
             "command bf16 vs bare official | load avg |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        m, ips = r["median_s"], r["img_per_s"]
        off = m.get("bare official")
        onnx = (f"{m['command onnx']:.1f} / {ips['command onnx']:.2f} ({r['command onnx first']:.1f})"
                if "command onnx" in m else "–")
        bf16 = f"{m['command bf16']:.1f} / {ips['command bf16']:.2f}" if "command bf16" in m else "–"
        lines.append(f"| {r['arch']} | {r['size'][0]}×{r['size'][1]} | {r['batch']} | {r['pairs']} | "
                     f"{m['command fast']:.1f} / {ips['command fast']:.2f} | {m['command plain']:.1f} / "
                     f"{ips['command plain']:.2f} | {onnx} | {bf16} | {m['bare fast']:.1f} | {m['bare plain']:.1f} | "
                     f"{f'{off:.1f}' if off else '–'} | {_ratio(off, m['command fast'])} | "
                     f"{_ratio(off, m['command bf16']) if 'command bf16' in m else '–'} | "
                     f"{r['loadavg_start'][0]}–{r['loadavg_end'][0]} |")
    s = result["startup"]
    lines += ["", f"start-up: `posetransfer --help` {s['help_s']:.2f} s, `python -c 'import torch'` "
              f"{s['import_torch_s']:.2f} s; medians of {result['rounds']} rounds; {result['machine'].get('cpu')}"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
