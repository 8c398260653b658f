"""Every inference command runs the fast path by default and ``--no-fast`` the plain model: same files.

The model is wide enough (ngf 32: 128-channel blocks; the Winograd width rule lowered for them) that the fast path really swaps its block
convolutions for Winograd ones (the suite runs with ``OMP_WAIT_POLICY=PASSIVE``, see tests/conftest.py),
folds its batch norms and packs the rest; images must agree to within one grey level (the models agree
within 1e-4 on [-1, 1], i.e. 0.013 grey levels, so only a rounding boundary can flip a value by one).
"""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from posetransfer.cli import main
from posetransfer.data import keypoints as K
from posetransfer.io import read_image

from apps_support import write_pose_json

WIDE = {"ngf": 32, "n_blocks": 1, "norm": "batch", "dropout": 0.0}


@pytest.fixture(scope="module")
def wide_checkpoint(tmp_path_factory):
    import torch

    from posetransfer.modelfile import save_generator
    from posetransfer.models.registry import build_generator

    torch.manual_seed(0)
    model = build_generator("patn", dataset="market", **WIDE).eval()
    gen = torch.Generator().manual_seed(2)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=gen) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    path = tmp_path_factory.mktemp("wide") / "patn_wide.safetensors"
    save_generator(model, path)
    return path


