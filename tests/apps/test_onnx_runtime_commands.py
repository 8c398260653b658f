"""``--runtime onnx`` on ``test`` and ``transfer``: ONNX Runtime on a cached export writes the images the
PyTorch model writes (within one grey level: the export is checked within 1e-4 on [-1, 1]), the results
files say which runtime made them, the export is made once per weights file and frame, and the flags
whose figures the export cannot give are refused in one line."""
from __future__ import annotations

import json

import numpy as np
import pytest

from posetransfer.cli import main
from posetransfer.data import keypoints as K
from posetransfer.io import read_image

from apps_support import write_pose_json

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("POSETRANSFER_CACHE_DIR", str(folder))
    return folder


def _close(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape
    assert int(np.abs(a.astype(int) - b.astype(int)).max()) <= 1


def test_test_command_onnx_runtime_writes_the_torch_images(tmp_path, checkpoint, synth_data, cache, capsys):
    outs = {}
    for runtime in ("torch", "onnx", "onnx"):
        out = tmp_path / f"{runtime}{len(outs)}"
        assert main(["test", "--checkpoint", str(checkpoint), "--data", str(synth_data), "--out", str(out),
                     "--limit", "3", "--batch-size", "2", "--runtime", runtime]) == 0
        outs[out.name] = json.loads((out / "test_run.json").read_text())["fast_path"]
    capsys.readouterr()
    names = sorted(p.name for p in (tmp_path / "torch0").glob("*___*.png"))
    assert len(names) == 3
    for name in names:
        _close(read_image(tmp_path / "onnx1" / name), read_image(tmp_path / "torch0" / name))
    assert outs["torch0"]["runtime"] == "torch"
    first, second = outs["onnx1"], outs["onnx2"]
    assert first["runtime"] == "onnx" and first["exported_now"] is True and second["exported_now"] is False
    assert first["onnx_file"] == second["onnx_file"] and first["onnx_file"].startswith(str(cache))
    assert len(list((cache / "onnx").glob("*.onnx"))) == 1 and not list((cache / "onnx").glob(".*.tmp"))


def test_transfer_onnx_runtime_agrees_and_is_recorded(tmp_path, checkpoint, synth_data, cache, capsys):
    annotations = K.read_annotations(synth_data / "market-annotation-test.csv")
    (name, kp), (target_name, _) = list(annotations.items())[:2]
    source_pose = write_pose_json(tmp_path / "src.json", kp, (128, 64))
    images = {}
    for runtime in ("torch", "onnx"):
        out = tmp_path / f"{runtime}.png"
        assert main(["transfer", "--checkpoint", str(checkpoint), "--source", str(synth_data / "test" / name),
                     "--source-pose", str(source_pose), "--target-csv", str(synth_data / "market-annotation-test.csv"),
                     "--target-name", target_name, "--out", str(out), "--runtime", runtime]) == 0
        images[runtime] = read_image(out)
        assert json.loads((tmp_path / f"{runtime}.json").read_text())["fast_path"]["runtime"] == runtime
    capsys.readouterr()
    _close(images["onnx"], images["torch"])


@pytest.mark.parametrize("command", ["test", "transfer"])
def test_figures_the_export_lacks_are_refused_in_one_line(command, tmp_path, checkpoint, synth_data, cache, capsys):
    if command == "test":
        argv = ["test", "--data", str(synth_data), "--out", str(tmp_path / "g"), "--save-flows"]
        flag = "--save-flows"
    else:
        argv = ["transfer", "--source", str(tmp_path / "x.png"), "--target", str(tmp_path / "p.json"),
                "--out", str(tmp_path / "o.png"), "--save-attention"]
        flag = "--save-attention"
    assert main([*argv, "--checkpoint", str(checkpoint), "--runtime", "onnx"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("error:") == 1 and flag in err and "--runtime torch" in err
    assert not (cache / "onnx").exists()      # refused before anything was exported
