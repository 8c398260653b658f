"""Multi-GPU / multi-node data parallelism with ``torchrun`` (torch.distributed + DistributedDataParallel).

Launch (one process per GPU; the same command on every node with its ``--node_rank``)::

    torchrun --nproc_per_node=4 -m posetransfer train --preset patn-market --data DATA --out RUN
    torchrun --nnodes=2 --node_rank=0 --master_addr=HOST --master_port=29500 --nproc_per_node=8 \\
        -m posetransfer train ...

``torchrun`` sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT; :func:`setup` reads them and
joins the process group: NCCL on CUDA, gloo on CPU. ``train.batch_size`` is the *global* batch (as in the
papers), split evenly over the processes, so a run on N GPUs follows the same schedule as on one.
Only rank 0 logs, writes TensorBoard and checkpoints. Batch-norm layers become SyncBatchNorm on CUDA (so
the statistics are those of the global batch, as in single-GPU training); PyTorch has no CPU SyncBatchNorm,
so on CPU they stay per process (logged).
"""
from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from .devices import resolve_device

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str = ""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(preference: str = "auto") -> DistInfo:
    """Join the torchrun process group if WORLD_SIZE > 1, else run single-process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(preference, local_rank, flag="train.device")
    if world_size <= 1:
        return DistInfo(0, 1, 0, device, "")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
    return DistInfo(rank, world_size, local_rank, device, backend)


def cleanup(info: DistInfo) -> None:
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def convert_batchnorm(model: nn.Module, info: DistInfo) -> nn.Module:
    """BatchNorm → SyncBatchNorm when training on several GPUs (not available on CPU)."""
    if not info.distributed or not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return model
    if info.device.type != "cuda":
        if info.is_main:
            log.info("batch norm stays per process: SyncBatchNorm needs CUDA (statistics use the local batch)")
        return model
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


def wrap(model: nn.Module, info: DistInfo, find_unused_parameters: bool = False) -> nn.Module:
    """DistributedDataParallel around ``model`` (parameters broadcast from rank 0), or the model itself."""
    if not info.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [info.device.index] if info.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=find_unused_parameters)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") and isinstance(model.module, nn.Module) else model


def all_reduce_mean(values: dict[str, float], info: DistInfo) -> dict[str, float]:
    """Average scalar logs over processes (for logging only)."""
    if not info.distributed or not values:
        return values
    keys = sorted(values)
    tensor = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64,
                          device=info.device if info.backend == "nccl" else "cpu")
    dist.all_reduce(tensor)
    tensor /= info.world_size
    return dict(zip(keys, tensor.tolist()))


def gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """Every rank's ``obj`` (a list on every rank); single-process: ``[obj]``."""
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not info.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def replicas_identical(model: nn.Module, info: DistInfo) -> bool:
    """True if every process holds bit-identical parameters and buffers (sha256 of the raw bytes)."""
    if not info.distributed:
        return True
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in sorted(unwrap(model).state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    hashes = gather_objects(digest.hexdigest(), info)
    return len(set(hashes)) == 1


def any_flag(flag: bool, info: DistInfo) -> bool:
    """True on every rank if it is True on any rank (e.g. a non-finite loss, a time budget)."""
    if not info.distributed:
        return flag
    tensor = torch.tensor([1.0 if flag else 0.0], device=info.device if info.backend == "nccl" else "cpu")
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item() > 0)
