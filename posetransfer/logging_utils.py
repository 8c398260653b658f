"""What a training run shows: a progress bar, TensorBoard scalars and image grids, a log file.

Only rank 0 of a distributed run creates these (the trainer passes ``enabled=False`` elsewhere).
Image grid rows: source | target pose | generated | target | attention (mean of the last mask, if any).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

log = logging.getLogger("posetransfer.train")


class RunLog:
    """Adds ``<run>/train.log`` to the ``posetransfer`` logger for the duration of a run."""

    def __init__(self, run: Path, enabled: bool) -> None:
        self.handler: logging.Handler | None = None
        self.previous_level: int | None = None
        if enabled:
            run.mkdir(parents=True, exist_ok=True)
            self.handler = logging.FileHandler(run / "train.log", encoding="utf-8")
            self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            self.handler.setLevel(logging.INFO)
            logger = logging.getLogger("posetransfer")
            logger.addHandler(self.handler)
            if logger.getEffectiveLevel() > logging.INFO:  # the file gets INFO even if the console is quieter
                self.previous_level = logger.level
                logger.setLevel(logging.INFO)

    def close(self) -> None:
        if self.handler is not None:
            logger = logging.getLogger("posetransfer")
            logger.removeHandler(self.handler)
            self.handler.close()
            self.handler = None
            if self.previous_level is not None:
                logger.setLevel(self.previous_level)


class Progress:
    """tqdm bar with the latest losses; tqdm computes it/s itself."""

    def __init__(self, total: int | None, initial: int, enabled: bool) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, initial=initial, disable=not enabled, unit="it", dynamic_ncols=True,
                        mininterval=1.0, desc="train")

    def update(self, losses: dict[str, float] | None = None) -> None:
        if losses is not None:
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in losses.items()}, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


class Board:
    """TensorBoard ``SummaryWriter`` in ``<run>/tensorboard`` (off unless ``enabled``)."""

    def __init__(self, run: Path, enabled: bool) -> None:
        self.writer = None
        if not enabled:
            return
        from torch.utils.tensorboard import SummaryWriter  # tensorboard is a declared dependency

        self.writer = SummaryWriter(log_dir=str(run / "tensorboard"))

    def scalars(self, values: dict[str, float], step: int, prefix: str = "loss/") -> None:
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(prefix + key, value, step)

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        if self.writer is not None:
            self.writer.add_image(tag, image, step, dataformats="HWC")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()


def pose_images(batch: dict[str, Any], size: tuple[int, int], rows: int) -> torch.Tensor:
    """Target poses drawn as skeletons (from keypoints if the batch has them, else heatmap maxima)."""
    from .viz import draw_skeleton, heatmaps_to_image

    out = []
    for i in range(rows):
        if "target_keypoints" in batch:
            kp = batch["target_keypoints"][i].cpu().numpy()
            drawing = draw_skeleton(kp, size)
        else:
            maps = batch["target_heatmaps"][i].detach().float().cpu().numpy()
            drawing = heatmaps_to_image(maps)
        out.append(torch.from_numpy(np.array(drawing, dtype=np.uint8)).permute(2, 0, 1))
    return torch.stack(out)


def attention_images(attention: list[torch.Tensor], size: tuple[int, int], rows: int) -> torch.Tensor | None:
    """The last attention mask, averaged over channels, upsampled, as grey uint8 images."""
    if not attention:
        return None
    mask = attention[-1][:rows].detach().float().mean(1, keepdim=True)
    mask = F.interpolate(mask, size=size, mode="bilinear", align_corners=False).clamp(0, 1)
    return (mask.repeat(1, 3, 1, 1).cpu() * 255).round().to(torch.uint8)


def sample_grid(batch: dict[str, Any], generated: torch.Tensor, attention: list[torch.Tensor] | None = None,
                max_rows: int = 4) -> np.ndarray:
    """uint8 H×W×3 grid, one row per sample: source | target pose | generated | target [| attention]."""
    from torchvision.utils import make_grid

    from .viz import batch_to_uint8

    rows = min(max_rows, generated.shape[0])
    size = tuple(generated.shape[2:])
    columns = [batch_to_uint8(batch["source_image"][:rows]), pose_images(batch, size, rows),
               batch_to_uint8(generated[:rows]), batch_to_uint8(batch["target_image"][:rows])]
    att = attention_images(attention or [], size, rows)
    if att is not None:
        columns.append(att)
    tiles = torch.stack(columns, 1).reshape(rows * len(columns), 3, *size)
    grid = make_grid(tiles, nrow=len(columns), padding=2, pad_value=255)
    return grid.permute(1, 2, 0).numpy().copy()
