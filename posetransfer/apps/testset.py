"""``posetransfer test``: generate the test pairs of a dataset with the standard file names.

Output (read by ``posetransfer eval``)::

    <out>/<from>___<to>.png          # the generated image, e.g. a.jpg___b.jpg.png
    <out>/<from>___<to>_vis.jpg      # --strip: [source | source pose | target | target pose | generated]
    <out>/flows/<from>___<to>_flow.png  # --save-flows, flow generators only (and _relations.png:
                                        #   the pyramid non-local relation maps, the paper's Fig. 7)
    <out>/test_run.json              # checkpoint, dataset, counts
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from .. import viz
from ..errors import ConfigError, DataError
from ..io import NewFiles
from .transfer import Transferer

log = logging.getLogger(__name__)

SEPARATOR = "___"


def output_name(source: str, target: str) -> str:
    """``<from>___<to>.png`` with the full image names (extensions kept), the PATN naming."""
    return f"{source}{SEPARATOR}{target}.png"


def _flow_figures(result, index: int, source: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
    """The flow-field figure and (when the model has a pyramid non-local block) the relation-map figure."""
    from ..errors import ModelError
    from ..viz_flow import flow_figure, relation_figure

    figures = {"flow": flow_figure(result, source_image=source, target_image=target, index=index)}
    try:
        figures["relations"] = relation_figure(result, index=index)
    except ModelError:  # e.g. the "no pyramid non-local" ablation has no relation maps
        pass
    return figures


def generate_test_set(model: Transferer, data_root: str | os.PathLike, out: str | os.PathLike, *,
                      split: str = "test", limit: int | None = None, strip: bool = False,
                      save_flows: bool = False, batch_size: int = 8, workers: int = 0,
                      progress: bool = True) -> dict:
    """Generate every pair of ``split`` (or the first ``limit``) into ``out``; returns a summary dict."""
    from tqdm import tqdm

    from ..data.dataset import PairDataset

    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {limit}")
    dataset = PairDataset(data_root, split=split, size=model.size if model.size_source == "explicit" else None,
                          heatmap_mode=model.heatmap_mode, sigma=model.sigma, on_bad_sample="skip")
    if tuple(dataset.size) != tuple(model.size):
        if model.size_source == "checkpoint":
            raise ConfigError(f"{data_root}: images are {dataset.size[0]}x{dataset.size[1]} but the checkpoint was "
                              f"trained at {model.size[0]}x{model.size[1]} (pass --size to override)")
        model.size = tuple(dataset.size)
    if len(dataset) == 0:
        raise DataError(f"{data_root}: the {split} split has no pairs")
    subset = dataset if limit is None else Subset(dataset, range(min(limit, len(dataset))))
    loader = DataLoader(subset, batch_size=batch_size, shuffle=False, num_workers=workers)
    out = Path(out)
    files = NewFiles(out)
    done: set[str] = set()
    flows_written = 0
    device = model.device
    with files, torch.inference_mode():   # an error (disk full) removes what this run wrote: no partial set
        for batch in tqdm(loader, desc="test", unit="batch", disable=not progress):
            with model.lock:
                result = model.generator(batch["source_image"].to(device), batch["source_heatmaps"].to(device),
                                         batch["target_heatmaps"].to(device), return_extras=True)
            for i, (a, b) in enumerate(zip(batch["source_name"], batch["target_name"])):
                name = output_name(a, b)
                if name in done:   # a pair with a bad image was served as the next good pair, already written
                    continue
                done.add(name)
                generated = viz.to_uint8(result.image[i])
                files.save_image(out / name, generated)
                want_flows = save_flows and bool(result.flows)
                if strip or want_flows:
                    source = viz.to_uint8(batch["source_image"][i])
                    target = viz.to_uint8(batch["target_image"][i])
                if strip:
                    panel = viz.test_strip(source, batch["source_keypoints"][i].numpy(), target,
                                           batch["target_keypoints"][i].numpy(), generated)
                    files.save_image(out / f"{a}{SEPARATOR}{b}_vis.jpg", panel)
                if want_flows:
                    for kind, figure in _flow_figures(result, i, source, target).items():
                        files.save_image(out / "flows" / f"{a}{SEPARATOR}{b}_{kind}.png", figure)
                    flows_written += 1
        if save_flows and flows_written == 0:
            log.warning("--save-flows: the %r generator returns no flow fields", model.arch)
        summary = {"checkpoint": model.name, "arch": model.arch, "data": str(data_root), "split": split,
                   "size": list(model.size), "pairs": len(subset), "written": len(done),
                   "bad_samples": sorted(dataset.bad_samples), "strip": strip, "flows_written": flows_written}
        files.write_json(out / "test_run.json", summary)
    return summary
