"""``posetransfer eval`` from the command line: results.json, tables, and one-line errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

from posetransfer.cli import main
from posetransfer.data import keypoints as K
from posetransfer import viz
from posetransfer.io import read_image, save_image, write_json

POSE = np.array([[16, 32], [28, 32], [28, 22], [44, 18], [60, 16], [28, 42], [44, 46], [60, 48], [64, 26],
                 [86, 26], [110, 26], [64, 38], [86, 38], [110, 38], [13, 29], [13, 35], [15, 26], [15, 38]])


@pytest.fixture()
def folders(tmp_path):
    """A 3-image Market-layout test split (one identity → 6 pairs) and outputs named both ways."""
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    names = [f"0007_c{i}s1_00000{i}_01.jpg" for i in range(1, 4)]
    annotations = {}
    yy, xx = np.mgrid[0:128, 0:64]
    for i, name in enumerate(names):
        kp = POSE + rng.integers(-3, 4, POSE.shape)
        annotations[name] = kp
        background = np.stack([100 + 50 * np.sin(xx / (5 + i) + c) * np.cos(yy / 9) for c in range(3)], -1)
        save_image(root / "test" / name, viz.draw_skeleton(kp, canvas=background.astype(np.uint8), thickness=4))
    K.write_annotations(root / "market-annotation-test.csv", annotations)
    pairs = [(a, b) for a in names for b in names if a != b]
    K.write_pairs(root / "market-pairs-test.csv", pairs)
    write_json(root / "dataset.json", {"kind": "market", "size": [128, 64]})
    gen = tmp_path / "generated"
    for k, (a, b) in enumerate(pairs):
        target = read_image(root / "test" / b)
        fake = np.clip(target + rng.normal(0, 15, target.shape), 0, 255).astype(np.uint8)
        if k % 2:
            panels = [read_image(root / "test" / a), np.zeros_like(target), target, np.zeros_like(target), fake]
            save_image(gen / f"{a}___{b}_vis.jpg", np.concatenate(panels, axis=1))
        else:
            save_image(gen / f"{a}___{b}.png", fake)
    return root, gen


def test_eval_writes_results_and_prints_a_summary(folders, tmp_path, capsys):
    root, gen = folders
    out = tmp_path / "results.json"
    code = main(["eval", "--generated", str(gen), "--data", str(root), "--protocol", "patn", "--out", str(out),
                 "--metrics", "ssim,mask_ssim,l1,psnr", "--label", "tiny", "--no-progress"])
    assert code == 0
    results = json.loads(out.read_text())
    assert results["label"] == "tiny" and results["protocol"]["name"] == "patn"
    assert set(results["metrics"]) == {"ssim", "mask_ssim", "l1", "psnr"}
    assert 0 < results["metrics"]["ssim"] < results["metrics"]["mask_ssim"] < 1
    assert results["generated"]["single"] == 3 and results["generated"]["strip"] == 3
    assert results["generated"]["resize_policy"] == "reject" and results["dataset"]["resolution"] == [128, 64]
    printed = capsys.readouterr().out
    assert "protocol patn on market 128x64: 6 images" in printed and f"wrote {out}" in printed

    table = tmp_path / "table.md"
    assert main(["eval", "--table", str(out), "--out", str(table)]) == 0
    text = table.read_text()
    assert "| PATN | published [1] | 0.311 |" in text
    measured = [line for line in text.splitlines() if line.startswith("| ours: tiny")]
    assert len(measured) == 1 and "**measured** [2]" in measured[0]
    assert f"{results['metrics']['ssim']:.3f}" in measured[0]
    capsys.readouterr()
    assert main(["eval", "--table", str(out), "--layout", "structure-aware"]) == 0
    assert "| DIST / GFLA | published [1] | 21.539 |" in capsys.readouterr().out


def test_eval_errors_are_one_line_and_exit_2(folders, tmp_path, capsys):
    root, gen = folders
    cases = [
        (["--generated", str(tmp_path / "missing"), "--data", str(root)],
         f"{tmp_path / 'missing'}: generated image folder not found"),
        (["--generated", str(tmp_path), "--data", str(root)], "no generated image matches a test pair"),
        (["--generated", str(gen)], "eval needs --generated DIR and --data DIR"),
        (["--generated", str(gen), "--data", str(tmp_path / "nodata")], "nodata: dataset folder not found"),
        (["--generated", str(gen), "--data", str(root), "--metrics", "ssim,foo"], "unknown metric 'foo'"),
        (["--table", str(tmp_path / "nope.json")], "nope.json: results file not found"),
    ]
    for argv, message in cases:
        assert main(["eval", *argv, "--no-progress"] if "--table" not in argv else ["eval", *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], (argv, err)


def test_a_weights_file_named_by_the_user_must_load(folders, tmp_path, capsys):
    root, gen = folders
    bogus = tmp_path / "alexnet.pth"
    bogus.write_bytes(b"not a checkpoint")
    code = main(["eval", "--generated", str(gen), "--data", str(root), "--protocol", "fast", "--metrics", "lpips",
                 "--lpips-weights", str(bogus), "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {bogus}: cannot read weights")


def test_gfla_protocol_offline_names_its_fid_and_keeps_st_lpips_apart(folders, tmp_path, capsys, monkeypatch):
    root, gen = folders
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    for var in ("POSETRANSFER_IMAGENET_INCEPTION_WEIGHTS", "POSETRANSFER_ALEXNET_WEIGHTS"):
        monkeypatch.delenv(var, raising=False)
    out = tmp_path / "gfla.json"
    code = main(["eval", "--generated", str(gen), "--data", str(root), "--protocol", "gfla", "--out", str(out),
                 "--metrics", "fid,lpips,l1", "--reference", "dataset", "--drop-last-batch", "--no-progress"])
    assert code == 0
    results = json.loads(out.read_text())
    assert results["settings"]["fid"]["kind"] == "gfla" and results["metrics"]["fid"] is None
    assert results["metrics"]["lpips"] is None and results["metrics"]["st_lpips"] > 0
    assert results["settings"]["l1_range"] == "[0,1]" and results["settings"]["drop_last_batch"] is True
    assert results["generated"]["reference"] == "dataset"
    printed = capsys.readouterr().out
    assert "fid         n/a  (GFLA's FID needs torchvision's ImageNet Inception-v3" in printed
    assert "fid: gfla" in printed and "note: st_lpips used ST-LPIPS" in printed

    code = main(["eval", "--generated", str(gen), "--data", str(root), "--protocol", "gfla", "--metrics", "fid",
                 "--imagenet-inception-weights", str(tmp_path / "none.pth"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0] == f"error: {tmp_path / 'none.pth'}: torchvision Inception-v3 weights file not found"
    with pytest.raises(SystemExit) as exit_info:  # argparse refuses unknown choices itself
        main(["eval", "--generated", str(gen), "--data", str(root), "--fid-kind", "inception", "--no-progress"])
    assert exit_info.value.code == 2 and "invalid choice: 'inception'" in capsys.readouterr().err


def test_is_order_and_fid_kind_reach_the_results(folders, tmp_path, capsys):
    root, gen = folders
    out = tmp_path / "r.json"
    assert main(["eval", "--generated", str(gen), "--data", str(root), "--protocol", "patn", "--metrics", "ssim",
                 "--is-order", "listdir", "--fid-kind", "tf", "--out", str(out), "--no-progress"]) == 0
    results = json.loads(out.read_text())
    assert results["protocol"]["is_order"] == "listdir" and results["protocol"]["fid_kind"] == "tf"
    assert results["generated"]["reference"] == "strip"  # the default
    assert results["generated"]["reference_counts"] == {"strip_target_panel": 3, "dataset_test_image": 3}
