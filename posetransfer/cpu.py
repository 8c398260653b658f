"""CPU execution settings that hold on a shared machine: threads, OpenMP waiting, denormals, loader workers.

Why each one (measured on this project's 2-core VM with other jobs running; figures in the README's
performance section and ``benchmarks/results/train_step*.json``):

* **OpenMP wait policy.** torch's OpenMP runtime (GNU libgomp) lets a thread that reaches a barrier spin for
  a long while (``GOMP_SPINCOUNT`` 300,000 by default) before it sleeps. When another process shares the
  cores, the spinning thread burns the time slice the straggler it waits for needs, and every parallel
  region runs at the pace of the slowest thread: the demo's step went from ~1 s to 6–17 s with one CPU-bound
  process beside it. ``OMP_WAIT_POLICY=PASSIVE`` makes waiting threads sleep at once. The runtime reads it
  when it is loaded, i.e. when torch is imported, so :func:`prefer_passive_waiting` has to run before that
  (the ``posetransfer`` command calls it first thing). A value the user set is never changed.
* **Thread count** = the CPUs this process may run on: its affinity mask (``taskset``, cpusets), capped by a
  cgroup CPU quota (``docker --cpus``), not ``os.cpu_count()`` of the whole host; ``OMP_NUM_THREADS`` or an
  explicit setting wins.
* **Denormals.** Values below float32's smallest normal number (1.2e-38) take a slow microcode path in
  every multiply on x86. Gaussian pose heatmaps far from the joint are such values (the data fix is in
  :func:`posetransfer.data.keypoints.heatmaps`); :func:`flush_denormals` also sets the CPU's flush-to-zero
  mode for what the network itself produces. Threads that the OpenMP runtime creates afterwards inherit it.
* **DataLoader workers** are processes that need cores too: on CPU only as many as the model's threads leave
  free (none on 2 cores, where 0 workers also deliver ~600 Market samples/s, far above what the model eats).
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
from pathlib import Path
from typing import Iterator, Mapping

WAIT_POLICY_VARIABLE = "OMP_WAIT_POLICY"
#: variables that already say how OpenMP threads should wait; any of them set = leave waiting alone
WAIT_VARIABLES = (WAIT_POLICY_VARIABLE, "GOMP_SPINCOUNT", "KMP_BLOCKTIME")
CGROUP_ROOT = Path("/sys/fs/cgroup")


def prefer_passive_waiting(environ: "os._Environ[str] | dict[str, str]" = os.environ) -> bool:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` unless the user chose a wait setting; True if it was set now.

    Only has an effect before torch (its OpenMP runtime) is loaded into the process.
    """
    if any(environ.get(name) for name in WAIT_VARIABLES):
        return False
    environ[WAIT_POLICY_VARIABLE] = "PASSIVE"
    return True


def prepare_process(environ: "os._Environ[str] | dict[str, str]" = os.environ) -> dict[str, str]:
    """What the ``posetransfer`` command does first, before torch is imported: passive OpenMP waiting and
    ``OMP_NUM_THREADS`` = :func:`available_cpus`, each unless the user set it. Returns the variables set
    (nothing once torch is loaded: its runtime has read them already, and a caller that imported torch
    owns the settings)."""
    if torch_loaded():
        return {}
    changed: dict[str, str] = {}
    if prefer_passive_waiting(environ):
        changed[WAIT_POLICY_VARIABLE] = environ[WAIT_POLICY_VARIABLE]
    if not environ.get("OMP_NUM_THREADS"):
        environ["OMP_NUM_THREADS"] = changed["OMP_NUM_THREADS"] = str(available_cpus())
    return changed


def wait_policy_effective(environ: Mapping[str, str] = os.environ) -> str:
    """What the OpenMP runtime of this process is using, as far as it can be known (for reports)."""
    value = environ.get(WAIT_POLICY_VARIABLE) or ("GOMP_SPINCOUNT=" + environ["GOMP_SPINCOUNT"]
                                                  if environ.get("GOMP_SPINCOUNT") else "default (spinning)")
    return value


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> float | None:
    """CPUs' worth of time the cgroup quota allows (cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``), or None."""
    with contextlib.suppress(OSError, ValueError):
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    with contextlib.suppress(OSError, ValueError):
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota_us <= 0 or period_us <= 0 else quota_us / period_us
    return None


def available_cpus(root: Path = CGROUP_ROOT) -> int:
    """CPUs this process may use: its affinity mask, capped by the cgroup quota (rounded up, at least 1)."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        count = os.cpu_count() or 1
    limit = cgroup_cpu_limit(root)
    if limit is not None:
        count = min(count, max(1, math.ceil(limit - 1e-9)))
    return max(1, count)


def intra_op_threads(requested: int | None = None, environ: Mapping[str, str] = os.environ,
                     cpus: int | None = None) -> int:
    """Threads for torch's intra-op pool: ``requested`` (a config / flag) > ``OMP_NUM_THREADS`` > the CPUs
    this process may use."""
    if requested:
        return int(requested)
    with contextlib.suppress(ValueError):
        value = int(environ.get("OMP_NUM_THREADS", "").split(",")[0])
        if value > 0:
            return value
    return cpus if cpus is not None else available_cpus()


def set_threads(requested: int | None = None) -> int:
    """Apply :func:`intra_op_threads` to torch; returns the count."""
    import torch

    threads = intra_op_threads(requested)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def loader_workers(requested: int, device_type: str, threads: int, cpus: int | None = None) -> int:
    """DataLoader worker processes: as configured on an accelerator; on CPU only the CPUs the model's
    ``threads`` leave free."""
    if device_type != "cpu":
        return requested
    free = (cpus if cpus is not None else available_cpus()) - threads
    return max(0, min(requested, free))


@contextlib.contextmanager
def flush_denormals(enabled: bool = True) -> Iterator[bool]:
    """Flush-to-zero / denormals-are-zero on this thread while active (then back to the default, off).
    Yields whether the CPU supports it."""
    import torch

    if not enabled:
        yield False
        return
    supported = torch.set_flush_denormal(True)
    try:
        yield supported
    finally:
        if supported:
            torch.set_flush_denormal(False)


def torch_loaded() -> bool:
    return "torch" in sys.modules
