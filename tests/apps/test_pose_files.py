"""Pose files round-trip through the CLI: what ``transfer`` and ``keypoints`` write, ``transfer --target``,
``--source-pose`` and ``animate --poses`` read (docs/pose-format.md)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from posetransfer.cli import main
from posetransfer.data import keypoints as K
from posetransfer.pose.openpose import FORMAT_NAME, FORMAT_VERSION


def _cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_transfer_sidecar_feeds_transfer_target_and_animate(capsys, tmp_path, checkpoint, synth_data):
    annotations = K.read_annotations(synth_data / "market-annotation-test.csv")
    (src, src_kp), (tgt, _) = list(annotations.items())[:2]
    source = synth_data / "test" / src
    # the source pose as a pose file written by `keypoints` (from our own JSON input: no estimator needed)
    given = tmp_path / f"{Path(src).stem}.json"   # named after the image: --source-pose FOLDER finds it
    given.write_text(json.dumps({"keypoints": src_kp.tolist(), "size": [128, 64]}))
    poses = tmp_path / "poses"
    code, out, err = _cli(capsys, "keypoints", given, "--out", poses)
    assert code == 0, err
    assert "wrote 1 pose file(s)" in out
    written = json.loads((poses / given.name).read_text())
    assert (written["format"], written["version"], written["size"]) == (FORMAT_NAME, FORMAT_VERSION, [128, 64])
    assert np.array_equal(written["keypoints"], src_kp)

    first = tmp_path / "first.png"
    code, out, err = _cli(capsys, "transfer", "--checkpoint", checkpoint, "--source", source,
                        "--source-pose", poses / given.name, "--target-csv", synth_data / "market-annotation-test.csv",
                        "--target-name", tgt, "--out", first)
    assert code == 0, err
    assert f"note: {checkpoint} was trained on synthetic people, so on real photos it gives blurry" in out
    assert "posetransfer convert --arch gfla" in out
    sidecar = json.loads((tmp_path / "first.json").read_text())
    assert (sidecar["format"], sidecar["version"], sidecar["size"]) == (FORMAT_NAME, FORMAT_VERSION, [128, 64])
    assert np.array_equal(sidecar["keypoints"], annotations[tgt])     # the generated person's pose
    assert np.array_equal(sidecar["source_keypoints"], src_kp) and "crop_box" in sidecar

    # the sidecar as the target of another transfer: the same pose, so the same image
    second = tmp_path / "second.png"
    code, _, err = _cli(capsys, "transfer", "--checkpoint", checkpoint, "--source", source,
                        "--source-pose", poses / given.name, "--target", tmp_path / "first.json", "--out", second)
    assert code == 0, err
    assert json.loads((tmp_path / "second.json").read_text())["keypoints"] == sidecar["keypoints"]
    from posetransfer.io import read_image

    assert np.array_equal(read_image(first), read_image(second))

    # the sidecars as animate's pose sequence, and a pose file of `keypoints` as its source pose
    drive = tmp_path / "drive"
    drive.mkdir()
    shutil.copy(tmp_path / "first.json", drive / "000.json")
    shutil.copy(poses / given.name, drive / "001.json")
    video = tmp_path / "anim.gif"
    code, out, err = _cli(capsys, "animate", "--checkpoint", checkpoint, "--source", source,
                          "--source-pose", poses, "--poses", drive, "--out", video)
    assert code == 0, err
    assert "2 frames" in out and video.is_file()


def test_keypoints_writes_one_pose_file_and_refuses_what_it_cannot_name(capsys, tmp_path):
    openpose = tmp_path / "clip_000007_keypoints.json"
    openpose.write_text(json.dumps({"people": [{"pose_keypoints_2d": [v for k in range(18)
                                                                      for v in (10 + k, 20 + k, 0.9)]}]}))
    out = tmp_path / "pose.json"
    code, out_text, err = _cli(capsys, "keypoints", openpose, "--out", out)
    assert code == 0, err
    doc = json.loads(out.read_text())
    assert doc["keypoints"][0] == [20, 10] and "size" not in doc     # OpenPose files carry no frame
    assert doc["image"] == "clip_000007.jpg"
    code, _, err = _cli(capsys, "keypoints", openpose, out, "--out", tmp_path / "two.json")
    assert code == 2 and "one .json file holds one pose, but 2 inputs" in err
    code, _, err = _cli(capsys, "keypoints", openpose, "--out", tmp_path / "ann.txt")
    assert code == 2 and err.strip() == f"error: {tmp_path / 'ann.txt'}: --out must be a .csv file, a .json file or a folder"
    assert not (tmp_path / "two.json").exists() and not (tmp_path / "ann.txt").exists()


def test_a_newer_or_foreign_pose_file_is_one_line(capsys, tmp_path, checkpoint, synth_data):
    name, kp = next(iter(K.read_annotations(synth_data / "market-annotation-test.csv").items()))
    for doc, message in (({"version": 2}, "pose file version 2 is newer than this posetransfer reads (up to 1)"),
                         ({"format": "other"}, "'format' is 'other', expected 'posetransfer-keypoints'")):
        target = tmp_path / "target.json"
        target.write_text(json.dumps({"keypoints": kp.tolist(), "size": [128, 64], **doc}))
        code, _, err = _cli(capsys, "transfer", "--checkpoint", checkpoint, "--source", synth_data / "test" / name,
                            "--source-pose", target, "--target", target, "--out", tmp_path / "o.png")
        assert code == 2
        assert err.strip().splitlines() == [f"error: {target}: {message}" + ("; upgrade posetransfer" if "newer" in message else "")]
        assert not (tmp_path / "o.png").exists()
