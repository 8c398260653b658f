"""Generator speed side by side with the official code, same weights, idle and beside a CPU-bound process.

    flock /tmp/posetransfer-bench.lock python benchmarks/bench_official.py \\
        --official-repo /tmp/pose-transfer --pona-repo /tmp/pona \\
        --cases patn:market:1,8 patn:deepfashion:1,4 pona:deepfashion:1,4 apatn:market:1,8 \\
        --load idle hog --rounds 5 --json benchmarks/results/official_cpu.json --md benchmarks/results/official_cpu.md

Columns per case (arch × preset × batch): **official** — the official repository's generator class
(``models/model_variants.py:PATNetwork`` of tengteng95/Pose-Transfer, ``models/head3conv2.py:PoNANetwork`` of
Zhangjinso/PoNA), imported from the checkout given on the command line (never part of this project), called
as its test script does (``netG([P1, cat(BP1, BP2)])`` under ``no_grad``) — skipped when no checkout is
given or the architecture has no official code (APATN, GFLA: the GFLA code needs CUDA extensions);
**plain** — our generator in eval mode under ``no_grad``; **fast** —
:func:`posetransfer.models.fast.prepare_for_inference` (what every inference command runs by default); **bf16** (with ``--bf16``) — the same fast path with
``precision="bf16"`` (``--precision bf16`` of the commands; a CPU with bf16 instructions), with its largest
difference from the float32 output recorded beside it.
Our generator gets the official model's random weights through our converter
(:func:`posetransfer.models.official.convert_generator_state`), BN statistics randomised, so all columns
compute the same function (the outputs are compared too).

Timing: every round runs each column once (enough calls for ``--min-time`` seconds, seconds per call),
columns interleaved (A B C A B C ...), so the load of other processes hits them alike; medians and
min-max over the rounds. ``--load hog`` starts ``python -c 'while True: pass'`` beside the benchmark for
that phase (always killed afterwards). The load average is recorded at the start and end of each phase.
The PoNA official class has a broken ``super(PATNModel, self)`` call and a ``util.util`` import that needs
an old scikit-image; both are bridged at import time (a module alias and a stub module), not edited.
"""
from __future__ import annotations

import argparse
import atexit
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

import torch
from torch import nn

from posetransfer import bench
from posetransfer.kinds import parse_size
from posetransfer.models.fast import prepare_for_inference
from posetransfer.models.official import convert_generator_state
from posetransfer.runtime import effective_wait_policy


def _load_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def official_patn(repo: Path, preset: str) -> nn.Module:
    variants = _load_module(repo / "models" / "model_variants.py", "official_patn_variants")
    norm = nn.BatchNorm2d if preset == "market" else nn.InstanceNorm2d
    return variants.PATNetwork([3, 36], 3, ngf=64, norm_layer=norm, use_dropout=False, n_blocks=9, gpu_ids=[],
                               n_downsampling=2)


def official_pona(repo: Path, preset: str) -> nn.Module:
    stub = types.ModuleType("util")
    stub.util = types.ModuleType("util.util")
    sys.modules.setdefault("util", stub)
    sys.modules.setdefault("util.util", stub.util)
    module = _load_module(repo / "models" / "head3conv2.py", "official_pona_head3conv2")
    module.PATNModel = module.PoNAModel     # its constructor calls super(PATNModel, self)
    norm = nn.BatchNorm2d if preset == "market" else nn.InstanceNorm2d
    return module.PoNANetwork([3, 36], 3, ngf=64, norm_layer=norm, use_dropout=False, n_blocks=3, gpu_ids=[],
                              n_downsampling=2)


def _randomize_stats(model: nn.Module) -> None:
    gen = torch.Generator().manual_seed(3)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=gen) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
        for name in ("gamma", "beta"):
            p = getattr(m, name, None)
            if isinstance(p, nn.Parameter):
                p.data.fill_(0.5)


def build_case(arch: str, preset: str, repos: dict[str, Path | None]) -> tuple[nn.Module | None, nn.Module]:
    """(official model or None, our model with the same weights)."""
    torch.manual_seed(0)
    repo = repos.get(arch)
    maker = {"patn": official_patn, "pona": official_pona}.get(arch)
    if repo is None or maker is None or (arch == "pona" and preset == "market"):
        ours = bench.ModelSpec(arch, arch, {}).build(preset).eval()
        _randomize_stats(ours)
        return None, ours
    official = maker(repo, preset).eval()
    _randomize_stats(official)
    ours = convert_generator_state(arch, official.state_dict(), f"official {arch}", dataset=preset).eval()
    return official, ours