def _close(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape
    assert int(np.abs(a.astype(int) - b.astype(int)).max()) <= 1


def test_test_command_fast_and_plain_write_the_same_images(tmp_path, wide_checkpoint, synth_data, capsys,
                                                           monkeypatch):
    from posetransfer.models import winograd
    monkeypatch.setattr(winograd, "MIN_INTENSITY", 0)      # the 128-channel test blocks take Winograd too
    outs = {}
    for flags in ([], ["--no-fast"]):
        out = tmp_path / ("plain" if flags else "fast")
        assert main(["test", "--checkpoint", str(wide_checkpoint), "--data", str(synth_data), "--out", str(out),
                     "--limit", "5", "--batch-size", "2", *flags]) == 0
        outs["plain" if flags else "fast"] = out
    capsys.readouterr()
    names = sorted(p.name for p in outs["fast"].glob("*___*.png"))
    assert len(names) == 5 and names == sorted(p.name for p in outs["plain"].glob("*___*.png"))
    for name in names:
        _close(read_image(outs["fast"] / name), read_image(outs["plain"] / name))
    fast = json.loads((outs["fast"] / "test_run.json").read_text())["fast_path"]
    plain = json.loads((outs["plain"] / "test_run.json").read_text())["fast_path"]
    assert fast["fast"] is True and fast["winograd_convolutions"] >= 2 and fast["folded_batchnorms"] > 0
    assert plain["fast"] is False and "threads" in plain and "wait_policy" in plain


def test_rerunning_test_into_the_same_folder_replaces_the_files(tmp_path, checkpoint, synth_data, capsys):
    out = tmp_path / "g"
    for _ in range(2):
        assert main(["test", "--checkpoint", str(checkpoint), "--data", str(synth_data), "--out", str(out),
                     "--limit", "3"]) == 0
    assert "3 image(s) written" in capsys.readouterr().out
    assert len(list(out.glob("*___*.png"))) == 3 and not list(out.glob(".*.tmp"))


def test_transfer_and_animate_fast_and_plain_agree(tmp_path, wide_checkpoint, synth_data, capsys):
    annotations = K.read_annotations(synth_data / "market-annotation-test.csv")
    (name, kp), (target_name, _) = list(annotations.items())[:2]
    source_pose = write_pose_json(tmp_path / "src.json", kp, (128, 64))
    results = {}
    for flags in ([], ["--no-fast"]):
        key = "plain" if flags else "fast"
        out = tmp_path / f"{key}.png"
        assert main(["transfer", "--checkpoint", str(wide_checkpoint), "--source", str(synth_data / "test" / name),
                     "--source-pose", str(source_pose), "--target-csv", str(synth_data / "market-annotation-test.csv"),
                     "--target-name", target_name, "--out", str(out), *flags]) == 0
        poses = tmp_path / f"poses_{key}"
        poses.mkdir()
        for i in range(2):
            write_pose_json(poses / f"frame_{i}.json", kp + [2 * i, 0], (128, 64))
        video = tmp_path / f"{key}.gif"
        assert main(["animate", "--checkpoint", str(wide_checkpoint), "--source", str(synth_data / "test" / name),
                     "--source-pose", str(source_pose), "--poses", str(poses), "--out", str(video), *flags]) == 0
        results[key] = (read_image(out), video)
    capsys.readouterr()
    _close(results["fast"][0], results["plain"][0])
    import imageio.v3 as iio

    fast_frames, plain_frames = iio.imread(results["fast"][1]), iio.imread(results["plain"][1])
    assert fast_frames.shape == plain_frames.shape
    assert float(np.abs(fast_frames.astype(int) - plain_frames.astype(int)).mean()) < 1.0   # GIF palettes


def test_threads_flag_is_checked(tmp_path, checkpoint, synth_data, capsys):
    assert main(["test", "--checkpoint", str(checkpoint), "--data", str(synth_data), "--out", str(tmp_path / "g"),
                 "--threads", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "--threads" in err


def test_reid_augment_fast_and_plain_write_the_same_images(tmp_path, wide_checkpoint, synth_data, capsys):
    folders = {}
    for flags in ([], ["--no-fast"]):
        key = "plain" if flags else "fast"
        out = tmp_path / key
        assert main(["reid-augment", "--checkpoint", str(wide_checkpoint), "--data", str(synth_data),
                     "--out", str(out), "--mode", "x2", "--batch-size", "3", *flags]) == 0
        folders[key] = out
    capsys.readouterr()
    summaries = {k: json.loads((v / "reid_augment.json").read_text()) for k, v in folders.items()}
    assert summaries["fast"]["fast_path"]["fast"] is True and summaries["plain"]["fast_path"]["fast"] is False
    with open(folders["fast"] / "manifest.csv", newline="") as handle:
        generated = [row["name"] for row in csv.DictReader(handle) if row["kind"] == "generated"]
    assert len(generated) == summaries["fast"]["generated"] > 3      # more than one batch: the prefetch ran
    for name in generated:
        _close(read_image(folders["fast"] / "bounding_box_train" / name),
               read_image(folders["plain"] / "bounding_box_train" / name))


def test_bf16_precision_writes_close_images_and_says_so(tmp_path, wide_checkpoint, synth_data, capsys):
    from posetransfer.models.fast import cpu_bf16_native

    if not cpu_bf16_native():
        assert main(["test", "--checkpoint", str(wide_checkpoint), "--data", str(synth_data),
                     "--out", str(tmp_path / "x"), "--limit", "2", "--precision", "bf16"]) == 2
        assert "bf16 instructions" in capsys.readouterr().err
        pytest.skip("this CPU has no bf16 instructions: the refusal is what is tested")
    outs = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / precision
        assert main(["test", "--checkpoint", str(wide_checkpoint), "--data", str(synth_data), "--out", str(out),
                     "--limit", "4", "--batch-size", "2", "--precision", precision]) == 0
        outs[precision] = out
    capsys.readouterr()
    names = sorted(p.name for p in outs["fp32"].glob("*___*.png"))
    assert len(names) == 4
    diffs = [np.abs(read_image(outs["fp32"] / n).astype(int) - read_image(outs["bf16"] / n).astype(int))
             for n in names]
    assert max(int(d.max()) for d in diffs) <= 16 and float(np.mean([d.mean() for d in diffs])) <= 2.0
    assert any(int(d.max()) > 0 for d in diffs)
    run = json.loads((outs["bf16"] / "test_run.json").read_text())["fast_path"]
    assert run["precision"] == "bf16" and run["fast"] is True
    assert json.loads((outs["fp32"] / "test_run.json").read_text())["fast_path"]["precision"] == "fp32"


@pytest.mark.parametrize("flags, message", [(["--no-fast"], "drop --no-fast"),
                                            (["--runtime", "onnx"], "needs --runtime torch")])
def test_bf16_precision_refuses_paths_it_cannot_run(tmp_path, checkpoint, synth_data, capsys, flags, message):
    assert main(["test", "--checkpoint", str(checkpoint), "--data", str(synth_data), "--out", str(tmp_path / "g"),
                 "--precision", "bf16", *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and message in err and not (tmp_path / "g").exists()


def test_bf16_transfer_writes_its_attention_figure(tmp_path, wide_checkpoint, synth_data, capsys):
    from posetransfer.models.fast import cpu_bf16_native

    if not cpu_bf16_native():
        pytest.skip("this CPU has no bf16 instructions")
    annotations = K.read_annotations(synth_data / "market-annotation-test.csv")
    (name, kp), (target_name, _) = list(annotations.items())[:2]
    source_pose = write_pose_json(tmp_path / "src.json", kp, (128, 64))
    out = tmp_path / "bf16.png"
    assert main(["transfer", "--checkpoint", str(wide_checkpoint), "--source", str(synth_data / "test" / name),
                 "--source-pose", str(source_pose), "--target-csv", str(synth_data / "market-annotation-test.csv"),
                 "--target-name", target_name, "--out", str(out), "--precision", "bf16", "--save-attention"]) == 0
    capsys.readouterr()
    assert read_image(out).shape == (128, 64, 3) and (tmp_path / "bf16_attention.png").is_file()
