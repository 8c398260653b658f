"""``posetransfer keypoints``: images / folders / OpenPose JSON → PATN annotation CSV."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from skimage import data

from posetransfer.cli import main
from posetransfer.data import keypoints as K

@pytest.fixture()
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(data.astronaut()).save(folder / "astronaut.jpg")
    Image.fromarray(np.full((128, 64, 3), 90, np.uint8)).save(folder / "wall.png")
    return folder


def test_every_image_gets_a_row_and_no_person_is_reported(photos, tmp_path, capsys):
    out = tmp_path / "ann.csv"
    openpose = tmp_path / "clip_000001_keypoints.json"
    openpose.write_text(json.dumps({"people": [{"pose_keypoints_2d": [v for k in range(25)
                                                                      for v in (10 + k, 20 + k, 0.9)]}]}))
    assert main(["keypoints", str(photos), str(openpose), "--out", str(out), "--no-progress"]) == 0
    captured = capsys.readouterr()
    rows = K.read_annotations(out)
    assert list(rows) == ["astronaut.jpg", "wall.png", "clip_000001.jpg"]
    assert (rows["wall.png"] == -1).all()
    assert tuple(rows["astronaut.jpg"][0]) != (-1, -1)            # the nose was found
    assert tuple(rows["clip_000001.jpg"][0]) == (20, 10)         # x, y of joint 0 → (y, x)
    assert "wrote 3 rows" in captured.out
    assert "wall.png: no person found" in captured.err


def test_skip_missing_leaves_out_images_without_a_person(photos, tmp_path, capsys):
    out = tmp_path / "ann.csv"
    assert main(["keypoints", str(photos / "wall.png"), str(photos / "astronaut.jpg"), "--out", str(out),
                 "--skip-missing", "--no-progress"]) == 0
    assert list(K.read_annotations(out)) == ["astronaut.jpg"]
    assert "left out" in capsys.readouterr().err


def test_bad_inputs_are_one_line_errors(photos, tmp_path, capsys):
    out = tmp_path / "ann.csv"
    assert main(["keypoints", str(tmp_path / "nope.jpg"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {tmp_path / 'nope.jpg'}: no such file or folder"
    broken = tmp_path / "broken_keypoints.json"
    broken.write_text("{oops")
    assert main(["keypoints", str(broken), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {broken}: not valid JSON") and "\n" not in err
    assert main(["keypoints", str(photos / "wall.png"), "--out", str(out), "--skip-missing",
                 "--no-progress"]) == 2
    assert "nothing to write" in capsys.readouterr().err
    assert not out.exists()
