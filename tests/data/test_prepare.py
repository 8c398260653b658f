"""Dataset preparation: identities, pair building, DeepFashion / Market layout, annotation, the CLI."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from posetransfer.cli import main
from posetransfer.data import keypoints as K
from posetransfer.data.dataset import PairDataset
from posetransfer.data.prepare import (
    fit_to_frame, flatten_fashion_name, make_pairs, prepare_deepfashion, prepare_market,
)
from posetransfer.errors import DataError


def pose(h=128, w=64, missing=()):
    kp = np.stack([np.linspace(10, h - 10, 18), np.linspace(5, w - 5, 18)], axis=1).round().astype(np.int64)
    kp[list(missing)] = -1
    return kp


# ------------------------------------------------------------------------------------------------
# Pairs CSV from an annotation CSV (the identity and pair rules: tests/data/test_layout.py)
# ------------------------------------------------------------------------------------------------
def test_make_pairs_writes_csv_and_refuses_no_pairs(tmp_path):
    ann = tmp_path / "market-annotation-test.csv"
    K.write_annotations(ann, {"0001_a.jpg": pose(), "0001_b.jpg": pose(), "0002_a.jpg": pose()})
    out = tmp_path / "market-pairs-test.csv"
    assert make_pairs(ann, None, out) == 2
    assert K.read_pairs(out) == [("0001_a.jpg", "0001_b.jpg"), ("0001_b.jpg", "0001_a.jpg")]
    lonely = tmp_path / "market-annotation-train.csv"
    K.write_annotations(lonely, {"0001_a.jpg": pose(), "0002_a.jpg": pose()})
    with pytest.raises(DataError, match=r"market-annotation-train\.csv: no pairs"):
        make_pairs(lonely, "market", tmp_path / "p.csv")
    assert not (tmp_path / "p.csv").exists()


# ------------------------------------------------------------------------------------------------
# DeepFashion In-shop
# ------------------------------------------------------------------------------------------------
def test_flatten_fashion_name():
    assert flatten_fashion_name("img/WOMEN/Tees_Tanks/id_00007838/05_7_additional.jpg") == \
        "fashionWOMENTees_Tanksid0000783805_7additional.jpg"
    assert flatten_fashion_name("MEN/Denim/id_00000080/01_1_front.jpg") == "fashionMENDenimid0000008001_1front.jpg"
    assert flatten_fashion_name("img_highres/MEN/Denim/id_00000080/01_4_full.jpg") == "fashionMENDenimid0000008001_4full.jpg"
    with pytest.raises(DataError, match="expected <gender>/<category>/<id>/<file>"):
        flatten_fashion_name("img/WOMEN/01_1_front.jpg")


def column_image(h, w):
    """Each column holds its own index (mod 256) in the red channel: crops can be located exactly."""
    image = np.zeros((h, w, 3), np.uint8)
    image[..., 0] = np.arange(w, dtype=np.uint8)[None, :]
    image[..., 1] = 100
    return image


def test_fit_to_frame_is_the_official_crop_for_256_squares():
    square = column_image(256, 256)
    out = fit_to_frame(square, (256, 176))
    np.testing.assert_array_equal(out, square[:, 40:216])                 # img.crop((40, 0, 216, 256))
    tall = np.full((367, 250, 3), 7, np.uint8)                            # img_highres aspect (1101x750 / 3)
    framed = fit_to_frame(tall, (256, 176))
    assert framed.shape == (256, 176, 3)
    assert (framed[:, 0] == 255).all() and (framed[:, -1] == 255).all()  # padded white to the square frame
    assert (framed[:, 3:-3] == 7).all()


def make_inshop(src, folder="img", size=(256, 256)):
    files = {
        "WOMEN/Tees_Tanks/id_00007838/05_7_additional.jpg": "train",
        "WOMEN/Tees_Tanks/id_00007838/05_1_front.jpg": "train",
        "WOMEN/Tees_Tanks/id_00007838/05_2_side.jpg": "train",
        "MEN/Denim/id_00000080/01_1_front.jpg": "test",
        "MEN/Denim/id_00000080/01_2_side.jpg": "test",
        "MEN/Denim/id_00000080/02_1_front.jpg": None,                     # in no list
    }
    for rel in files:
        path = src / folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(column_image(*size)).save(path, quality=100)
    (src / folder / "README.txt").write_text("not an image")
    lists = {"train": [], "test": []}
    for rel, split in files.items():
        if split:
            lists[split].append(flatten_fashion_name(rel))
    lists["test"].append("fashionMENDenimid0000008003_1front.jpg")        # listed, not present
    for split, names in lists.items():
        (src / f"{split}.lst").write_text("\n".join(names) + "\n")
    return lists


def test_prepare_deepfashion_builds_a_loadable_dataset(tmp_path):
    src, out = tmp_path / "DeepFashion", tmp_path / "fashion"
    lists = make_inshop(src)
    raw = {}
    for split in ("train", "test"):
        ann = {}
        for k, name in enumerate(lists[split][:3]):
            kp = pose(256, 256)
            kp[:, 1] = np.clip(kp[:, 1], 45, 210)
            kp[0] = (30, 20 + k)                       # nose left of the crop → becomes missing
            ann[name] = kp
        if split == "test":
            ann.pop("fashionMENDenimid0000008003_1front.jpg")
        raw[split] = src / f"raw-{split}.csv"
        K.write_annotations(raw[split], ann)
    report = prepare_deepfashion(src, out, raw_annotations=raw)
    assert report.written == {"train": 3, "test": 2}
    assert report.missing == {"test": ["fashionMENDenimid0000008003_1front.jpg"]} and report.unlisted == 1
    name = "fashionWOMENTees_Tanksid0000783805_7additional.jpg"
    crop = np.asarray(Image.open(out / "train" / name).convert("RGB"))
    assert crop.shape == (256, 176, 3)
    assert abs(int(crop[128, 0, 0]) - 40) <= 3 and abs(int(crop[128, 175, 0]) - 215) <= 3   # columns 40..215
    converted = K.read_annotations(out / "fasion-resize-annotation-train.csv", size=(256, 176))
    source = K.read_annotations(raw["train"])
    assert tuple(converted[name][0]) == (-1, -1)
    np.testing.assert_array_equal(converted[name][1:, 1], source[name][1:, 1] - 40)
    np.testing.assert_array_equal(converted[name][1:, 0], source[name][1:, 0])
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["kind"] == "fashion" and meta["size"] == [256, 176]
    ds = PairDataset(out, "train")
    assert ds.size == (256, 176) and len(ds) == 6                          # 3 images of one outfit
    assert len(PairDataset(out, "test")) == 2
    again = prepare_deepfashion(src, out, raw_annotations=raw)             # resumable: keeps what exists
    assert again.written == {"train": 0, "test": 0} and again.existing == {"train": 3, "test": 2}


def test_prepare_deepfashion_from_img_highres_and_errors(tmp_path):
    src = tmp_path / "df"
    make_inshop(src, folder="img_highres", size=(367, 250))
    report = prepare_deepfashion(src, tmp_path / "out")
    assert report.written == {"train": 3, "test": 2}
    out_image = Image.open(tmp_path / "out" / "test" / "fashionMENDenimid0000008001_1front.jpg")
    assert out_image.size == (176, 256)
    assert not (tmp_path / "out" / "fasion-resize-annotation-train.csv").exists()   # no CSVs given
    with pytest.raises(DataError, match=r"nothing: DeepFashion folder not found"):
        prepare_deepfashion(tmp_path / "nothing", tmp_path / "o")
    (src / "train.lst").write_text("img/WOMEN/Tees_Tanks/id_00007838/05_7_additional.jpg\n")
    with pytest.raises(DataError, match=r"train\.lst: names must be flat file names"):
        prepare_deepfashion(src, tmp_path / "o")
    (src / "train.lst").unlink()
    with pytest.raises(DataError, match=r"train\.lst: image list not found"):
        prepare_deepfashion(src, tmp_path / "o")


# ------------------------------------------------------------------------------------------------
# Market-1501
# ------------------------------------------------------------------------------------------------
def make_market(src):
    names = {"bounding_box_train": ["0002_c1s1_000451_03.jpg", "0002_c2s1_000301_01.jpg", "0007_c1s1_000001_00.jpg"],
             "bounding_box_test": ["0001_c1s1_001051_00.jpg", "0001_c3s1_000551_00.jpg", "0000_c1s1_000001_00.jpg",
                                   "-1_c1s1_000401_03.jpg"]}
    for folder, files in names.items():
        (src / folder).mkdir(parents=True)
        for name in files:
            Image.new("RGB", (64, 128), (90, 20, 200)).save(src / folder / name, quality=95)
        (src / folder / "Thumbs.db").write_bytes(b"\x00")
    return names


def test_prepare_market_copies_validates_and_builds_pairs(tmp_path):
    src, out = tmp_path / "Market-1501-v15.09.15", tmp_path / "market"
    names = make_market(src)
    K.write_annotations(src / "market-annotation-train.csv", {n: pose() for n in names["bounding_box_train"]})
    K.write_annotations(src / "market-annotation-test.csv", {n: pose() for n in names["bounding_box_test"]})
    report = prepare_market(src, out, test_sample=1)
    assert report.written == {"train": 3, "test": 4}
    assert sorted(p.name for p in (out / "test").iterdir()) == sorted(names["bounding_box_test"])
    assert (out / "market-annotation-train.csv").read_bytes() == (src / "market-annotation-train.csv").read_bytes()
    assert K.read_pairs(out / "market-pairs-train.csv") == [("0002_c1s1_000451_03.jpg", "0002_c2s1_000301_01.jpg"),
                                                             ("0002_c2s1_000301_01.jpg", "0002_c1s1_000451_03.jpg")]
    assert len(K.read_pairs(out / "market-pairs-test.csv")) == 1             # sampled, junk/distractors excluded
    assert len(PairDataset(out, "train")) == 2 and PairDataset(out, "test").size == (128, 64)


def test_prepare_market_refuses_wrong_sizes(tmp_path):
    src = tmp_path / "m"
    make_market(src)
    wrong = src / "bounding_box_test" / "0001_c1s1_001051_00.jpg"
    Image.new("RGB", (64, 64)).save(wrong)
    with pytest.raises(DataError) as err:
        prepare_market(src, tmp_path / "out")
    assert str(err.value) == f"{wrong}: image is 64x64 (HxW) but Market-1501 images are 128x64"
    with pytest.raises(DataError, match=r"bounding_box_train: Market-1501 folder not found"):
        prepare_market(tmp_path, tmp_path / "out2")


# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------
def test_cli_prepare_pairs_and_market(tmp_path, capsys):
    ann = tmp_path / "market-annotation-train.csv"
    K.write_annotations(ann, {"0001_a.jpg": pose(), "0001_b.jpg": pose()})
    assert main(["prepare", "pairs", str(ann), str(tmp_path / "p.csv")]) == 0
    assert "2 pairs" in capsys.readouterr().out
    src = tmp_path / "market-src"
    make_market(src)
    assert main(["prepare", "market", str(src), str(tmp_path / "m")]) == 0
    assert "train: 3 written" in capsys.readouterr().out


@pytest.mark.parametrize("argv, names", [
    (["prepare", "pairs", "{tmp}/missing.csv", "{tmp}/p.csv", "--kind", "market"], "missing.csv"),
    (["prepare", "market", "{tmp}", "{tmp}/out"], "bounding_box_train"),
    (["prepare", "deepfashion", "{tmp}", "{tmp}/out"], "no img/ or img_highres/"),
])
def test_cli_prepare_errors_are_one_line_exit_2(tmp_path, capsys, argv, names):
    argv = [a.format(tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and names in err


def test_cli_entry_point_exit_code(tmp_path):
    bad = tmp_path / "market-annotation-train.csv"
    bad.write_text("name:keypoints_y:keypoints_x\na.jpg: [1]: [2]\n")
    proc = subprocess.run([sys.executable, "-m", "posetransfer", "prepare", "pairs", str(bad), str(tmp_path / "p.csv")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {bad}:2 (a.jpg): keypoints_y has 1 values, 18 expected"
