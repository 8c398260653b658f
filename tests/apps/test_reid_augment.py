"""``posetransfer reid-augment``: the papers' M_p^R / M_p^A protocol and the x2/x3 modes on a synthetic set."""
from __future__ import annotations

import csv
import re
from collections import Counter

import numpy as np
import pytest

from posetransfer.apps.reid_augment import select_reduced
from posetransfer.cli import main
from posetransfer.data import keypoints as K
from posetransfer.io import read_image

#: the Market-1501 file-name parser of open-reid / torchreid
MARKET_NAME = re.compile(r"([-\d]+)_c(\d)")


def _manifest(out):
    with open(out / "manifest.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _run(capsys, checkpoint, data, out, *extra):
    code = main(["reid-augment", "--checkpoint", str(checkpoint), "--data", str(data), "--out", str(out), *extra])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def test_replace_mode_keeps_identities_counts_and_poses(capsys, tmp_path, checkpoint, synth_data):
    train = K.read_annotations(synth_data / "market-annotation-train.csv")
    out = tmp_path / "reid"
    _run(capsys, checkpoint, synth_data, out, "--portion", "0.4", "--seed", "3")
    rows = _manifest(out)
    folder = out / "bounding_box_train"
    files = sorted(p.name for p in folder.iterdir())
    assert files == sorted(r["name"] for r in rows)
    assert len(files) == len(train)                        # M_p^A has the size of the full set
    real = [r for r in rows if r["kind"] == "real"]
    generated = [r for r in rows if r["kind"] == "generated"]
    assert len(real) == max(round(0.4 * len(train)), len({n.split("_")[0] for n in train}))
    ids_full = Counter(n.split("_")[0] for n in train)
    ids_out = Counter(MARKET_NAME.search(f).group(1) for f in files)
    assert ids_out == ids_full                             # same identities, same images per identity
    assert {r["identity"] for r in real} == set(ids_full)   # at least one real image per identity
    real_names = {r["name"] for r in real}
    for row in generated:
        pid, cam = MARKET_NAME.search(row["name"]).groups()
        assert 1 <= int(cam) <= 6 and pid == row["identity"]
        assert row["source"] in real_names                 # appearance from M_p^R ...
        assert row["source"].split("_")[0] == pid           # ... of the same identity
        assert row["target_pose"] not in real_names         # the pose of a dropped image
        assert row["name"] == row["target_pose"].replace(".jpg", "_gen.jpg")
        assert read_image(folder / row["name"]).shape == (128, 64, 3)
    # real images are copied byte for byte
    some = real[0]["name"]
    assert (folder / some).read_bytes() == (synth_data / "train" / some).read_bytes()


def test_seeded_and_overwrite_guard(capsys, tmp_path, checkpoint, synth_data):
    a, b = tmp_path / "a", tmp_path / "b"
    _run(capsys, checkpoint, synth_data, a, "--portion", "0.5", "--seed", "7")
    _run(capsys, checkpoint, synth_data, b, "--portion", "0.5", "--seed", "7")
    assert _manifest(a) == _manifest(b)
    code = main(["reid-augment", "--checkpoint", str(checkpoint), "--data", str(synth_data), "--out", str(a)])
    assert code == 2 and "--overwrite" in capsys.readouterr().err


@pytest.mark.parametrize("mode,per_image", [("x2", 1), ("x3", 2)])
def test_x2_x3_add_generated_images_per_real_image(capsys, tmp_path, checkpoint, synth_data, mode, per_image):
    train = K.read_annotations(synth_data / "market-annotation-train.csv")
    out = tmp_path / mode
    stdout = _run(capsys, checkpoint, synth_data, out, "--mode", mode)
    rows = _manifest(out)
    assert sum(r["kind"] == "real" for r in rows) == len(train)
    generated = [r for r in rows if r["kind"] == "generated"]
    assert len(generated) == per_image * len(train)
    assert f"{len(train)} real + {per_image * len(train)} generated" in stdout
    for row in generated:
        assert row["identity"] == row["source"].split("_")[0] == row["name"].split("_")[0]
        assert row["target_pose"] in train


def test_reduced_set_has_every_identity_even_for_tiny_portions():
    names = [f"{pid:04d}_c1s1_{k:06d}_01.jpg" for pid in range(20) for k in range(5)]
    ids = {n: n[:4] for n in names}
    for seed in range(5):
        chosen = select_reduced(names, ids, 0.1, seed)
        assert {ids[n] for n in chosen} == set(ids.values())
        assert len(chosen) == 20
    chosen = select_reduced(names, ids, 0.5, 0)
    assert len(chosen) == 50 and chosen == sorted(chosen, key=names.index)
    assert select_reduced(names, ids, 0.5, 0) != select_reduced(names, ids, 0.5, 1)
    assert np.isclose(len(select_reduced(names, ids, 1.0, 0)), len(names))
