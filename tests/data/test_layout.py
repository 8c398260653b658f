"""The PATN layout, read side: identities, pair building, finding a split's files (data/layout.py)."""
from __future__ import annotations

import numpy as np
import pytest

from posetransfer.data import keypoints as K
from posetransfer.data.layout import build_pairs, find_split_files, identity_of
from posetransfer.errors import DataError


def pose(h=128, w=64, missing=()):
    kp = np.stack([np.linspace(10, h - 10, 18), np.linspace(5, w - 5, 18)], axis=1).round().astype(np.int64)
    kp[list(missing)] = -1
    return kp


# ------------------------------------------------------------------------------------------------
# Identities and pairs (tool/create_pairs_dataset.py)
# ------------------------------------------------------------------------------------------------
def test_identity_of():
    assert identity_of("0002_c1s1_000451_03.jpg", "market") == "0002"
    assert identity_of("-1_c1s1_000451_03.jpg", "market") == "-1"
    assert identity_of("fashionWOMENTees_Tanksid0000783805_7additional.jpg", "fashion") == "id0000783805"
    assert identity_of("fashionMENDenimid0000008001_1front.jpg", "fashion") == "id0000008001"
    # two outfits of one clothing item are different "people" for pairing, as in the official grouping
    assert identity_of("fashionMENDenimid0000008002_1front.jpg", "fashion") != "id0000008001"
    assert identity_of("person7_pose3.jpg", "fashion") == "person7"          # fallback: split('_')[0]


def test_build_pairs_follows_the_official_rule():
    ok = pose()
    ann = {
        "0001_a.jpg": ok, "0001_b.jpg": ok, "0002_a.jpg": ok, "0001_c.jpg": ok,
        "0002_b.jpg": pose(missing=[K.JOINT_INDEX["l_hip"]]),       # no left hip → never paired
        "0002_c.jpg": pose(missing=[0, 4, 7, 14, 15, 16, 17]),     # head/wrists missing is fine
        "0003_a.jpg": ok,                                          # alone → no pair
        "-1_x.jpg": ok, "-1_y.jpg": ok, "0000_x.jpg": ok, "0000_y.jpg": ok,   # junk and distractors
    }
    pairs = build_pairs(ann, "market")
    assert pairs == [
        ("0001_a.jpg", "0001_b.jpg"), ("0001_a.jpg", "0001_c.jpg"), ("0001_b.jpg", "0001_a.jpg"),
        ("0001_b.jpg", "0001_c.jpg"), ("0001_c.jpg", "0001_a.jpg"), ("0001_c.jpg", "0001_b.jpg"),
        ("0002_a.jpg", "0002_c.jpg"), ("0002_c.jpg", "0002_a.jpg"),
    ]
    for shoulder in ("l_shoulder", "r_shoulder", "r_hip"):
        ann2 = dict(ann, **{"0002_c.jpg": pose(missing=[K.JOINT_INDEX[shoulder]])})
        assert ("0002_a.jpg", "0002_c.jpg") not in build_pairs(ann2, "market")


def test_build_pairs_test_sample_is_seeded_subset():
    ann = {f"{i // 5:04d}_{i}.jpg": pose() for i in range(5, 40)}          # 7 identities × 5 images
    everything = build_pairs(ann, "market")
    assert len(everything) == 7 * 5 * 4
    sample = build_pairs(ann, "market", test_sample=30, seed=0)
    assert len(sample) == 30 and len(set(sample)) == 30 and set(sample) <= set(everything)
    assert sample == sorted(sample, key=everything.index)                   # kept in the canonical order
    assert build_pairs(ann, "market", test_sample=30, seed=0) == sample
    assert build_pairs(ann, "market", test_sample=30, seed=1) != sample
    assert build_pairs(ann, "market", test_sample=10_000) == everything     # min(N, len)


def test_find_split_files_accepts_official_and_gfla_names(tmp_path):
    (tmp_path / "train").mkdir()
    for name in ("fasion-annotation-train.csv", "fasion-pairs-train.csv"):   # GFLA's names
        (tmp_path / name).write_text("x")
    images, ann, pairs = find_split_files(tmp_path, "train")
    assert (images, ann.name, pairs.name) == (tmp_path / "train", "fasion-annotation-train.csv", "fasion-pairs-train.csv")
    for name in ("fasion-resize-annotation-train.csv", "fasion-resize-pairs-train.csv"):
        (tmp_path / name).write_text("x")
    assert find_split_files(tmp_path, "train")[1].name == "fasion-resize-annotation-train.csv"
    with pytest.raises(DataError, match="unknown split 'val'"):
        find_split_files(tmp_path, "val")