class Hog:
    """``python -c 'while True: pass'`` beside the benchmark, killed on exit whatever happens."""

    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        atexit.register(self.stop)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def time_columns(fns: dict, rounds: int, min_time: float) -> dict[str, list[float]]:
    for fn in fns.values():                 # warm-up (packs weights, builds Winograd buffers)
        fn()
    runs: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            calls, start = 0, time.perf_counter()
            while True:
                fn()
                calls += 1
                elapsed = time.perf_counter() - start
                if elapsed >= min_time:
                    break
            runs[name].append(elapsed / calls)
    return runs


def run_case(arch: str, preset: str, batches: list[int], repos, loads: list[str], rounds: int,
             min_time: float, bf16: bool = False) -> list[dict]:
    official, ours = build_case(arch, preset, repos)
    fast, info = prepare_for_inference(ours)
    bf16 = bf16 and getattr(ours, "fast_path_pays", True)       # GFLA and the flow model run float32 as they are
    fast_bf16 = prepare_for_inference(ours, precision="bf16")[0] if bf16 else None
    size = parse_size(preset)
    rows = []
    for batch in batches:
        src, smap, tmap = bench.make_inputs(size, batch)
        with torch.no_grad():
            ref = ours(src, smap, tmap)
        fns = {}
        diffs = {"fast": float((fast(src, smap, tmap) - ref).abs().max())}
        if official is not None:
            pose = torch.cat([smap, tmap], 1)
            with torch.no_grad():
                diffs["official"] = float((official([src, pose]) - ref).abs().max())

            def run_official(o=official, src=src, pose=pose):
                with torch.no_grad():
                    return o([src, pose])
            fns["official"] = run_official

        def run_plain(src=src, smap=smap, tmap=tmap):
            with torch.no_grad():
                return ours(src, smap, tmap)
        fns["plain"] = run_plain
        fns["fast"] = lambda src=src, smap=smap, tmap=tmap: fast(src, smap, tmap)
        if fast_bf16 is not None:
            bf16_error = (fast_bf16(src, smap, tmap) - ref).abs()
            diffs["bf16"], diffs["bf16_mean"] = float(bf16_error.max()), float(bf16_error.mean())
            fns["bf16"] = lambda src=src, smap=smap, tmap=tmap: fast_bf16(src, smap, tmap)
        for load in loads:
            hog = Hog() if load == "hog" else None
            try:
                time.sleep(0.5 if hog else 0)
                start_load = os.getloadavg()
                runs = time_columns(fns, rounds, min_time)
                end_load = os.getloadavg()
            finally:
                if hog:
                    hog.stop()
            row = {"arch": arch, "preset": preset, "size": list(size), "batch": batch, "load": load,
                   "loadavg_start": [round(x, 2) for x in start_load], "loadavg_end": [round(x, 2) for x in end_load],
                   "max_abs_diff_vs_plain": diffs, "fast_path": info, "wait_policy": effective_wait_policy(),
                   "threads": torch.get_num_threads(), "runs_s": runs,
                   "median_s": {k: statistics.median(v) for k, v in runs.items()}}
            base = "official" if "official" in runs else "plain"
            row["speedup_vs_" + base] = {k: statistics.median([b / v for b, v in zip(runs[base], runs[k])])
                                         for k in runs}
            if base == "official":
                row["speedup_vs_plain"] = {k: statistics.median([b / v for b, v in zip(runs["plain"], runs[k])])
                                           for k in runs}
            rows.append(row)
            print(format_row(row), flush=True)
    return rows


def format_row(row: dict) -> str:
    med = row["median_s"]
    cols = " / ".join(f"{k} {med[k]:.3f}" for k in ("official", "plain", "fast", "bf16") if k in med)
    speed = row.get("speedup_vs_official") or row["speedup_vs_plain"]
    base = "official" if "speedup_vs_official" in row else "plain"
    bf16 = f", bf16 {speed['bf16']:.2f}x" if "bf16" in speed else ""
    return (f"{row['arch']} {row['size'][0]}x{row['size'][1]} b{row['batch']} {row['load']}: {cols} s/batch; "
            f"fast vs {base} {speed['fast']:.2f}x{bf16}; load {row['loadavg_start'][0]} -> {row['loadavg_end'][0]}")


