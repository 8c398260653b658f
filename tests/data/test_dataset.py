"""PairDataset on tiny hand-made PATN-format datasets written by the tests themselves."""
from __future__ import annotations

import json
import logging
import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from posetransfer.data import keypoints as K
from posetransfer import viz
from posetransfer.data.dataset import PairDataset, affine_matrix, warp_image
from posetransfer.data.layout import build_pairs
from posetransfer.errors import ConfigError, DataError
from posetransfer.io import tensor_range_to_image


def skeleton(h: int, w: int, jitter: int = 0, seed: int = 0) -> np.ndarray:
    rel = [(0.12, 0.50), (0.22, 0.50), (0.23, 0.30), (0.38, 0.25), (0.52, 0.22), (0.23, 0.70), (0.38, 0.75),
           (0.52, 0.78), (0.52, 0.38), (0.70, 0.37), (0.88, 0.36), (0.52, 0.62), (0.70, 0.63), (0.88, 0.64),
           (0.10, 0.45), (0.10, 0.55), (0.11, 0.40), (0.11, 0.60)]
    kp = np.rint(np.array(rel) * np.array([h, w])).astype(np.int64)
    if jitter:
        kp += np.random.default_rng(seed).integers(-jitter, jitter + 1, size=kp.shape)
    return np.clip(kp, 0, [h - 1, w - 1])


def make_dataset(root, kind="market", size=(128, 64), identities=2, per_identity=3, split="train",
                 dataset_json=True, image_format="JPEG"):
    """Write <root>/<split>/*.jpg + annotation + pairs CSVs (+ dataset.json); returns the annotations."""
    h, w = size
    prefix = "market" if kind == "market" else "fasion-resize"
    (root / split).mkdir(parents=True, exist_ok=True)
    annotations = {}
    for i in range(identities):
        for j in range(per_identity):
            if kind == "market":
                name = f"{i + 1:04d}_c{j + 1}s1_{j:06d}_00.jpg"
            else:
                name = f"fashionWOMENDressesid{i + 1:08d}01_{j + 1}front.jpg"
            kp = skeleton(h, w, jitter=3, seed=i * 10 + j)
            colour = np.array([60 + 60 * i, 90 + 40 * j, 150], np.uint8)
            image = np.broadcast_to(colour, (h, w, 3)).copy()
            image = viz.draw_skeleton(kp, canvas=image)
            Image.fromarray(image).save(root / split / name, format=image_format, quality=95)
            annotations[name] = kp
    K.write_annotations(root / f"{prefix}-annotation-{split}.csv", annotations)
    K.write_pairs(root / f"{prefix}-pairs-{split}.csv", build_pairs(annotations, kind))
    if dataset_json:
        (root / "dataset.json").write_text(json.dumps({"kind": kind, "size": list(size), "synthetic": True}))
    return annotations


@pytest.fixture()
def market(tmp_path):
    root = tmp_path / "market"
    ann = make_dataset(root)
    return root, ann


# ------------------------------------------------------------------------------------------------
# Items
# ------------------------------------------------------------------------------------------------
def test_items_hold_images_heatmaps_and_keypoints(market):
    root, ann = market
    ds = PairDataset(root, "train")
    assert ds.kind == "market" and ds.size == (128, 64)
    assert len(ds) == 2 * 3 * 2                                     # 2 identities × 3·2 ordered pairs
    item = ds[0]
    assert item["source_name"] == "0001_c1s1_000000_00.jpg" and item["target_name"] == "0001_c2s1_000001_00.jpg"
    for role in ("source", "target"):
        img, maps, kp = item[f"{role}_image"], item[f"{role}_heatmaps"], item[f"{role}_keypoints"]
        assert img.shape == (3, 128, 64) and img.dtype == torch.float32
        assert -1.0 <= img.min() and img.max() <= 1.0
        assert maps.shape == (18, 128, 64) and maps.dtype == torch.float32
        assert kp.shape == (18, 2) and kp.dtype == torch.int64
        np.testing.assert_array_equal(kp.numpy(), ann[item[f"{role}_name"]])
        np.testing.assert_array_equal(K.heatmap_argmax(maps.numpy()), kp.numpy())
        on_disk = np.asarray(Image.open(root / "train" / item[f"{role}_name"]).convert("RGB"))
        np.testing.assert_array_equal(tensor_range_to_image(img.numpy()), on_disk)


def test_size_and_kind_come_from_dataset_json_or_the_kind(tmp_path):
    root = tmp_path / "fashion"
    make_dataset(root, kind="fashion", size=(256, 176), identities=1, per_identity=2, dataset_json=False)
    ds = PairDataset(root, "train", heatmap_mode="onehot")
    assert ds.kind == "fashion" and ds.size == (256, 176) and len(ds) == 2
    maps = ds[1]["source_heatmaps"]
    assert (maps.reshape(18, -1).sum(dim=1) == 1).all()              # legacy one-hot DeepFashion maps
    small = tmp_path / "small"
    make_dataset(small, size=(64, 32), identities=1, per_identity=2)   # dataset.json says 64x32
    assert PairDataset(small).size == (64, 32)


