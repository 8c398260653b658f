"""``posetransfer test``: generate the test pairs of a dataset with the standard file names.

Output (read by ``posetransfer eval``)::

    <out>/<from>___<to>.png          # the generated image, e.g. a.jpg___b.jpg.png
    <out>/<from>___<to>_vis.jpg      # --strip: [source | source pose | target | target pose | generated]
    <out>/flows/<from>___<to>_flow.png  # --save-flows, flow generators only (and _relations.png:
                                        #   the pyramid non-local relation maps, the paper's Fig. 7)
    <out>/test_run.json              # checkpoint, dataset, counts, the input contract used

The dataset's images must be in the model's frame (``model.frame``, from its input contract); the pose maps
are the contract's (kind, σ). Where the contract maps the dataset frame onto another generator frame (GFLA's
released DeepFashion model: 256×176 images stretched to 256×256), the outputs are mapped back, so every
written image has the dataset's frame and ``eval`` compares like with like.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader, Subset

from .. import viz
from ..data.dataset import PairDataset
from ..errors import ConfigError, DataError, ModelError
from ..inference import InferenceModel
from ..io import NewFiles
from ..viz_flow import flow_figure, relation_figure

log = logging.getLogger(__name__)

SEPARATOR = "___"


def output_name(source: str, target: str) -> str:
    """``<from>___<to>.png`` with the full image names (extensions kept), the PATN naming."""
    return f"{source}{SEPARATOR}{target}.png"


def _flow_figures(result, index: int, source: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
    """The flow-field figure and (when the model has a pyramid non-local block) the relation-map figure."""
    figures = {"flow": flow_figure(result, source_image=source, target_image=target, index=index)}
    try:
        figures["relations"] = relation_figure(result, index=index)
    except ModelError:  # e.g. the "no pyramid non-local" ablation has no relation maps
        pass
    return figures


def generate_test_set(model: InferenceModel, data_root: str | os.PathLike, out: str | os.PathLike, *,
                      split: str = "test", limit: int | None = None, strip: bool = False,
                      save_flows: bool = False, batch_size: int = 8, workers: int = 0,
                      progress: bool = True) -> dict:
    """Generate every pair of ``split`` (or the first ``limit``) into ``out``; returns a summary dict."""
    from tqdm import tqdm

    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {limit}")
    dataset = PairDataset(data_root, split=split, heatmap_mode=model.heatmap, sigma=model.sigma,
                          on_bad_sample="skip")
    model.check_frame(dataset.size, str(data_root))
    if len(dataset) == 0:
        raise DataError(f"{data_root}: the {split} split has no pairs")
    subset = dataset if limit is None else Subset(dataset, range(min(limit, len(dataset))))
    loader = DataLoader(subset, batch_size=batch_size, shuffle=False, num_workers=workers)
    out = Path(out)
    files = NewFiles(out)
    done: set[str] = set()
    flows_written = 0
    direct = model.frame == model.size     # the dataset's tensors are the generator's input as they are
    with files:   # an error (disk full) removes what this run wrote: no partial set
        for batch in tqdm(loader, desc="test", unit="batch", disable=not progress):
            sources = [viz.to_uint8(t) for t in batch["source_image"]]
            if direct:
                result = model.generate_tensors(batch["source_image"], batch["source_heatmaps"],
                                                batch["target_heatmaps"], extras=True)
                images = [viz.to_uint8(t) for t in result.image]
            else:
                images, result = model.generate_batch(sources, list(batch["source_keypoints"].numpy()),
                                                      list(batch["target_keypoints"].numpy()), extras=True)
            for i, (a, b) in enumerate(zip(batch["source_name"], batch["target_name"])):
                name = output_name(a, b)
                if name in done:   # a pair with a bad image was served as the next good pair, already written
                    continue
                done.add(name)
                generated = images[i]
                files.save_image(out / name, generated)
                want_flows = save_flows and bool(result.flows)
                target = viz.to_uint8(batch["target_image"][i]) if strip or want_flows else None
                if strip:
                    panel = viz.test_strip(sources[i], batch["source_keypoints"][i].numpy(), target,
                                           batch["target_keypoints"][i].numpy(), generated)
                    files.save_image(out / f"{a}{SEPARATOR}{b}_vis.jpg", panel)
                if want_flows:   # flows are in the generator's frame: so are the figure's images
                    figures = _flow_figures(result, i, model.image_to_model(sources[i]), model.image_to_model(target))
                    for kind, figure in figures.items():
                        files.save_image(out / "flows" / f"{a}{SEPARATOR}{b}_{kind}.png", figure)
                    flows_written += 1
        if save_flows and flows_written == 0:
            log.warning("--save-flows: the %r generator returns no flow fields", model.arch)
        summary = {"checkpoint": model.name, "arch": model.arch, "data": str(data_root), "split": split,
                   "size": list(model.frame), "model_size": list(model.size),
                   "input_contract": model.contract.to_json(), "contract_source": model.contract_source,
                   "pairs": len(subset), "written": len(done), "bad_samples": sorted(dataset.bad_samples),
                   "strip": strip, "flows_written": flows_written}
        files.write_json(out / "test_run.json", summary)
    return summary
