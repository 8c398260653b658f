"""Throughput of the synthetic-people generator on one core.

Measures (1) rendering + JPEG encoding of dataset images in this process, and (2) the end-to-end
``generate_dataset`` (files, CSVs, pairs) with one worker. Both as wall-clock and as CPU time of this
process (on a shared machine the CPU figure is the one that says what one core can do).

With one worker (the default) the process pins itself to one CPU first (``--no-pin``: do not), so the
background writer thread shares that core with the renderer: the figures are what one core does, as the
speed target is stated. With ``--workers N`` nothing is pinned (the worker processes would inherit the pin).

    python benchmarks/bench_synth.py --size both --rounds 5 --dir /tmp --dir /dev/shm \
        --json benchmarks/results/synth_cpu.json            # 2000 images per size, five rounds
    python benchmarks/bench_synth.py --size fashion --images 500
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from posetransfer.data import synth  # noqa: E402
from posetransfer.io import write_json  # noqa: E402
from posetransfer.kinds import parse_kind  # noqa: E402


def bench_render(kind: str, images: int, poses: int, seed: int, batch: int = 100) -> dict[str, float]:
    """Render + JPEG encode ``images`` dataset images; rates in images per second.

    The images come from the dataset writer's own render loop (``synth.render_identity``: planning, scenes
    and rendering), so this measures what ``generate_dataset`` runs, minus the files. ``wall`` and ``cpu``
    over the whole run, plus the median and the best CPU rate of batches of ``batch`` images: on a shared,
    busy machine the best batch shows what one uncontended core does.
    """
    people = max(1, images // poses)
    for i in range(2):  # warm up (imports, caches) on other identities
        for _, image, _ in synth.render_identity(seed + 1, kind, i, 2):
            synth.encode_jpeg(image)
    wall, cpu, n = time.perf_counter(), time.process_time(), 0
    batches, batch_start = [], time.process_time()
    for i in range(people):
        for _, image, _ in synth.render_identity(seed, kind, i, poses):
            synth.encode_jpeg(image)
            n += 1
            if n % batch == 0:
                now = time.process_time()
                batches.append(batch / max(1e-9, now - batch_start))
                batch_start = now
    return {"wall": n / (time.perf_counter() - wall), "cpu": n / (time.process_time() - cpu),
            "median": statistics.median(batches) if batches else float("nan"),
            "best": max(batches) if batches else float("nan")}


def bench_generate(kind: str, images: int, poses: int, seed: int, workers: int,
                   folder: str | None = None) -> tuple[float, float]:
    """(images per wall second, images per CPU second of this process) of generate_dataset.

    ``folder``: where the dataset is written (default: the system temporary folder). Creating a small file
    costs 10-50 µs on a local SSD or in RAM (``/dev/shm``) but up to several hundred on a busy virtual disk;
    the generator writes its files on a background thread so that this time overlaps rendering. The CPU
    figure counts that thread too.
    """
    people = max(2, images // poses)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        wall, cpu = time.perf_counter(), time.process_time()
        synth.generate_dataset(Path(tmp) / "ds", kind, identities=people, poses=poses, seed=seed, workers=workers)
        n = people * poses
        return n / (time.perf_counter() - wall), n / max(1e-9, time.process_time() - cpu)


def pin_to_one_cpu() -> int | None:
    """Pin this process (and the threads it starts later) to the first CPU it may use; None if unsupported."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("market", "fashion", "both"), default="market")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--poses", type=int, default=10, help="images per identity")
    parser.add_argument("--workers", type=int, default=1, help="workers of the end-to-end run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dir", action="append", default=None,
                        help="folder for the end-to-end run (repeatable, e.g. --dir /tmp --dir /dev/shm)")
    parser.add_argument("--rounds", type=int, default=1, help="repeat every measurement this many times")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the process to one CPU")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure to this JSON file")
    args = parser.parse_args()
    kinds = ("market", "fashion") if args.size == "both" else (args.size,)
    pinned = None if args.no_pin or args.workers > 1 else pin_to_one_cpu()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"cpus={os.cpu_count()} load(1 min)={load:.1f} pinned to cpu {pinned}")
    rows = []
    for _ in range(args.rounds):
        for kind in kinds:
            h, w = parse_kind(kind).size
            r = bench_render(kind, args.images, args.poses, args.seed)
            rows.append({"size": kind, "what": "render+jpeg", **{k: round(v, 1) for k, v in r.items()}})
            print(f"{kind} {h}x{w} render+jpeg : {r['wall']:7.0f} img/s wall  {r['cpu']:7.0f} img/s cpu  "
                  f"({1e3 / r['cpu']:.2f} ms/img); batches of 100: median {r['median']:.0f}, "
                  f"best {r['best']:.0f} img/s cpu", flush=True)
            for folder in args.dir or [None]:
                wall, cpu = bench_generate(kind, args.images, args.poses, args.seed, args.workers, folder)
                folder = folder or tempfile.gettempdir()
                rows.append({"size": kind, "what": "generate_dataset", "folder": folder, "workers": args.workers,
                             "wall": round(wall, 1), "cpu": round(cpu, 1)})
                cpu_text = f"{cpu:7.0f} img/s cpu (this process)" if args.workers == 1 else "(cpu in workers)"
                print(f"{kind} {h}x{w} generate_dataset workers={args.workers} in {folder}: {wall:7.0f} img/s wall  "
                      f"{cpu_text}", flush=True)
    if args.json is not None:
        from posetransfer.bench import machine_info  # torch is imported only for the record
        write_json(args.json, {"machine": machine_info(), "pinned_cpu": pinned, "images": args.images,
                               "poses": args.poses, "rows": rows})
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