def format_markdown(result: dict) -> str:
    lines = ["| Model | Frame | Batch | Load | official s/batch | plain s/batch | fast s/batch | fast vs official | "
             "fast vs plain | spread fast (min-max) | bf16 s/batch | bf16 vs official | bf16 vs plain | "
             "bf16 max / mean abs diff | load avg |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        med, runs, diff = r["median_s"], r["runs_s"], r["max_abs_diff_vs_plain"]
        off = f"{med['official']:.3f}" if "official" in med else "–"
        vs_off = f"{r['speedup_vs_official']['fast']:.2f}×" if "speedup_vs_official" in r else "–"
        if "bf16" in med:
            bf16_off = f"{r['speedup_vs_official']['bf16']:.2f}×" if "speedup_vs_official" in r else "–"
            bf16 = (f"{med['bf16']:.3f} | {bf16_off} | {r['speedup_vs_plain']['bf16']:.2f}× | "
                    f"{diff['bf16']:.3f} / {diff['bf16_mean']:.4f}")
        else:
            bf16 = "– | – | – | –"
        lines.append(f"| {r['arch']} | {r['size'][0]}×{r['size'][1]} | {r['batch']} | {r['load']} | {off} | "
                     f"{med['plain']:.3f} | {med['fast']:.3f} | {vs_off} | {r['speedup_vs_plain']['fast']:.2f}× | "
                     f"{min(runs['fast']):.3f}–{max(runs['fast']):.3f} | {bf16} | "
                     f"{r['loadavg_start'][0]}–{r['loadavg_end'][0]} |")
    lines += ["", f"wait policy {result['wait_policy']}, {result['threads']} threads, torch {result['machine']['torch']}, "
              f"{result['machine'].get('cpu')}; medians of {result['rounds']} interleaved rounds"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official-repo", type=Path, default=None, help="checkout of tengteng95/Pose-Transfer")
    parser.add_argument("--pona-repo", type=Path, default=None, help="checkout of Zhangjinso/PoNA")
    parser.add_argument("--cases", nargs="+", default=["patn:market:1,8", "patn:deepfashion:1,4"],
                        help="arch:preset:batch,batch,...")
    parser.add_argument("--load", nargs="+", default=["idle", "hog"], choices=("idle", "hog"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds of calls per column and round")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--bf16", action="store_true",
                        help="add the fast path in bfloat16 as a column (a CPU with bf16 instructions)")
    add_output_arguments(parser)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    repos = {"patn": args.official_repo if args.official_repo and args.official_repo.is_dir() else None,
             "pona": args.pona_repo if args.pona_repo and args.pona_repo.is_dir() else None}
    result = {"machine": bench.machine_info(), "wait_policy": effective_wait_policy(),
              "threads": torch.get_num_threads(), "rounds": args.rounds, "min_time_s": args.min_time,
              "official_repos": {k: str(v) if v else None for k, v in repos.items()}, "rows": []}
    for case in args.cases:
        arch, preset, batches = case.split(":")
        result["rows"] += run_case(arch, preset, [int(b) for b in batches.split(",")], repos, args.load,
                                   args.rounds, args.min_time, bf16=args.bf16)
        save_partial(result, args)
    finish(result, args, format_markdown)


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """``--json`` / ``--md`` of the benchmark scripts."""
    parser.add_argument("--json", type=Path, default=None, help="raw figures (written after every row)")
    parser.add_argument("--md", type=Path, default=None, help="the Markdown table")


def save_partial(result: dict, args: argparse.Namespace) -> None:
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


def finish(result: dict, args: argparse.Namespace, formatter) -> None:
    """Record the machine at the end, write the JSON and the Markdown table, print the table."""
    result["machine_end"] = bench.machine_info()
    save_partial(result, args)
    text = formatter(result)
    if args.md:
        args.md.parent.mkdir(parents=True, exist_ok=True)
        args.md.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
