"""``posetransfer animate``: a JSON pose folder or a driving video → mp4 (and GIF) readable back."""
from __future__ import annotations

import numpy as np
import pytest

from posetransfer.cli import main
from posetransfer.data import keypoints as K
from posetransfer.io import read_image

from apps_support import TEMPLATE, write_pose_json


def _frames(path):
    import imageio.v2 as imageio

    reader = imageio.get_reader(str(path))
    try:
        return [np.asarray(f) for f in reader]
    finally:
        reader.close()


def test_json_folder_to_mp4_and_gif(capsys, tmp_path, checkpoint, synth_data):
    poses = tmp_path / "poses"
    poses.mkdir()
    for i in range(6):                        # arms going up, person walking right, in a 128x100 frame
        kp = TEMPLATE.copy()
        kp[[4, 7], 0] -= 4 * i
        kp[:, 1] += 6 * i
        write_pose_json(poses / f"frame_{i:03d}.json", kp, (128, 100))
    name, kp = next(iter(K.read_annotations(synth_data / "market-annotation-train.csv").items()))
    source_pose = write_pose_json(tmp_path / "src.json", kp, (128, 64))
    out = tmp_path / "anim.mp4"
    code = main(["animate", "--checkpoint", str(checkpoint), "--source", str(synth_data / "train" / name),
                 "--source-pose", str(source_pose), "--poses", str(poses), "--out", str(out), "--gif",
                 "--with-pose", "--fps", "5"])
    assert code == 0, capsys.readouterr().err
    assert "6 frames at 5 fps" in capsys.readouterr().out
    frames = _frames(out)
    assert len(frames) == 6
    assert frames[0].shape[:2] == (128, 128)           # [pose | result], 64 wide each
    # the drawn skeleton panel moves: the driving poses really change from frame to frame
    assert np.abs(frames[0][:, :64].astype(int) - frames[-1][:, :64]).mean() > 2
    from PIL import Image

    with Image.open(tmp_path / "anim.gif") as gif:
        assert gif.n_frames == 6


def test_driving_video_with_pose_estimation(capsys, tmp_path, checkpoint, astronaut_jpg):
    """A short video of a real photo panning; the pose estimator runs on every frame."""
    import imageio_ffmpeg

    photo = read_image(astronaut_jpg)
    video = tmp_path / "drive.mp4"
    writer = imageio_ffmpeg.write_frames(str(video), (384, 384), fps=5, macro_block_size=16,
                                         ffmpeg_log_level="error")
    writer.send(None)
    for i in range(3):
        writer.send(np.ascontiguousarray(photo[40:424, 20 * i:20 * i + 384]))
    writer.close()
    out = tmp_path / "out.mp4"
    code = main(["animate", "--checkpoint", str(checkpoint), "--source", str(astronaut_jpg), "--poses", str(video),
                 "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert len(_frames(out)) == 3


@pytest.mark.parametrize("content", [b"", b"definitely not a video file"])
def test_unreadable_video_is_one_line_error(capsys, tmp_path, checkpoint, astronaut_jpg, content):
    video = tmp_path / "broken.mp4"
    video.write_bytes(content)
    code = main(["animate", "--checkpoint", str(checkpoint), "--source", str(astronaut_jpg), "--poses", str(video),
                 "--out", str(tmp_path / "o.mp4")])
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "broken.mp4" in lines[0] and "video" in lines[0]
    assert "Traceback" not in err
    assert not (tmp_path / "o.mp4").exists()
