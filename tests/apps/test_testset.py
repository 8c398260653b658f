"""``posetransfer test``: one image per test pair with the standard names, the 5-panel strips, --limit."""
from __future__ import annotations

import json

import numpy as np

from posetransfer.cli import main
from posetransfer.data import keypoints as K
from posetransfer.io import read_image


def test_writes_every_pair_with_standard_names_and_strips(capsys, tmp_path, checkpoint, synth_data):
    pairs = K.read_pairs(synth_data / "market-pairs-test.csv")
    out = tmp_path / "generated"
    code = main(["test", "--checkpoint", str(checkpoint), "--data", str(synth_data), "--out", str(out),
                 "--strip", "--batch-size", "4"])
    stdout = capsys.readouterr().out
    assert code == 0
    assert f"{len(pairs)} image(s) written" in stdout
    names = sorted(p.name for p in out.glob("*.png"))
    assert names == sorted(f"{a}___{b}.png" for a, b in pairs)
    a, b = pairs[0]
    generated = read_image(out / f"{a}___{b}.png")
    assert generated.shape == (128, 64, 3)
    strip = read_image(out / f"{a}___{b}_vis.jpg")
    assert strip.shape == (128, 5 * 64, 3)
    source = read_image(synth_data / "test" / a)
    target = read_image(synth_data / "test" / b)
    # panels 1, 3 and 5 are source, target and the generated image (JPEG: compare loosely)
    assert np.abs(strip[:, :64].astype(int) - source).mean() < 8
    assert np.abs(strip[:, 128:192].astype(int) - target).mean() < 8
    assert np.abs(strip[:, 256:].astype(int) - generated).mean() < 8
    summary = json.loads((out / "test_run.json").read_text())
    assert summary["written"] == len(pairs) and summary["arch"] == "patn"


def test_limit_and_bad_dataset(capsys, tmp_path, checkpoint, synth_data):
    out = tmp_path / "g"
    assert main(["test", "--checkpoint", str(checkpoint), "--data", str(synth_data), "--out", str(out),
                 "--limit", "3"]) == 0
    assert len(list(out.glob("*___*.png"))) == 3
    capsys.readouterr()
    missing = tmp_path / "nodata"
    assert main(["test", "--checkpoint", str(checkpoint), "--data", str(missing), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "nodata" in err


def test_flow_generator_writes_flow_figures(capsys, tmp_path, synth_data):
    """``--save-flows`` with a (tiny, untrained) flow generator: one flow figure per pair."""
    from posetransfer.models.registry import build_generator
    from posetransfer.modelfile import save_generator

    model = build_generator("flow", dataset="market", ngf=4, max_channels=16, flow_ngf=4, flow_max_channels=8)
    path = tmp_path / "flow.safetensors"
    save_generator(model, path)
    out = tmp_path / "g"
    assert main(["test", "--checkpoint", str(path), "--arch", "flow", "--data", str(synth_data),
                 "--out", str(out), "--limit", "2", "--save-flows"]) == 0
    figures = sorted((out / "flows").glob("*___*_flow.png"))
    assert len(figures) == 2
    assert read_image(figures[0]).shape[1] > 2 * 64          # several panels side by side
