"""Reading OpenPose JSON (BODY_25, COCO-18) and our own keypoints JSON."""
from __future__ import annotations

import json

import numpy as np
import pytest

from posetransfer.data.keypoints import JOINT_INDEX as J
from posetransfer.errors import DataError, PoseError
from posetransfer.pose import read_keypoints_json, write_keypoints_json
from posetransfer.pose.openpose import BODY25_TO_COCO18


def openpose_doc(people: list[list[float]]) -> dict:
    return {"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d": p} for p in people]}


def body25(confidence: float = 0.9) -> list[float]:
    """BODY_25 joint k at x = 10 + k, y = 100 + 2k (so every joint is identifiable)."""
    values = []
    for k in range(25):
        values += [10.0 + k, 100.0 + 2 * k, confidence]
    return values


def test_body25_is_mapped_to_coco18_and_xy_becomes_yx(tmp_path):
    values = body25()
    values[4 * 3 + 2] = 0.05      # right wrist below the 0.1 threshold → missing
    values[12 * 3:12 * 3 + 3] = [0, 0, 0]  # left hip not found (OpenPose writes zeros)
    path = tmp_path / "frame_000001_keypoints.json"
    path.write_text(json.dumps(openpose_doc([values])))
    kp = read_keypoints_json(path)
    for joint, index in enumerate(BODY25_TO_COCO18):
        if joint in (J["r_wrist"], J["l_hip"]):
            assert tuple(kp[joint]) == (-1, -1)
        else:
            assert tuple(kp[joint]) == (100 + 2 * index, 10 + index)
    assert tuple(kp[J["r_hip"]]) == (100 + 2 * 9, 10 + 9)  # BODY_25 9 = RHip (8 is MidHip, dropped)
    assert tuple(kp[J["l_ear"]]) == (100 + 2 * 18, 10 + 18)
    lenient = read_keypoints_json(path, confidence=0.01)
    assert tuple(lenient[J["r_wrist"]]) == (108, 14)


def test_coco18_json_and_the_most_confident_person(tmp_path):
    weak = [v for k in range(18) for v in (5.0, 5.0, 0.2)]
    strong = [v for k in range(18) for v in (20.0 + k, 40.0 + k, 0.8)]
    path = tmp_path / "two.json"
    path.write_text(json.dumps(openpose_doc([weak, strong])))
    kp = read_keypoints_json(path)
    assert tuple(kp[0]) == (40, 20) and tuple(kp[17]) == (57, 37)
    cropped = read_keypoints_json(path, size=(50, 100))  # joints at y >= 50 fall outside
    assert tuple(cropped[9]) == (49, 29) and tuple(cropped[10]) == (-1, -1)


def test_our_format_round_trips(tmp_path):
    kp = np.full((18, 2), -1)
    kp[0] = (12, 30)
    kp[2] = (40, 20)
    path = tmp_path / "pose.json"
    write_keypoints_json(path, kp, size=(128, 64))
    doc = json.loads(path.read_text())
    assert doc["size"] == [128, 64] and doc["keypoints"][0] == [12, 30]
    np.testing.assert_array_equal(read_keypoints_json(path), kp)
    with pytest.raises(DataError, match="outside the 10x10 image"):
        write_keypoints_json(tmp_path / "x.json", kp, size=(10, 10))


@pytest.mark.parametrize("content, message", [
    ("{broken", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"people": [{"pose_keypoints_2d": [1, 2, 3]}]}', "3 pose values; expected 75"),
    ('{"people": [{"face": []}]}', "has no pose_keypoints_2d"),
    ('{"keypoints": [[1, 2]]}', "must be 18"),
    ('{"keypoints": ' + json.dumps([["a", "b"]] * 18) + "}", "must contain numbers"),
    ('{"animals": []}', "neither an OpenPose file"),
])
def test_malformed_files_are_one_line_errors_naming_the_file(tmp_path, content, message):
    path = tmp_path / "bad_keypoints.json"
    path.write_text(content)
    with pytest.raises(DataError, match=message) as info:
        read_keypoints_json(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def test_nobody_in_the_openpose_file_is_a_pose_error(tmp_path):
    path = tmp_path / "empty_keypoints.json"
    path.write_text(json.dumps({"version": 1.3, "people": []}))
    with pytest.raises(PoseError, match="empty_keypoints.json: no person"):
        read_keypoints_json(path)
    with pytest.raises(DataError, match="missing.json: keypoints file not found"):
        read_keypoints_json(tmp_path / "missing.json")