def test_pairs_argument_and_pickling(market):
    root, ann = market
    names = list(ann)
    ds = PairDataset(root, pairs=[(names[0], names[4])])
    assert len(ds) == 1 and ds[0]["target_name"] == names[4]
    with pytest.raises(DataError, match=r"pairs\[0\]: image 'nope\.jpg' is not in .*market-annotation-train\.csv"):
        PairDataset(root, pairs=[(names[0], "nope.jpg")])
    clone = pickle.loads(pickle.dumps(PairDataset(root, augment=True)))
    assert len(clone) == 12 and torch.equal(clone[3]["source_image"], PairDataset(root, augment=True)[3]["source_image"])


# ------------------------------------------------------------------------------------------------
# Augmentation
# ------------------------------------------------------------------------------------------------
def test_flip_applies_to_the_whole_pair(market):
    root, ann = market
    plain = PairDataset(root)[2]
    flipped = PairDataset(root, augment=["flip"], flip_prob=1.0)[2]
    for role in ("source", "target"):
        np.testing.assert_array_equal(flipped[f"{role}_image"].numpy(), plain[f"{role}_image"].numpy()[:, :, ::-1])
        np.testing.assert_array_equal(flipped[f"{role}_keypoints"].numpy(),
                                      K.flip_keypoints(plain[f"{role}_keypoints"].numpy(), 64))
        np.testing.assert_allclose(flipped[f"{role}_heatmaps"].numpy(),
                                   plain[f"{role}_heatmaps"].numpy()[list(K.FLIP_PERMUTATION)][:, :, ::-1], atol=1e-6)


