"""The training data: the preset's dataset and the loader that hands it out in a seeded, resumable order."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterator

import torch

from .. import distributed as D
from ..errors import ConfigError
from ..kinds import find_kind

log = logging.getLogger("posetransfer.train")


class EpochLoader:
    """Batches in a seeded order per epoch (``DistributedSampler`` partition), resumable at any batch.

    ``position`` counts the batches of the current epoch already handed out; a resumed run restarts the
    same epoch's plan at that position, so it sees exactly the batches the uninterrupted run would.
    ``bad_samples`` collects the files the dataset skipped, also those found inside DataLoader workers
    (each batch carries its worker's list; the main dataset learns them before the next epoch's workers start,
    so those do not read — or warn about — a known bad file again).
    """

    def __init__(self, dataset, batch_size: int, seed: int, info: D.DistInfo, workers: int, pin: bool) -> None:
        self.dataset, self.batch_size, self.seed, self.info = dataset, batch_size, seed, info
        self.workers, self.pin = workers, pin
        self.epoch, self.position = 0, 0
        self.bad_samples: set[str] = set(getattr(dataset, "bad_samples", set()))
        if len(self.plan(0)) == 0:
            raise ConfigError(f"the dataset has {len(dataset)} pairs, fewer than one batch of "
                              f"{batch_size * info.world_size}")

    def plan(self, epoch: int) -> list[list[int]]:
        from torch.utils.data import DistributedSampler

        sampler = DistributedSampler(self.dataset, num_replicas=self.info.world_size, rank=self.info.rank,
                                     shuffle=True, seed=self.seed, drop_last=True)
        sampler.set_epoch(epoch)
        indices = list(sampler)
        n = len(indices) // self.batch_size
        return [indices[i * self.batch_size:(i + 1) * self.batch_size] for i in range(n)]

    def batches(self) -> Iterator[dict[str, Any]]:
        from torch.utils.data import DataLoader

        while True:
            plan = self.plan(self.epoch)
            if hasattr(self.dataset, "set_epoch"):
                self.dataset.set_epoch(self.epoch)
            # own generator: creating a loader must not consume the global RNG (resume would diverge)
            generator = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
            loader = DataLoader(_Tracked(self.dataset), batch_sampler=plan[self.position:],
                                num_workers=self.workers, pin_memory=self.pin, generator=generator,
                                collate_fn=_collate_tracked, persistent_workers=False)
            for batch in loader:
                self.position += 1
                self._learn(batch.pop("bad_samples"))
                yield batch
            self.epoch, self.position = self.epoch + 1, 0

    def _learn(self, names: set[str]) -> None:
        new = names - self.bad_samples
        if new:
            self.bad_samples |= new
            known = getattr(self.dataset, "bad_samples", None)
            if isinstance(known, set):
                known |= new

    def state(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "position": self.position, "batch_size": self.batch_size,
                "world_size": self.info.world_size, "pairs": len(self.dataset),
                "bad_samples": sorted(self.bad_samples)}

    def restore(self, state: dict[str, Any]) -> None:
        self._learn(set(state.get("bad_samples", [])))
        if (state.get("pairs"), state.get("batch_size"), state.get("world_size")) != (
                len(self.dataset), self.batch_size, self.info.world_size):
            log.warning("data order cannot be resumed exactly (dataset size, batch size or process count "
                        "changed); continuing at the start of epoch %d", state.get("epoch", 0) + 1)
            self.epoch, self.position = int(state.get("epoch", 0)) + 1, 0
            return
        self.epoch, self.position = int(state["epoch"]), int(state["position"])


class _Tracked(torch.utils.data.Dataset):
    """Returns (item, the dataset's bad files so far) so that discoveries in workers reach the trainer."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        item = self.dataset[index]
        return item, frozenset(getattr(self.dataset, "bad_samples", ()))


def _collate_tracked(samples):
    from torch.utils.data import default_collate

    batch = default_collate([item for item, _ in samples])
    batch["bad_samples"] = set().union(*(bad for _, bad in samples))
    return batch


def build_dataset(cfg: dict[str, Any], data: str | Path, seed: int):
    """The preset's training pairs of ``data`` (``PairDataset``); warns when the folder is of another kind."""
    from ..data.dataset import PairDataset

    ds_cfg = cfg["dataset"]
    dataset = PairDataset(data, "train", size=tuple(ds_cfg["size"]), heatmap_mode=ds_cfg["heatmap"],
                          sigma=ds_cfg["sigma"], augment=ds_cfg["augment"], on_bad_sample=ds_cfg["on_bad_sample"],
                          seed=seed)
    found = find_kind(getattr(dataset, "kind", None))
    kind = None if found is None else found.name
    if kind is not None and kind != ds_cfg["kind"]:
        log.warning("dataset %s is %s but the preset %s is for %s", data, kind, cfg["name"], ds_cfg["kind"])
    return dataset
