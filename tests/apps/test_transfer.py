"""``posetransfer transfer`` end to end on real files: a real photo, synthetic people, batch mode, bad inputs."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from posetransfer.cli import main
from posetransfer.data import keypoints as K
from posetransfer.io import read_image, save_image

from apps_support import write_pose_json


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_line_error(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def _target_args(synth_data: Path) -> list[str]:
    csv = synth_data / "market-annotation-test.csv"
    name = next(iter(K.read_annotations(csv)))
    return ["--target-csv", csv, "--target-name", name]


def test_real_photo_with_estimated_pose(capsys, tmp_path, checkpoint, synth_data, astronaut_jpg):
    """skimage's astronaut: pose estimated, cropped, generated, mapped back, pasted back, attention figure."""
    out = tmp_path / "result.png"
    code, stdout, err = run_cli(capsys, "transfer", "--checkpoint", checkpoint, "--source", astronaut_jpg,
                                *_target_args(synth_data), "--out", out, "--save-attention", "--paste-back")
    assert code == 0, err
    assert "1 image(s) transferred" in stdout
    photo = read_image(astronaut_jpg)
    pasted = read_image(out)
    assert pasted.shape == photo.shape
    model_out = read_image(tmp_path / "result_model.png")
    assert model_out.shape == (128, 64, 3)
    meta = json.loads((tmp_path / "result.json").read_text())
    box = meta["crop_box"]
    assert abs(box["height"] / box["width"] - 2.0) < 0.05        # the Market aspect ratio
    inside = np.zeros(photo.shape[:2], dtype=bool)
    inside[max(0, box["top"]):box["top"] + box["height"], max(0, box["left"]):box["left"] + box["width"]] = True
    assert (pasted[~inside] == photo[~inside]).all()             # only the crop box changed
    assert np.abs(pasted[inside].astype(int) - photo[inside]).mean() > 1
    figure = read_image(tmp_path / "result_attention.png")
    n_blocks = 2
    assert figure.shape[1] >= (n_blocks + 3) * 128                # source, pose, 2 masks, output at ×2


def test_synthetic_source_with_given_pose_and_openpose_target(capsys, tmp_path, checkpoint, synth_data):
    """No pose estimator involved: source keypoints from JSON, target from an OpenPose BODY_25 file."""
    annotations = K.read_annotations(synth_data / "market-annotation-train.csv")
    name, kp = next(iter(annotations.items()))
    small = read_image(synth_data / "train" / name)
    photo = np.full((400, 300, 3), 120, dtype=np.uint8)          # the person in a bigger photo, scaled ×2
    from PIL import Image

    photo[60:316, 80:208] = np.asarray(Image.fromarray(small).resize((128, 256)))
    source = tmp_path / "person.jpg"
    save_image(source, photo)
    big_kp = np.where(kp >= 0, kp * 2 + np.array([60, 80]), -1)
    source_pose = write_pose_json(tmp_path / "person.json", big_kp, photo.shape[:2])
    other = list(annotations.values())[-1]
    people = [{"pose_keypoints_2d": []}]
    body25 = np.zeros((25, 3))
    coco_to_body25 = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)
    for j, b in enumerate(coco_to_body25):
        if other[j, 0] >= 0:
            body25[b] = (other[j, 1] * 3 + 40, other[j, 0] * 3 + 20, 0.9)
    people[0]["pose_keypoints_2d"] = body25.ravel().tolist()
    target = tmp_path / "target_openpose.json"
    target.write_text(json.dumps({"version": 1.3, "people": people}))
    out = tmp_path / "out.jpg"
    code, stdout, err = run_cli(capsys, "transfer", "--checkpoint", checkpoint, "--source", source,
                                "--source-pose", source_pose, "--target", target, "--out", out)
    assert code == 0, err
    meta = json.loads((tmp_path / "out.json").read_text())
    assert meta["crop_box"]["height"] >= 256 * 0.9 and meta["crop_box"]["top"] >= 0
    result = read_image(out)
    assert result.shape[:2] == (meta["crop_box"]["height"], meta["crop_box"]["width"])
    target_model = np.array(meta["keypoints"])
    assert (target_model >= 0).all(axis=1).sum() >= 14   # the target survived the crop into the frame


def test_target_pose_from_a_photo(capsys, tmp_path, checkpoint, synth_data, astronaut_jpg):
    """``--target photo.jpg``: the target pose is estimated from a real photo, then framed like a person crop."""
    name, kp = next(iter(K.read_annotations(synth_data / "market-annotation-train.csv").items()))
    pose = write_pose_json(tmp_path / "pose.json", kp, (128, 64))
    code, _, err = run_cli(capsys, "transfer", "--checkpoint", checkpoint, "--source", synth_data / "train" / name,
                           "--source-pose", pose, "--target", astronaut_jpg, "--out", tmp_path / "o.png")
    assert code == 0, err
    target = np.array(json.loads((tmp_path / "o.json").read_text())["keypoints"])
    present = target[(target >= 0).all(axis=1)]
    assert len(present) >= 5 and present[:, 0].max() < 128 and present[:, 1].max() < 64