def test_augmentation_is_deterministic_per_epoch_and_index(market):
    root, _ = market
    ds = PairDataset(root, augment=True, seed=3)
    first = [ds[i]["source_image"] for i in range(4)]
    again = [ds[i]["source_image"] for i in range(4)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    ds.set_epoch(1)
    later = [ds[i]["source_image"] for i in range(4)]
    assert not all(torch.equal(a, b) for a, b in zip(first, later))
    other_seed = PairDataset(root, augment=True, seed=4)
    assert not all(torch.equal(a, other_seed[i]["source_image"]) for i, a in enumerate(first))


def test_affine_moves_image_and_keypoints_together():
    """A bright dot drawn at a joint must end up at the transformed joint (within 1 px)."""
    size = (128, 64)
    rng = np.random.default_rng(0)
    for _ in range(20):
        y, x = int(rng.integers(20, 108)), int(rng.integers(15, 49))
        image = np.full((*size, 3), 30, np.uint8)
        image[y - 1:y + 2, x - 1:x + 2] = 255
        kp = np.full((18, 2), -1)
        kp[0] = (y, x)
        m = affine_matrix(size, rng.uniform(-5, 5), tuple(rng.uniform(-5, 5, 2)), rng.uniform(0.95, 1.05))
        warped = warp_image(image, m)
        moved = K.affine_keypoints(kp, m, size)[0]
        peak = np.unravel_index(warped[..., 0].astype(int).argmax(), size)
        assert abs(peak[0] - moved[0]) <= 1 and abs(peak[1] - moved[1]) <= 1
    # the fill colour is GFLA's grey where the image moved away
    shifted = warp_image(np.zeros((*size, 3), np.uint8), affine_matrix(size, 0.0, (5.0, 0.0), 1.0))
    assert (shifted[:, :4] == 128).all() and (shifted[:, 6:] == 0).all()


def test_dataloader_with_two_workers_matches_direct_access(market):
    root, _ = market
    ds = PairDataset(root, augment=True, seed=1)
    ds.set_epoch(2)
    loader = DataLoader(ds, batch_size=4, shuffle=False, num_workers=2)
    batches = list(loader)
    assert sum(b["source_image"].shape[0] for b in batches) == len(ds)
    assert batches[0]["source_heatmaps"].shape == (4, 18, 128, 64)
    for i in (0, 5, 11):
        direct = ds[i]
        b, k = divmod(i, 4)
        assert torch.equal(batches[b]["source_image"][k], direct["source_image"])
        assert torch.equal(batches[b]["target_keypoints"][k], direct["target_keypoints"])
        assert batches[b]["source_name"][k] == direct["source_name"]


# ------------------------------------------------------------------------------------------------
# Bad inputs: one-line DataError naming the file
# ------------------------------------------------------------------------------------------------
def one_line(exc_info) -> str:
    message = str(exc_info.value)
    assert "\n" not in message
    return message


def test_missing_image_referenced_in_the_pairs_csv(market):
    root, _ = market
    (root / "train" / "0002_c3s1_000002_00.jpg").unlink()
    with pytest.raises(DataError) as err:
        PairDataset(root)
    message = one_line(err)
    assert str(root / "train" / "0002_c3s1_000002_00.jpg") in message
    assert "market-pairs-train.csv" in message


def test_pairs_csv_naming_unknown_images(market):
    root, _ = market
    csv = root / "market-pairs-train.csv"
    csv.write_text(csv.read_text() + "0001_c1s1_000000_00.jpg,9999_c1s1_000000_00.jpg\n")
    with pytest.raises(DataError) as err:
        PairDataset(root)
    assert one_line(err).startswith(f"{csv}:14: image '9999_c1s1_000000_00.jpg' is not in the annotation file")


def test_empty_dataset(market):
    root, _ = market
    (root / "market-pairs-train.csv").write_text("from,to\n")
    with pytest.raises(DataError) as err:
        PairDataset(root)
    assert one_line(err) == f"{root / 'market-pairs-train.csv'}: no pairs, the train dataset is empty"


def test_missing_split_files_and_folder(tmp_path, market):
    root, _ = market
    with pytest.raises(DataError, match=r"market-annotation-test\.csv: test annotation file not found"):
        PairDataset(root, "test")
    with pytest.raises(DataError, match=r"nowhere: dataset folder not found"):
        PairDataset(tmp_path / "nowhere")
    bare = tmp_path / "bare"
    bare.mkdir()
    with pytest.raises(DataError, match=r"bare: cannot tell the dataset kind"):
        PairDataset(bare)


def test_malformed_and_outside_keypoints_in_the_annotation_csv(market):
    root, ann = market
    csv = root / "market-annotation-train.csv"
    lines = csv.read_text().splitlines()
    name = lines[3].split(":")[0]
    lines[3] = f"{name}: [1, 2, 3]: [1, 2, 3]"
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as err:
        PairDataset(root)
    assert one_line(err).startswith(f"{csv}:4 ({name}): keypoints_y has 3 values, 18 expected")
    kp = ann[name].copy()
    kp[9] = (130, 10)                                       # below a 128-row image
    y, x = K.format_keypoints(kp)
    lines[3] = f"{name}: {y}: {x}"
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as err:
        PairDataset(root)
    assert one_line(err).startswith(f"{csv}:4 ({name}): joint 9 (r_knee) at (y=130, x=10) lies outside the 128x64 image")
    ds = PairDataset(root, keypoints_outside="missing")
    assert tuple(ds.annotations[name][9]) == (-1, -1)


def test_corrupt_and_wrong_size_images(market):
    root, _ = market
    corrupt = root / "train" / "0001_c2s1_000001_00.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    ds = PairDataset(root)                                  # existence is checked at start-up, content lazily
    with pytest.raises(DataError) as err:
        ds[0]
    assert one_line(err).startswith(f"{corrupt}: not a readable image")
    truncated = root / "train" / "0001_c1s1_000000_00.jpg"
    truncated.write_bytes(truncated.read_bytes()[:300])
    with pytest.raises(DataError, match="not a readable image"):
        ds[1]
    wrong = root / "train" / "0002_c1s1_000000_00.jpg"
    Image.new("RGB", (70, 130)).save(wrong, format="JPEG")
    with pytest.raises(DataError) as err:
        ds[6]
    assert one_line(err) == f"{wrong}: image is 130x70 (HxW) but 128x64 is expected"
    with pytest.raises(DataError, match=r"0001_c1s1_000000_00\.jpg: not a readable image"):
        PairDataset(root, check_images=True)                # the same problems found before training


def test_skip_mode_replaces_bad_pairs_deterministically(market, caplog):
    root, _ = market
    bad = "0001_c2s1_000001_00.jpg"
    (root / "train" / bad).write_bytes(b"garbage")
    (root / "train" / "0002_c3s1_000002_00.jpg").unlink()
    with caplog.at_level(logging.WARNING, logger="posetransfer.data.dataset"):
        ds = PairDataset(root, on_bad_sample="skip")
        assert ds.bad_samples == {"0002_c3s1_000002_00.jpg"}
        assert len(ds) == 12 - 4                            # the 4 pairs using the missing image are dropped
        items = [ds[i] for i in range(len(ds))]
        items_again = [ds[i] for i in range(len(ds))]
    assert ds.bad_samples == {"0002_c3s1_000002_00.jpg", bad}
    for item in items:
        assert bad not in (item["source_name"], item["target_name"])
    assert [(i["source_name"], i["target_name"]) for i in items] == \
           [(i["source_name"], i["target_name"]) for i in items_again]
    assert items[0]["source_name"] == "0001_c1s1_000000_00.jpg" and items[0]["target_name"] == "0001_c3s1_000002_00.jpg"
    warnings = [r.getMessage() for r in caplog.records if bad in r.getMessage()]
    assert len(warnings) == 1                               # logged once per file


def test_bad_options_are_config_errors(market):
    root, _ = market
    with pytest.raises(ConfigError):
        PairDataset(root, heatmap_mode="blobs")
    with pytest.raises(ConfigError):
        PairDataset(root, on_bad_sample="ignore")
    with pytest.raises(ConfigError):
        PairDataset(root, augment=["rotate"])
