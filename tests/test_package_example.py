"""The package docstring's example (posetransfer/__init__.py) runs as written, on a run folder that
``posetransfer train`` really writes."""
from __future__ import annotations

import numpy as np
import torch

import posetransfer
from posetransfer.cli import main
from posetransfer.data import keypoints as K
from posetransfer.data.layout import find_split_files
from posetransfer.io import read_image

TINY = ["model.ngf=8", "model.n_blocks=1", "model.dropout=0.0", "train.batch_size=2", "train.workers=0",
        "train.checkpoint_every=2", "train.image_every=1000", "train.log_every=1", "train.amp=false",
        "loss.perceptual=0", "optim.iterations=2", "optim.decay_start=1",
        *(f"discriminators.{d}.{k}={v}" for d in ("appearance", "shape") for k, v in (("ndf", 8), ("n_blocks", 1)))]


def example_lines() -> list[str]:
    doc = posetransfer.__doc__
    body = doc[doc.index("Public API"):].splitlines()[1:]
    lines = [line[4:] for line in body if line.startswith("    ")]
    assert len(lines) >= 5, doc
    return lines


def test_the_package_docstring_example_runs_as_written(tiny_dataset, tmp_path, monkeypatch, capsys):
    data = tiny_dataset("market")
    monkeypatch.chdir(tmp_path)
    argv = ["train", "--preset", "patn-market", "--data", str(data), "--out", "runs/patn-market", "--steps", "2",
            "--device", "cpu", "--no-progress"]
    for item in TINY:
        argv += ["--set", item]
    assert main(argv) == 0
    capsys.readouterr()

    images_dir, annotation_csv, pairs_csv = find_split_files(data, "train")
    annotations = K.read_annotations(annotation_csv)
    pairs = K.read_pairs(pairs_csv)[:2]
    probe = posetransfer.load_model("runs/patn-market")
    inputs = ([read_image(images_dir / a) for a, _ in pairs], [annotations[a] for a, _ in pairs],
              [annotations[b] for _, b in pairs])
    namespace = {
        "posetransfer": posetransfer,
        "images": inputs[0], "source_keypoints": inputs[1], "target_keypoints": inputs[2],
        "source_image": torch.zeros(1, 3, *probe.frame),
        "source_heatmaps": probe.heatmaps(annotations[pairs[0][0]])[None],
        "target_heatmaps": probe.heatmaps(annotations[pairs[0][1]])[None],
    }
    lines = example_lines()
    for line in lines:
        exec(compile(line, "posetransfer/__init__.py docstring", "exec"), namespace)

    images = namespace["images"]
    assert len(images) == 2 and all(i.shape == (128, 64, 3) and i.dtype == np.uint8 for i in images)
    image = namespace["image"].detach()
    assert tuple(image.shape) == (1, 3, 128, 64) and float(image.abs().max()) <= 1.0
    assert (tmp_path / "patn.safetensors").is_file()
    # the file written by save_generator holds the same network: the same outputs as the run it came from
    again = namespace["model"].generate_batch(*inputs)
    for a, b in zip(again, probe.generate_batch(*inputs)):
        np.testing.assert_array_equal(a, b)