def test_batch_folder_processes_good_files_and_reports_bad_ones(capsys, tmp_path, checkpoint, synth_data):
    folder = tmp_path / "in"
    folder.mkdir()
    poses = tmp_path / "poses"
    poses.mkdir()
    annotations = K.read_annotations(synth_data / "market-annotation-train.csv")
    for name, kp in list(annotations.items())[:2]:
        stem = Path(name).stem
        (folder / name).write_bytes((synth_data / "train" / name).read_bytes())
        write_pose_json(poses / f"{stem}.json", kp, (128, 64))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    write_pose_json(poses / "broken.json", kp, (128, 64))
    save_image(folder / "nopose.png", np.zeros((128, 64, 3), dtype=np.uint8))  # no keypoints file
    out = tmp_path / "out"
    code, stdout, err = run_cli(capsys, "transfer", "--checkpoint", checkpoint, "--source", folder,
                                "--source-pose", poses, *_target_args(synth_data), "--out", out)
    assert code == 0
    assert "2 image(s) transferred, 2 failed" in stdout
    assert "broken.jpg" in err and "nopose" in err
    assert sorted(p.name for p in out.glob("*_model.png")) == sorted(
        f"{Path(n).stem}_model.png" for n in list(annotations)[:2])
    # the same folder with only bad files → exit 2 and the summary
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.jpg").write_bytes(b"nope")
    code, stdout, err = run_cli(capsys, "transfer", "--checkpoint", checkpoint, "--source", bad,
                                "--source-pose", poses, *_target_args(synth_data), "--out", tmp_path / "o2")
    assert code == 2 and "0 image(s) transferred, 1 failed" in stdout and "a.jpg" in err


def test_blank_image_no_person_found(capsys, tmp_path, checkpoint, synth_data):
    blank = tmp_path / "blank.jpg"
    save_image(blank, np.full((240, 160, 3), 255, dtype=np.uint8))
    code, _, err = run_cli(capsys, "transfer", "--checkpoint", checkpoint, "--source", blank,
                           *_target_args(synth_data), "--out", tmp_path / "o.png")
    assert code == 2
    line = _one_line_error(err)
    assert "blank.jpg" in line and "no person" in line
    assert "Traceback" not in err


def test_malformed_keypoints_json(capsys, tmp_path, checkpoint, synth_data):
    name = next(iter(K.read_annotations(synth_data / "market-annotation-train.csv")))
    bad = tmp_path / "target.json"
    bad.write_text('{"keypoints": [[1, 2], [3]]')
    code, _, err = run_cli(capsys, "transfer", "--checkpoint", checkpoint, "--source",
                           synth_data / "train" / name, "--target", bad, "--out", tmp_path / "o.png")
    assert code == 2 and "target.json" in _one_line_error(err)
    bad.write_text('{"keypoints": [[1, 2], [3, 4]]}')   # valid JSON, wrong shape
    code, _, err = run_cli(capsys, "transfer", "--checkpoint", checkpoint, "--source",
                           synth_data / "train" / name, "--target", bad, "--out", tmp_path / "o.png")
    assert code == 2 and "target.json" in _one_line_error(err)


def test_checkpoint_of_another_architecture(capsys, tmp_path, other_arch_checkpoint, synth_data):
    name = next(iter(K.read_annotations(synth_data / "market-annotation-train.csv")))
    code, _, err = run_cli(capsys, "transfer", "--checkpoint", other_arch_checkpoint, "--arch", "patn",
                           "--source", synth_data / "train" / name, *_target_args(synth_data),
                           "--out", tmp_path / "o.png")
    assert code == 2
    line = _one_line_error(err)
    assert str(other_arch_checkpoint) in line and "resnet" in line


def test_missing_target_name_and_unknown_row(capsys, tmp_path, checkpoint, synth_data):
    name = next(iter(K.read_annotations(synth_data / "market-annotation-train.csv")))
    csv = synth_data / "market-annotation-test.csv"
    code, _, err = run_cli(capsys, "transfer", "--checkpoint", checkpoint, "--source", synth_data / "train" / name,
                           "--target-csv", csv, "--target-name", "nobody.jpg", "--out", tmp_path / "o.png")
    assert code == 2 and "nobody.jpg" in _one_line_error(err)


@pytest.mark.parametrize("crop", ["auto", "none"])
def test_dataset_image_is_used_as_is(capsys, tmp_path, checkpoint, synth_data, crop):
    """A photo that already has the model's size is not cropped (auto) — the output keeps that frame."""
    name = next(iter(K.read_annotations(synth_data / "market-annotation-train.csv")))
    pose = tmp_path / "pose.json"
    write_pose_json(pose, K.read_annotations(synth_data / "market-annotation-train.csv")[name], (128, 64))
    out = tmp_path / "o.png"
    code, _, err = run_cli(capsys, "transfer", "--checkpoint", checkpoint, "--source", synth_data / "train" / name,
                           "--source-pose", pose, *_target_args(synth_data), "--out", out, "--crop", crop)
    assert code == 0, err
    assert json.loads((tmp_path / "o.json").read_text())["crop_box"] == {"top": 0, "left": 0, "height": 128,
                                                                         "width": 64}
    assert (read_image(out) == read_image(tmp_path / "o_model.png")).all()
