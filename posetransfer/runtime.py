"""Process-wide CPU settings for inference: how many threads, and how idle pool threads wait.

    from posetransfer.runtime import configure_threads
    configure_threads()          # before the first ``import torch`` of the process, for the wait policy

Why this exists: PyTorch's CPU kernels run on an OpenMP pool (GNU libgomp in the PyPI wheels). Every
parallel op ends in a barrier, and libgomp's default is to *spin* at a barrier for 300,000 iterations of a
pause loop before sleeping — milliseconds on current CPUs. On a machine where another process is running,
the thread a barrier waits for is often preempted, and the spinning thread then burns the very core that
thread needs: a model made of many short ops (the fast path's Winograd transforms) slows down several-fold
on a busy machine (figures in the README's Performance section), where with passive waiting it keeps its
lead. The policy is read once, when libgomp is loaded (at ``import torch``), so it
can only be chosen before that; :func:`configure_threads` sets it through the environment when it still
can (and leaves an explicit ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` of the user alone).

Thread count: one per CPU this process may run on (:func:`posetransfer.cpu.available_cpus`: the affinity
mask, capped by a cgroup quota, where ``os.cpu_count()`` counts the whole host). More threads than cores only
adds barriers waiting for preempted threads.

The ``posetransfer`` command sets the policy and the thread count for every subcommand before torch is
imported (:func:`posetransfer.cpu.prepare_process`); the commands that run a generator then apply
``--threads`` through :func:`configure_threads`. Library users call :func:`configure_threads` at the top of
their program, or export ``OMP_WAIT_POLICY=PASSIVE``. :func:`thread_settings` describes what is in force
(recorded in results files). This module holds what inference decides from those settings (the fast path
uses Winograd only with passive waiting: :func:`waits_passively`); :mod:`posetransfer.cpu` the settings.
"""
from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass

from .cpu import WAIT_VARIABLES, available_cpus, intra_op_threads, prefer_passive_waiting, torch_loaded

log = logging.getLogger(__name__)

WAIT_POLICIES = ("passive", "active", "default")


@dataclass
class ThreadSettings:
    """What :func:`configure_threads` found or set (``wait_policy_applied``: False when torch was already
    imported with another policy, so the requested one could not take effect)."""

    threads: int
    cores: int
    wait_policy: str
    wait_policy_applied: bool

    def to_json(self) -> dict:
        return asdict(self)


def effective_wait_policy() -> str:
    """The OpenMP wait policy as the environment states it: ``passive``, ``active``, ``spin=<count>`` or
    ``default`` (libgomp's spin-then-sleep). Meaningful when the variables were set before torch was
    imported, which is how they take effect at all."""
    policy = os.environ.get("OMP_WAIT_POLICY", "").strip().lower()
    if policy in ("passive", "active"):
        return policy
    spin = os.environ.get("GOMP_SPINCOUNT", "").strip()
    if spin:
        return "passive" if spin == "0" else f"spin={spin}"
    return "default"


def waits_passively() -> bool:
    """True when idle pool threads sleep instead of spinning (passive policy, or a spin count of 0)."""
    return effective_wait_policy() == "passive"


def configure_threads(threads: int | None = None, wait_policy: str = "passive") -> ThreadSettings:
    """Use ``threads`` intra-op threads and, when torch is not imported yet and the user set none, the
    OpenMP ``wait_policy`` (``passive`` | ``active`` | ``default``: leave libgomp's own). Returns what is
    in force.

    Without ``threads``, the count becomes :func:`posetransfer.cpu.intra_op_threads` (``OMP_NUM_THREADS``, else
    the CPUs this process may use) only in a process that has not imported
    torch yet (a command starting): a program that already runs torch keeps the count it chose.
    """
    if wait_policy not in WAIT_POLICIES:
        raise ValueError(f"wait_policy must be one of {', '.join(WAIT_POLICIES)}, got {wait_policy!r}")
    user_set = any(os.environ.get(name) for name in WAIT_VARIABLES)
    loaded = torch_loaded()
    applied = True
    if wait_policy != "default" and not user_set:
        if loaded:
            applied = False
            log.debug("torch is already imported: the OpenMP wait policy stays %s (set OMP_WAIT_POLICY before "
                      "importing torch)", effective_wait_policy())
        elif wait_policy == "passive":
            prefer_passive_waiting()
        else:
            os.environ["OMP_WAIT_POLICY"] = wait_policy.upper()
    import torch

    cores = available_cpus()
    if threads or not loaded:
        count = max(1, int(threads)) if threads else intra_op_threads()
        if torch.get_num_threads() != count:
            torch.set_num_threads(count)
    return ThreadSettings(threads=torch.get_num_threads(), cores=cores, wait_policy=effective_wait_policy(),
                          wait_policy_applied=applied and (user_set or wait_policy == "default"
                                                           or effective_wait_policy() == wait_policy))


def thread_settings() -> dict:
    """The settings in force, for results files: threads, cores, wait policy."""
    import torch

    return {"threads": torch.get_num_threads(), "cores": available_cpus(), "wait_policy": effective_wait_policy()}
